"""Where a training step's time goes: ``python -m bench.profile [arch] [hidden] [seq_len]``.

Profiles (torch.profiler, CPU, one torch thread) a few training steps of each kind
on the same batch: torch.nn's fused forward/backward, core.bptt's plain step and
its probe step. Prints the time per step of each section of the hand-written pass
(``bptt.forward``, ``bptt.readout``, ``bptt.local_derivatives``,
``bptt.backward_loop``, ``bptt.parameter_grads``) and the top operators by self
CPU time. Times are wall-clock inside the profiler (inflated by its overhead and
by other processes; compare sections, not absolute figures).
"""

from __future__ import annotations

import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from bench import env
from core import bptt
from core.models import build_model
from core.tasks import make_task


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    arch = argv[0] if argv else "lstm"
    hidden = int(argv[1]) if len(argv) > 1 else 64
    seq_len = int(argv[2]) if len(argv) > 2 else 100
    reps = 10
    torch.set_num_threads(1)
    task = make_task("adding", seq_len)
    torch.manual_seed(0)
    model = build_model(arch, task.input_size, hidden, task.output_size)
    x, y = task.sample(64, torch.Generator().manual_seed(1))
    params = list(model.parameters())

    def fused():
        for p in params:
            p.grad = None
        task.loss(model(x), y).mean().backward()

    steps = {
        "fused (torch.nn forward + backward)": fused,
        "core.bptt.fast_train_step": lambda: bptt.fast_train_step(model, task, x, y),
        "core.bptt.fast_probe": lambda: bptt.fast_probe(model, task, x, y),
    }
    print(f"# python -m bench.profile {arch} {hidden} {seq_len}  (batch 64, 1 torch thread; "
          f"{env.load_line(env.load())})")
    # 1. Thread CPU time per step and per section of the hand-written pass: the
    #    minimum over interleaved repetitions (robust to other processes).
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    bptt.PHASE_TIMES = {}
    try:
        for _ in range(3):
            for fn in steps.values():
                fn()
        bptt.PHASE_TIMES.clear()
        for _ in range(reps * 2):
            for name, fn in steps.items():
                t0 = time.thread_time()
                fn()
                cpu[name].append(time.thread_time() - t0)
        phases = dict(bptt.PHASE_TIMES)
    finally:
        bptt.PHASE_TIMES = None
    print("\nthread CPU ms per step (min over %d): " % (reps * 2) + ", ".join(
        f"{name} {1e3 * min(v):.2f}" for name, v in cpu.items()))
    print("sections of the hand-written pass (min ms, plain and probe steps together): " + ", ".join(
        f"{k} {1e3 * min(v):.2f}" for k, v in phases.items()))

    # 2. torch.profiler: the top operators of each kind of step.
    for name, fn in steps.items():
        for _ in range(3):
            fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                fn()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events) / reps / 1e3
        print(f"\n## {name}: {total:.1f} ms per step (profiled)")
        sections = [e for e in events if e.key.startswith("bptt.")]
        if sections:
            print("sections: " + ", ".join(
                f"{e.key[5:]} {e.cpu_time_total / reps / 1e3:.2f} ms" for e in
                sorted(sections, key=lambda e: -e.cpu_time_total)))
        print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
    return 0


if __name__ == "__main__":
    sys.exit(main())

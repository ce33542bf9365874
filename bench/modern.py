"""The later architectures' costs (issue 17): ``python -m bench.modern [--quick]``.

Two tables, every figure a ratio taken in the same run, on one torch thread:

* **probe cost**: for each architecture, the probed training step (the reference probe
  :func:`core.probe.probe`: forward, every per-step gradient, the parameter gradients and
  the tidy frames) against that architecture's own unprobed step (``model(x)``, the loss,
  ``backward()``), and both against torch.nn's fused LSTM step of the same size (the
  lab's fastest standard cell), median of ``--repeats`` steps after one warm-up; target:
  probe ≤ 1.5× its own step (issue 17);
* **scan against loop**: the recurrences that are linear in their state (minGRU,
  minLSTM, LRU) trained through their parallel scan (``forward``) against the same
  recurrence stepped through time (each layer's ``sequential``), forward and backward.

Writes nothing; prints plain and Markdown tables with the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench import env
from core.archspec import MODERN, SPEC
from core.config import TrainConfig
from core.probe import probe
from core.train import make_model

SCANNED = ("mingru", "minlstm", "lru")


def _median_seconds(fn, repeats: int) -> float:
    fn()                                   # warm-up: allocations, lazy imports
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _setup(arch: str, T: int, H: int, B: int):
    cfg = TrainConfig(arch=arch, task="adding", seq_len=T, hidden_size=H, batch_size=B)
    task = cfg.make_task()
    model = make_model(cfg, task)
    x, y = task.sample(B, torch.Generator().manual_seed(0))
    return model, task, x, y


def step_fn(model, task, x, y):
    def run():
        model.zero_grad(set_to_none=True)
        task.loss(model(x), y).mean().backward()
    return run


def probe_fn(model, task, x, y):
    def run():
        r = probe(model, task, x, y)
        for p, g in zip(model.parameters(), r.param_grads):
            p.grad = g
    return run


def sequential_fn(model, task, x, y):
    def run():
        model.zero_grad(set_to_none=True)
        task.loss(model.readout(model.recurrent.sequential(x)), y).mean().backward()
    return run


def probe_costs(sizes, B: int, repeats: int, archs=MODERN) -> list[dict]:
    rows = []
    for T, H in sizes:
        ref = _setup("lstm", T, H, B)
        fused = _median_seconds(step_fn(*ref), repeats)
        for arch in archs:
            case = _setup(arch, T, H, B)
            step = _median_seconds(step_fn(*case), repeats)
            probed = _median_seconds(probe_fn(*case), repeats)
            rows.append(dict(arch=arch, T=T, H=H, step_ms=1e3 * step, probe_ms=1e3 * probed,
                             probe_over_step=probed / step, step_over_lstm=step / fused,
                             lstm_ms=1e3 * fused))
    return rows


def scan_costs(lengths, H: int, B: int, repeats: int) -> list[dict]:
    rows = []
    for T in lengths:
        for arch in SCANNED:
            case = _setup(arch, T, H, B)
            if not hasattr(case[0].recurrent, "sequential"):
                continue
            scan = _median_seconds(step_fn(*case), repeats)
            loop = _median_seconds(sequential_fn(*case), repeats)
            rows.append(dict(arch=arch, T=T, H=H, scan_ms=1e3 * scan, loop_ms=1e3 * loop,
                             loop_over_scan=loop / scan))
    return rows


def _table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.modern", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="H 64 at T 100 only, fewer repeats")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--archs", default=",".join(MODERN),
                   help="comma-separated architectures (default: the six later ones)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    repeats = args.repeats or (5 if args.quick else 15)
    sizes = [(100, 64)] if args.quick else [(50, 64), (100, 64), (300, 64), (100, 128)]
    machine, start = env.describe(), env.load()
    print(f"# python -m bench.modern {' '.join(argv or [])}".rstrip())
    print(f"torch {machine['torch']}, 1 torch thread, {machine['cores']} cores ({machine['cpu']}); "
          f"{env.load_line(start)}; batch {args.batch}, median of {repeats}")
    archs = tuple(a for a in args.archs.split(",") if a)
    unknown = set(archs) - set(MODERN)
    if unknown:
        p.error(f"unknown architecture(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODERN)}")
    rows = probe_costs(sizes, args.batch, repeats, archs)
    print("\nProbe cost (target: probe / own step ≤ 1.5)\n")
    print(_table([dict(r, arch=SPEC[r["arch"]].label) for r in rows],
                 ["arch", "T", "H", "step_ms", "probe_ms", "probe_over_step", "step_over_lstm"]))
    scans = [r for r in scan_costs([100] if args.quick else [50, 100, 300], 64, args.batch, repeats)
             if r["arch"] in archs]
    print("\nParallel scan against the loop (forward + backward)\n")
    print(_table([dict(r, arch=SPEC[r["arch"]].label) for r in scans],
                 ["arch", "T", "H", "scan_ms", "loop_ms", "loop_over_scan"]))
    print(f"\n{env.load_line(env.load())} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

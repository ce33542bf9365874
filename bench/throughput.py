"""Training throughput: the trainer's steps, timed in one process, interleaved.

For every (arch, hidden, seq_len) cell, batch 64, one torch thread, three real
:class:`core.train.Trainer` runs advance side by side (round-robin, the order
rotating every round), each timed over the same number of steps:

  fused   the reference: torch.nn's fused module for every step, no probes
          (``core.bptt.REFERENCE = True``, ``probe_every = 0``): what training
          cost before the probe existed;
  plain   the trainer's unprobed step as shipped (``probe_every = 0``): torch.nn's
          fused LSTM, or core.bptt's hand-written step for GRU / RNN;
  probe   the trainer with the gradient probe on *every* step (``probe_every = 1``,
          core.bptt.fast_probe): target (c).

A trainer probing every k-th step runs k−1 ``plain`` steps and one ``probe`` step,
so its time per step is ((k−1)·plain + probe)/k: target (b) for k = 50 (the
config default) and k = 25 (the Train presets). For the standard LSTM the
trainer's plain step is torch.nn's fused step itself, so (a) stands in for it
(its separate measurement only shows the noise). ``--direct`` also times that
trainer itself over whole probe periods, as a check of the composition.

Every step includes what the trainer does around the gradient: sampling the
batch, clipping, the metric, the Adam update. Times are medians over rounds of
both wall-clock and thread CPU time (the latter is less disturbed by other
processes on a shared machine).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from core import bptt
from core.config import TrainConfig
from core.train import StepRecord, Trainer, warm_up

ARCHS = ("rnn_tanh", "lstm", "gru")
HIDDEN = (32, 64, 128)
SEQ_LENS = (50, 100, 200)
BATCH = 64
PROBE_RATES = (50, 25)  # config default, Train presets


class Runner:
    """A live trainer whose steps can be advanced and timed a few at a time."""

    def __init__(self, config: TrainConfig, reference: bool):
        saved = bptt.REFERENCE
        bptt.REFERENCE = reference  # read once, when run() starts
        try:
            self.trainer = Trainer(config)
            self.records = self.trainer.run()
            self.advance(1)
        finally:
            bptt.REFERENCE = saved

    def advance(self, steps: int) -> tuple[float, float]:
        """Run ``steps`` more training steps; return (wall, thread CPU) seconds."""
        w0, c0 = time.perf_counter(), time.thread_time()
        seen = 0
        while seen < steps:
            if isinstance(next(self.records), StepRecord):
                seen += 1
        return time.perf_counter() - w0, time.thread_time() - c0

    def close(self) -> None:
        self.trainer.stop()
        self.records.close()


@dataclass
class Timing:
    wall_ms: float
    cpu_ms: float


def _config(arch: str, hidden: int, seq_len: int, probe_every: int) -> TrainConfig:
    return TrainConfig(
        task="adding", arch=arch, hidden_size=hidden, seq_len=seq_len, batch_size=BATCH,
        steps=100_000, probe_every=probe_every, eval_every=100_000, eval_size=16, threads=1, seed=0,
    )


def time_interleaved(runners: dict[str, Runner], rounds: int, steps: int, warmup: int) -> dict[str, Timing]:
    """Median per-step time of each runner over ``rounds`` interleaved rounds."""
    for r in runners.values():
        r.advance(warmup)
    names = list(runners)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for k in range(rounds):
        order = names[k % len(names):] + names[: k % len(names)]  # rotate who goes first
        for n in order:
            w, c = runners[n].advance(steps)
            wall[n].append(w / steps)
            cpu[n].append(c / steps)
    return {n: Timing(1e3 * statistics.median(wall[n]), 1e3 * statistics.median(cpu[n])) for n in names}


def measure_cell(arch: str, hidden: int, seq_len: int, rounds: int, steps: int, warmup: int,
                 with_reference_probe: bool = False) -> dict:
    runners = {
        "fused": Runner(_config(arch, hidden, seq_len, 0), reference=True),
        "plain": Runner(_config(arch, hidden, seq_len, 0), reference=False),
        "probe": Runner(_config(arch, hidden, seq_len, 1), reference=False),
    }
    if with_reference_probe:  # the autograd-unroll probe every step, for context
        runners["reference_probe"] = Runner(_config(arch, hidden, seq_len, 1), reference=True)
    try:
        # Slow cells (T = 200: subnormal floats, see BENCHMARKS.md) get fewer steps,
        # so that the grid finishes in minutes; every cell keeps ≥ 3 rounds.
        probe_s = runners["probe"].advance(1)[0]
        if probe_s > 0.25:
            rounds, steps, warmup = max(3, rounds - 2), 1, 1
        elif probe_s > 0.08:
            steps = max(1, steps - 1)
        t = time_interleaved(runners, rounds, steps, warmup)
    finally:
        for r in runners.values():
            r.close()
    row = {"arch": arch, "hidden": hidden, "seq_len": seq_len, "batch": BATCH,
           "rounds": rounds, "steps_per_round": steps}
    for name, timing in t.items():
        row[f"{name}_ms"] = round(timing.wall_ms, 3)
        row[f"{name}_cpu_ms"] = round(timing.cpu_ms, 3)
    # Where the trainer's unprobed step *is* torch.nn's fused step (the standard
    # LSTM), "plain" re-measures (a): its ratio to (a) shows the noise, and (b) is
    # composed from (a) itself.
    row["plain_is_fused"] = not bptt.use_fast_train(runners["plain"].trainer.model)
    for clock in ("", "_cpu"):
        a, u, c = (row[f"{n}{clock}_ms"] for n in ("fused", "plain", "probe"))
        row[f"plain{clock}_ratio"] = round(u / a, 3)
        if row["plain_is_fused"]:
            u = a
        row[f"probe_every_step{clock}_ratio"] = round(c / a, 3)  # (c): time ratio vs fused
        for k in PROBE_RATES:
            b = ((k - 1) * u + c) / k
            row[f"probe_every_{k}{clock}_ms"] = round(b, 3)
            row[f"probe_every_{k}{clock}_throughput"] = round(a / b, 3)  # (b): steps/s vs fused
        if "reference_probe_ms" in row:
            row[f"reference_probe{clock}_ratio"] = round(row[f"reference_probe{clock}_ms"] / a, 3)
    return row


def measure_direct(arch: str, hidden: int, seq_len: int, probe_every: int, steps: int, rounds: int) -> dict:
    """The trainer probing every k-th step, timed over whole probe periods."""
    runners = {
        "fused": Runner(_config(arch, hidden, seq_len, 0), reference=True),
        "trainer": Runner(_config(arch, hidden, seq_len, probe_every), reference=False),
    }
    # Warm up to the step before a probe, then time whole periods of k steps.
    try:
        t = time_interleaved(runners, rounds, steps, warmup=probe_every - 1)
    finally:
        for r in runners.values():
            r.close()
    return {
        "arch": arch, "hidden": hidden, "seq_len": seq_len, "probe_every": probe_every,
        "steps_per_round": steps, "rounds": rounds,
        "fused_ms": round(t["fused"].wall_ms, 3), "trainer_ms": round(t["trainer"].wall_ms, 3),
        "throughput": round(t["fused"].wall_ms / t["trainer"].wall_ms, 3),
        "fused_cpu_ms": round(t["fused"].cpu_ms, 3), "trainer_cpu_ms": round(t["trainer"].cpu_ms, 3),
        "cpu_throughput": round(t["fused"].cpu_ms / t["trainer"].cpu_ms, 3),
    }


def run(quick: bool = False, direct: bool = False, log=print) -> dict:
    torch.set_num_threads(1)
    warm_up()
    if quick:
        grid = [(a, 64, T) for a in ARCHS for T in (50, 100)]
        rounds, steps, warmup = 5, 2, 2
    else:
        grid = [(a, h, T) for a in ARCHS for h in HIDDEN for T in SEQ_LENS]
        rounds, steps, warmup = 5, 3, 3
    rows = []
    for arch, hidden, seq_len in grid:
        with_ref = (hidden, seq_len) == (64, 100)
        row = measure_cell(arch, hidden, seq_len, rounds, steps, warmup, with_reference_probe=with_ref)
        rows.append(row)
        log(format_row(row))
    direct_rows = []
    if direct:
        for arch in ARCHS:
            for k in PROBE_RATES:
                d = measure_direct(arch, 64, 100, k, steps=k, rounds=4 if quick else 6)
                direct_rows.append(d)
                log(f"  direct: {arch} H=64 T=100 probe_every={k}: throughput {d['throughput']:.3f} "
                    f"(CPU {d['cpu_throughput']:.3f}) vs fused")
    return {"rounds": rounds, "steps_per_round": steps, "warmup_steps": warmup, "rows": rows,
            "direct": direct_rows}


def format_row(r: dict) -> str:
    return (f"{r['arch']:8s} H={r['hidden']:<3d} T={r['seq_len']:<3d} "
            f"fused {r['fused_ms']:7.2f} ms  plain {r['plain_ms']:7.2f}  probe {r['probe_ms']:7.2f}  "
            f"c/a {r['probe_every_step_ratio']:.2f} (cpu {r['probe_every_step_cpu_ratio']:.2f})  "
            f"b50 {r['probe_every_50_throughput']:.3f}x  b25 {r['probe_every_25_throughput']:.3f}x")


def markdown(result: dict) -> str:
    head = ("| arch | H | T | (a) fused ms/step | plain ms/step (÷a) | (c) probe every step ms | "
            "(c)/(a) time | (c)/(a) CPU | (b) throughput, probe/50 | (b) throughput, probe/25 | "
            "reference probe()/(a) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in result["rows"]:
        ref = f"{r['reference_probe_ratio']:.1f}x" if "reference_probe_ratio" in r else ""
        lines.append(
            f"| {r['arch']} | {r['hidden']} | {r['seq_len']} | {r['fused_ms']:.1f} | "
            f"{r['plain_ms']:.1f} ({r['plain_ratio']:.2f}{', same code' if r['plain_is_fused'] else ''}) | "
            f"{r['probe_ms']:.1f} | {r['probe_every_step_ratio']:.2f} | {r['probe_every_step_cpu_ratio']:.2f} | "
            f"{r['probe_every_50_throughput']:.3f} | {r['probe_every_25_throughput']:.3f} | {ref} |"
        )
    if result.get("direct"):
        lines += ["", "| arch | H | T | probe every | fused ms/step | trainer ms/step | throughput vs fused | CPU |",
                  "|---|---|---|---|---|---|---|---|"]
        for d in result["direct"]:
            lines.append(f"| {d['arch']} | {d['hidden']} | {d['seq_len']} | {d['probe_every']} | "
                         f"{d['fused_ms']:.1f} | {d['trainer_ms']:.1f} | {d['throughput']:.3f} | "
                         f"{d['cpu_throughput']:.3f} |")
    return "\n".join(lines)

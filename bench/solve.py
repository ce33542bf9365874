"""Time to solve: wall seconds and steps until the held-out metric crosses the
task's success threshold, through :class:`core.train.Trainer` exactly as the app
runs it (probes on at the preset's rate, held-out evaluation every
``eval_every`` steps, ``stop_when_solved``), capped at a step budget.

Runs: the LSTM (forget bias 0 and 1) and GRU Train presets at T = 100 on adding
and recall, and the vanilla tanh RNN preset with the same budget (it is not expected to solve: its final held-out loss is the
figure, against the task's baseline loss).
"""

from __future__ import annotations

import math
import time

import torch

from core.config import TrainConfig
from core.presets import PRESETS
from core.train import EvalRecord, Trainer, warm_up

BUDGET = 3000
QUICK_BUDGET = 1000

#: The Train presets the time-to-solve runs start from (then T = 100, and the task).
SOLVE_PRESETS = {
    "LSTM preset": "LSTM remembers (same task)",
    "LSTM forget bias 1 preset": "LSTM with forget bias 1 (Jozefowicz et al.)",
    "GRU preset": "GRU remembers",
    "rnn_tanh preset": "Vanilla RNN forgets (adding, T=50)",
}


def _config(preset: str, task: str) -> dict:
    return {**PRESETS[SOLVE_PRESETS[preset]], "seq_len": 100, "task": task}


def runs(quick: bool) -> list[tuple[str, dict]]:
    out = [(f"{task} T=100, {preset}", _config(preset, task))
           for task in ("adding", "recall") for preset in SOLVE_PRESETS]
    if quick:
        out = [r for r in out if r[0].startswith("adding") and "GRU" not in r[0]]
    return out


def solve(overrides: dict, budget: int, seed: int = 0) -> dict:
    config = TrainConfig(**{**overrides, "steps": budget, "stop_when_solved": True, "seed": seed,
                            "threads": 1})
    trainer = Trainer(config)
    w0, c0 = time.perf_counter(), time.thread_time()
    last: EvalRecord | None = None
    for record in trainer.run():
        if isinstance(record, EvalRecord):
            last = record
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    task = trainer.task
    return {
        "task": config.task, "seq_len": config.seq_len, "arch": config.arch,
        "label": config.label(), "config": {k: v for k, v in overrides.items()},
        "seed": seed, "budget": budget,
        "solved": trainer.solved_at is not None, "solved_at_step": trainer.solved_at,
        "steps": trainer.steps_done, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "ms_per_step": round(1e3 * wall / max(trainer.steps_done, 1), 2),
        "final_metric": last.metric if last else math.nan,
        "final_loss": last.loss if last else math.nan,
        "metric_name": task.metric_name, "success": task.success,
        "baseline_loss": task.baseline_loss,
    }


def run(quick: bool = False, seeds: int = 1, log=print) -> dict:
    torch.set_num_threads(1)
    warm_up()
    budget = QUICK_BUDGET if quick else BUDGET
    rows = []
    for name, overrides in runs(quick):
        for seed in range(seeds):
            r = solve(overrides, budget, seed)
            r["name"] = name
            rows.append(r)
            log(format_row(r))
    return {"budget": budget, "seeds": seeds, "presets": SOLVE_PRESETS, "rows": rows}


def format_row(r: dict) -> str:
    what = (f"solved at step {r['solved_at_step']} in {r['wall_s']:.1f} s" if r["solved"]
            else f"not solved in {r['steps']} steps ({r['wall_s']:.1f} s)")
    return (f"{r['name']:32s} seed {r['seed']}: {what}; held-out {r['metric_name']} "
            f"{r['final_metric']:.4g}, loss {r['final_loss']:.4g} (baseline {r['baseline_loss']:.4g}); "
            f"{r['ms_per_step']:.1f} ms/step")


def markdown(result: dict) -> str:
    lines = [("| run | seed | solved at step | wall s | CPU s | wall ms/step | held-out metric | "
             "held-out loss (baseline) |"),
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        solved = str(r["solved_at_step"]) if r["solved"] else f"no ({r['steps']} steps)"
        lines.append(f"| {r['name']} | {r['seed']} | {solved} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['ms_per_step']:.1f} | "
                     f"{r['metric_name']} {r['final_metric']:.4g} | {r['final_loss']:.4g} "
                     f"({r['baseline_loss']:.3g}) |")
    return "\n".join(lines)

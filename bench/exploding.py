"""Exploding-gradient presets: what each setting does, measured over seeds.

    .venv/bin/python -m bench.exploding                       # the two presets, seeds 0-2
    .venv/bin/python -m bench.exploding --grid 20:1.6:0.003 20:1.7:0.002 --seeds 3

For each setting (T:spectral radius:learning rate; the rest as the presets: rnn_relu,
orthogonal init, hidden 64, batch 64, SGD with momentum 0.9, adding) and seed:

* **no clipping**, probing every step (core.train.Trainer, as the app trains): the
  vanishing ratio ‖∂ℓ/∂h₀‖/‖∂ℓ/∂h_T−1‖ at each probe, the training loss at each step,
  and the step at which the loss stops being finite (the run diverges), up to 300 steps;
* **clipping the gradient norm at 1**, held-out evaluation every 50 steps, stopping
  when solved: the step it is solved at (held-out MSE < 0.01), else its last held-out
  loss against the task's baseline (0.167).

Prints one Markdown row per setting and seed (the table in BENCHMARKS.md,
"Exploding-gradient presets").
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from core.config import TrainConfig
from core.presets import PRESETS
from core.train import EndRecord, EvalRecord, ProbeRecord, StepRecord, Trainer

EXPLODING = "Exploding gradients (RNN, spectral radius 1.7, no clipping)"
CLIPPED = "… tamed by clipping"
NO_CLIP_STEPS = 300
CLIP_BUDGET = 3000


def no_clip(config: TrainConfig) -> dict:
    """Ratios and losses of an unclipped run, probed every step, until it diverges."""
    config = config.replace(clip=None, probe_every=1, steps=NO_CLIP_STEPS,
                            eval_every=NO_CLIP_STEPS, eval_size=64, stop_when_solved=False)
    ratios, losses, end = [], [], None
    for r in Trainer(config).run():
        if isinstance(r, ProbeRecord):
            ratios.append(r.summary["vanishing_ratio"])
        elif isinstance(r, StepRecord):
            losses.append(r.loss)
        elif isinstance(r, EndRecord):
            end = r
    diverged = end.step if end is not None and end.status == "diverged" else None
    return {"ratios": ratios, "losses": losses, "diverged_at": diverged}


def clipped(config: TrainConfig, budget: int = CLIP_BUDGET) -> dict:
    """Steps to solve with the gradient norm clipped (at the config's clip, default 1)."""
    config = config.replace(clip=config.clip or 1.0, probe_every=0, steps=budget,
                            eval_every=50, eval_size=500, stop_when_solved=True)
    trainer = Trainer(config)
    t0, last = time.perf_counter(), None
    for r in trainer.run():
        if isinstance(r, EvalRecord):
            last = r
    return {"solved_at": trainer.solved_at, "eval_loss": last.loss if last else math.nan,
            "baseline": trainer.task.baseline_loss, "wall_s": time.perf_counter() - t0}


def _g(x: float) -> str:
    return "NaN" if isinstance(x, float) and math.isnan(x) else f"{x:.3g}"


def row(label: str, config: TrainConfig) -> str:
    a, b = no_clip(config), clipped(config)
    n = a["diverged_at"] + 1 if a["diverged_at"] is not None else 8
    diverged = (f"step {a['diverged_at']}" if a["diverged_at"] is not None
                else f"no ({NO_CLIP_STEPS} steps)")
    solved = (f"step {b['solved_at']}" if b["solved_at"] is not None else
              f"no ({CLIP_BUDGET} steps): held-out {_g(b['eval_loss'])}")
    return (f"| {label} | {config.seed} | {', '.join(map(_g, a['ratios'][:n]))} | "
            f"{', '.join(map(_g, a['losses'][:n]))} | {diverged} | {solved} | "
            f"{b['wall_s']:.1f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.exploding", description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", nargs="*", default=None,
                   help="settings T:radius:lr (default: the exploding preset's own)")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.grid:
        base = TrainConfig(**{**PRESETS[EXPLODING], "clip": None})
        settings = []
        for item in args.grid:
            T, rho, lr = item.split(":")
            settings.append((f"T {T}, ρ {rho}, lr {lr}",
                             base.replace(seq_len=int(T), spectral_radius=float(rho), lr=float(lr))))
    else:
        cfg = TrainConfig(**PRESETS[EXPLODING])
        clip = TrainConfig(**PRESETS[CLIPPED])
        assert (cfg.seq_len, cfg.spectral_radius) == (clip.seq_len, clip.spectral_radius)
        settings = [(f"T {cfg.seq_len}, ρ {cfg.spectral_radius:g}, lr {cfg.lr:g}", cfg)]
        if clip.lr != cfg.lr:
            settings.append((f"T {clip.seq_len}, ρ {clip.spectral_radius:g}, lr {clip.lr:g}",
                             clip))
    print("| setting | seed | vanishing ratio at steps 0, 1, … (no clipping) | training loss "
          "at steps 0, 1, … | diverged (no clipping) | clipped at 1: solved | clipped: wall s |")
    print("|---|---|---|---|---|---|---|")
    for label, config in settings:
        for seed in range(args.seeds):
            print(row(label, config.replace(seed=seed, threads=1)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Short captions for the landing and the lesson (and the label of any shown result).

Like :mod:`core.narrate` (whose scale and number format these use), every sentence here
only puts measured numbers into words: a run's status (``core.runs.RunData.status``), the
summary of its latest probe (``core.probe.summarise``) and its gate table. No number is
assumed. Kept apart from narrate.py so the two can change independently; the words for a
ratio are narrate's (:func:`core.narrate.ratio_band`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core.archspec import SPECS
from core.config import FIELDS, TrainConfig
from core.narrate import OPEN_UNIT, ratio_band, sci

# Fields that say how a run is run, not what it trains: left out of "which settings".
_HOW = ("threads", "stop_when_solved", "solved_tail")
# Gates whose mean over units a caption reads: the LSTM's forget gate, the GRU's update gate.
GATE_NAMES = {"lstm": ("f", "forget gate"), "gru": ("z", "update gate"),
              # The later architectures record their carry path's gain (core.archspec).
              # "the carry path's per-step gain averaged over its 32 units"
              **{s.name: ("gain", "the carry path's per-step") for s in SPECS
                 if s.carry == "gain"}}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------- which settings

def _parts(config: TrainConfig) -> list[str]:
    task = f"{config.task}, T = {config.seq_len}"
    if config.task == "recall":
        task += f", K = {config.num_symbols}"
    parts = [config.label(), task, f"hidden {config.hidden_size}", f"batch {config.batch_size}",
             f"{config.optimizer}, lr {config.lr:g}", f"{config.steps} steps",
             f"seed {config.seed}"]
    if config.stop_when_solved:
        parts.append("stops once solved" + (f" (+{config.solved_tail} steps)"
                                            if config.solved_tail else ""))
    return parts


def settings_line(config: TrainConfig) -> str:
    """The settings that produced a run, in one line: 'lstm (clip 1) · adding, T = 50 ·
    hidden 32 · batch 64 · adam, lr 0.02 · 1000 steps · seed 0' (+ the stop rule)."""
    return " · ".join(_parts(config))


def short_id(run_id: str | None) -> str:
    """The last part of a run id (its random suffix), as the Runs page shows it."""
    return str(run_id).rsplit("-", 1)[-1] if run_id else "(not saved)"


def runs_line(runs: list[tuple[str | None, TrainConfig]]) -> str:
    """Which runs are shown and the settings that produced them, in one line:
    'Showing run <id>: <settings_line>'; for several runs, the settings they share once
    and each run's own in brackets after its short id."""
    if not runs:
        return ""
    if len(runs) == 1:
        run_id, config = runs[0]
        return f"Showing run {run_id or '(not saved)'}: {settings_line(config)}"
    parts = [_parts(c) for _, c in runs]
    width = max(len(p) for p in parts)
    parts = [p + [""] * (width - len(p)) for p in parts]
    shared = [i for i in range(width) if len({p[i] for p in parts}) == 1]
    own = [i for i in range(width) if i not in shared]
    each = ", ".join(f"{short_id(run_id)} ({'; '.join(p[i] for i in own if p[i])})"
                     for (run_id, _), p in zip(runs, parts))
    common = " · ".join(parts[0][i] for i in shared if parts[0][i])
    return f"Showing runs {each}" + (f" · {common}" if common else "")


def _shown(value) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_changes(shown: TrainConfig, wanted: TrainConfig) -> list[str]:
    """The settings in which ``shown`` (a run's) differs from ``wanted`` (the form's), as
    'arch: lstm → rnn_tanh'; how a run is run (threads, the stop rule) is not counted."""
    return [f"{f.name}: {_shown(getattr(shown, f.name))} → {_shown(getattr(wanted, f.name))}"
            for f in FIELDS
            if f.name not in _HOW and getattr(shown, f.name) != getattr(wanted, f.name)]


def same_settings(a: TrainConfig, b: TrainConfig) -> bool:
    """Whether two configs train the same thing (``config_changes`` is empty)."""
    return not config_changes(a, b)


# ---------------------------------------------------------------- one model, in one caption

def outcome(config: TrainConfig, status: dict, diverged_at: int | None = None) -> str:
    """Where a run stands: 'solved at step 275 (held-out mse 0.0043 < 0.01)', 'not solved
    in 1000 steps (held-out loss 0.22; baseline 0.167)', 'diverged at step 5'… (the step
    its loss stopped being finite: ``diverged_at`` if known)."""
    state, step = status.get("status"), int(status.get("step") or 0)
    task = config.make_task()
    name = status.get("metric_name") or task.metric_name
    if state == "queued":
        return "waiting for a free training slot"
    if status.get("solved"):
        bound = "≥" if task.higher_is_better else "<"
        metric = status.get("eval_metric")
        shown = f"{metric:.2g}" if _finite(metric) else sci(metric)   # 0.0098, not 1e-02
        return (f"solved at step {status.get('steps_to_solve')} (held-out {name} {shown} "
                f"{bound} {task.success:g})")
    if state == "diverged":
        at = diverged_at if diverged_at is not None else max(0, step - 1)
        return f"diverged: its loss stopped being a finite number at step {at}"
    loss, base = status.get("eval_loss"), status.get("baseline_loss")
    against = ""
    if _finite(loss):
        against = f"held-out loss {sci(loss)}"
        if _finite(base):
            against += f"; baseline {sci(base)}"
    if state in ("finished", "stopped", "interrupted"):
        head = f"not solved in {step} steps" if state == "finished" else \
            f"{state} at step {step}, not solved"
    else:
        head = f"not solved yet (step {step})"
    return head + (f" ({against})" if against else "")


def gradient_clause(summary: dict | None, probe_step: int | None) -> str:
    """The latest probe in one clause: 'at step 350, t = 0 gets 0.054 of the gradient at
    t = 49 (weakened on the scale of the sentences); reach 50 of 50 steps'."""
    if not summary or not summary.get("steps"):
        return "no gradient probe yet"
    T = int(summary["steps"])
    ratio, reach = summary.get("vanishing_ratio"), summary.get("gradient_reach")
    at = f"at step {probe_step}, " if probe_step is not None else ""
    reach_text = f"; reach {int(reach)} of {T} steps" if _finite(reach) else ""
    first, last = summary.get("h_grad_first"), summary.get("h_grad_last")
    if summary.get("nonfinite") or not all(_finite(x) for x in (first, last)):
        return f"{at}the gradient is no longer a finite number (it exploded)"
    if not _finite(ratio) or last == 0:
        return f"{at}no gradient reaches t = {T - 1}{reach_text}"
    if ratio == 0:
        return f"{at}the gradient vanishes entirely before t = 0 (underflow to 0){reach_text}"
    band = ratio_band(ratio)
    amount = f"{sci(ratio)} times" if ratio >= 1 else f"{sci(ratio)} of"
    return f"{at}t = 0 gets {amount} t = {T - 1}'s gradient ({band.name}){reach_text}"


def model_caption(label: str, config: TrainConfig, status: dict, summary: dict | None,
                  probe_step: int | None, finite: tuple[dict, int] | None = None,
                  diverged_at: int | None = None) -> str:
    """One model's caption (Markdown), its outcome and its latest probe: '**LSTM** — solved
    at step 275 (held-out mse 0.0043 < 0.01) · at step 350, t = 0 gets 0.054 of t = 49's
    gradient (weakened); reach 50 of 50 steps'. When the latest probe is not finite,
    ``finite`` (the latest finite probe's summary and step) says what came before it;
    ``diverged_at`` is the first training step whose loss was not finite."""
    text = f"**{label}** — {outcome(config, status, diverged_at)} · "
    text += gradient_clause(summary, probe_step)
    if finite is not None and finite[1] != probe_step and _nonfinite(summary):
        text += "; before that, " + gradient_clause(*finite).replace(" gets ", " got ")
    return text


def _nonfinite(summary: dict | None) -> bool:
    return bool(summary) and (bool(summary.get("nonfinite")) or not all(
        _finite(summary.get(k)) for k in ("h_grad_first", "h_grad_last")))


# ---------------------------------------------------------------- the gates: mean vs most open

def gate_means(gates: pd.DataFrame, gate: str) -> pd.DataFrame:
    """Per probe step, the gate's value averaged over time steps: columns step, mean
    (over all units, gate ``gate``) and top (its most open unit, ``gate``_max)."""
    if gates is None or gates.empty:
        return pd.DataFrame(columns=["step", "mean", "top"])
    d = gates[gates["gate"].isin([gate, f"{gate}_max"])]
    wide = d.pivot_table(index="step", columns="gate", values="mean", aggfunc="mean")
    out = pd.DataFrame({"step": wide.index.astype(int),
                        "mean": wide.get(gate, pd.Series(np.nan, index=wide.index)).to_numpy(),
                        "top": wide.get(f"{gate}_max", pd.Series(np.nan, index=wide.index))
                        .to_numpy()})
    return out.sort_values("step").reset_index(drop=True)


def gate_story(label: str, arch: str, gates: pd.DataFrame, hidden: int) -> str | None:
    """How the LSTM's forget gate (GRU: update gate) moved between the first and the latest
    probe, over all units and for the most open unit; None for a model without one.

    The last sentence (a few units carry the memory while the mean stays low) is said only
    when the numbers show it: the most open unit at ≥ core.narrate.OPEN_UNIT and the mean
    below 0.6."""
    if arch not in GATE_NAMES:
        return None
    gate, name = GATE_NAMES[arch]
    m = gate_means(gates, gate)
    m = m[np.isfinite(m["mean"].astype(float))]
    if m.empty:
        return None
    a, b = m.iloc[0], m.iloc[-1]
    text = (f"**{label}**, {name} {gate} averaged over its {hidden} units (and the time "
            f"steps): {a['mean']:.2f} at step {int(a['step'])}")
    if len(m) > 1:
        text += f", {b['mean']:.2f} at step {int(b['step'])}"
    if _finite(b["top"]):
        text += (f"; its most open unit ({gate}_max): {a['top']:.2f}"
                 + (f" → {b['top']:.2f}" if len(m) > 1 else ""))
    text += "."
    if _finite(b["top"]) and b["top"] >= OPEN_UNIT and b["mean"] < 0.6:
        keep = "cell" if arch == "lstm" else "state"
        text += (f" The mean hides it: the most open unit holds {gate} near 1 and keeps its "
                 f"{keep} — and the gradient along it — while the average unit forgets.")
    return text


def loss_caption(baseline: float | None, short: bool = False) -> str:
    """What the loss chart shows, with the task's baseline (``short``: in fewer words)."""
    if short:
        text = "Dashed: training; solid: held-out"
        if _finite(baseline):
            text += f"; grey: the baseline {sci(baseline)} (inputs ignored)"
        return text + "."
    text = "Dashed: training loss (smoothed); solid: held-out loss"
    if _finite(baseline):
        text += (f"; grey: the baseline {sci(baseline)}, what a model that ignores its inputs "
                 "scores")
    return text + "."


__all__ = ["config_changes", "runs_line", "settings_line", "short_id", "gate_means", "gate_story", "gradient_clause", "loss_caption",
           "model_caption", "outcome", "same_settings"]

"""The sentence under a run's charts: how far the gradient reaches back, on one stated
scale (``RATIO_BANDS``), read beside the reach and the loss; and the Compare page's sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.archspec import SPEC
from core.narrate.numbers import sci
from core.narrate.numbers import _finite


@dataclass(frozen=True)
class Band:
    """One band of the scale on which the vanishing ratio r = ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖ is
    read: r ≥ ``low`` (and below the band above it)."""

    low: float
    name: str      # the word on the scale
    phrase: str    # completes "the gradient …"


# The scale every sentence reads a ratio on, highest band first. The bounds:
# 10 and 0.1 are one order of magnitude either way of "unchanged" (1: unchanged); 1e-3 is the gradient
# reach's own threshold (core.probe.REACH_THRESHOLD), so a ratio below it always comes
# with a reach short of T; below 1e-8 a gradient is under float32's relative precision
# (ε ≈ 1.2e-7) against the last step's: added to it in a weight's gradient, it is lost
# in the rounding.
RATIO_BANDS: tuple[Band, ...] = (
    Band(10.0, "exploding", "grows back through time (exploding)"),
    Band(1.0, "grown", "reaches step 0 undiminished, even grown (not yet exploding)"),
    Band(0.1, "nearly undiminished", "reaches step 0 nearly undiminished"),
    Band(1e-3, "weakened", "reaches step 0 weakened"),
    Band(1e-8, "mostly vanished", "has mostly vanished by step 0"),
    Band(0.0, "vanished", "has vanished by step 0"),
)


# A held-out loss at or above this fraction of the task's baseline counts as "at the
# baseline": no better than a model that ignores its inputs, within 10 %.
AT_BASELINE = 0.9


# The most open unit of a gate counts as open from this mean activation on.
OPEN_UNIT = 0.9


def ratio_band(r: float) -> Band | None:
    """The band of :data:`RATIO_BANDS` a finite ratio ``r`` ≥ 0 falls in; None otherwise."""
    if r is None or not _finite(r) or r < 0:
        return None
    return next(b for b in RATIO_BANDS if r >= b.low)


def ratio_scale() -> str:
    """The scale, as one line for a caption or tooltip."""
    bands = []
    for upper, band in zip((None,) + RATIO_BANDS[:-1], RATIO_BANDS):
        if upper is None:
            bands.append(f"> {sci(band.low)}: {band.name}")
        elif band.low == 0:
            bands.append(f"< {sci(upper.low)}: {band.name}")
        else:
            bands.append(f"{sci(band.low)} – {sci(upper.low)}: {band.name}")
    return ("Scale of ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖ (the gradient at step 0 over the last step's): "
            + " · ".join(bands) + " · inf/NaN: exploded (the run diverges). Gradient reach: "
            "the steps back from the last whose gradient stays ≥ 1e-3 of the largest after "
            f"them. Loss “at the baseline”: within {1 - AT_BASELINE:.0%} of what a model that "
            "ignores its inputs scores.")


def _ratio_of_last(r: float) -> str:
    """'3e-09 of' / '5.9 times' the last step's."""
    return f"{sci(r)} times" if r >= 1 else f"{sci(r)} of"


def _nonfinite(summary: dict) -> str | None:
    """'NaN', 'inf' or 'inf/NaN' when the probe's h-gradients are not all finite, else None.

    ``summary['nonfinite']`` (set by the page from the probe's rows) names it exactly;
    otherwise it is read off the summary: a non-finite first or last gradient, or a reach
    of 0 beside a finite, non-zero last gradient (core.probe gives reach 0 exactly when a
    gradient is not finite or all are 0)."""
    if summary.get("nonfinite"):
        return summary["nonfinite"]
    values = [summary.get(k) for k in ("h_grad_first", "h_grad_last", "vanishing_ratio")]
    values = [v for v in values if isinstance(v, (int, float))]
    if any(math.isinf(v) for v in values):
        return "inf"
    first, last = summary.get("h_grad_first"), summary.get("h_grad_last")
    if any(math.isnan(v) for v in (first, last) if isinstance(v, float)):
        return "NaN"
    if summary.get("gradient_reach") == 0 and _finite(last) and last > 0:
        return "inf/NaN"
    return None


def probe_context(evals: pd.DataFrame | None, metrics: pd.DataFrame | None, step: int,
                  baseline: float | None = None, metric_name: str | None = None) -> dict:
    """What the sentence on the probe at training ``step`` reads besides the probe: the
    latest held-out evaluation at or before ``step`` (``loss``, ``metric``, ``solved``,
    ``eval_step``), the task's ``baseline`` loss, and ``diverged_at``: the first training
    step whose loss was not finite (None if none). Tables as in core.runs.TABLES."""
    ctx: dict = {"step": int(step), "baseline": baseline, "metric_name": metric_name,
                 "diverged_at": None}
    if evals is not None and len(evals) and "step" in evals.columns:
        before = evals[evals["step"] <= step]
        if len(before):
            row = before.loc[before["step"].idxmax()]
            ctx.update(loss=float(row["loss"]), metric=float(row["metric"]),
                       solved=bool(row["solved"]), eval_step=int(row["step"]))
    if metrics is not None and len(metrics) and "loss" in metrics.columns:
        bad = metrics[~np.isfinite(pd.to_numeric(metrics["loss"], errors="coerce")
                                   .to_numpy(dtype=float))]
        if len(bad):
            ctx["diverged_at"] = int(bad["step"].min())
    return ctx


def describe_gradient(summary: dict, arch: str | None = None,
                      context: dict | None = None) -> str:
    """A few sentences on how far the gradient reaches back at one probe, and what that
    does and does not show.

    ``summary`` is a probe's (:func:`core.probe.summarise`): ``vanishing_ratio``,
    ``gradient_reach`` and ``steps``; ``mean_f``/``mean_f_max``/``cell_ratio`` (LSTM) or
    ``mean_z``/``mean_z_max`` (GRU) when present; ``nonfinite`` ('NaN'/'inf') when the
    page found non-finite gradients in the probe. ``context`` (:func:`probe_context`)
    adds the training step, the held-out loss and "solved" at that step, the baseline
    and the step the run diverged at. The ratio is worded on :data:`RATIO_BANDS`; the
    reach, the loss and the gate values are each said for what they measure, so no
    clause claims what another number contradicts.
    """
    ctx = context or {}
    ratio = summary.get("vanishing_ratio")
    reach = summary.get("gradient_reach")
    steps = summary.get("steps")
    if reach is None or not steps or (ratio is None and _nonfinite(summary) is None):
        return "No gradient probe yet: the first one is taken on the first training step."
    T, reach = int(steps), int(reach)
    step = ctx.get("step")
    diverged_at = ctx.get("diverged_at")

    bad = _nonfinite(summary)
    if bad is not None:
        at = f" at training step {step}" if step is not None else ""
        text = (f"The gradient exploded to {bad}{at}: some ‖∂ℓ/∂h_t‖ is no longer a finite "
                "number, so neither the ratio to the last step nor the reach can be measured.")
        if diverged_at is not None:
            text += (f" The run diverged: its training loss stopped being finite at step "
                     f"{diverged_at}." if step is None or step >= diverged_at else
                     f" The run diverged at training step {diverged_at}, when its training "
                     "loss stopped being finite.")
        return text

    parts = []
    if not _finite(ratio) or summary.get("h_grad_last") == 0:
        parts.append("No gradient reaches the last step (‖∂ℓ/∂h_T−1‖ = 0), so the ratio to "
                     "it is undefined.")
        band = None
    else:
        band = ratio_band(ratio)
        if ratio == 0:
            parts.append("The gradient has vanished entirely by step 0: ‖∂ℓ/∂h₀‖ underflowed "
                         "to exactly 0.")
        else:
            parts.append(f"The gradient {band.phrase}: ‖∂ℓ/∂h₀‖ is {_ratio_of_last(ratio)} "
                         "the last step's.")
    parts.append(_reach_clause(ratio, reach, T, band))
    parts.append(_loss_clause(ctx, band))
    if diverged_at is not None:
        when = "later, at" if step is not None and step < diverged_at else "at"
        parts.append(f"This run diverged {when} training step {diverged_at} (its training loss "
                     "stopped being finite).")
    if arch == "lstm" and summary.get("mean_f") is not None:
        parts.append(_forget_clause(summary))
    if arch == "gru" and summary.get("mean_z") is not None:
        parts.append(_gate_clause(summary, "z", "The update gate z", "most carrying")
                     + "; z → 1 carries h, and its gradient, unchanged.")
    if arch in SPEC and SPEC[arch].carry == "gain" and summary.get("mean_gain") is not None:
        parts.append(_gate_clause(summary, "gain", "The carry path's per-step gain",
                                  "most carrying")
                     + f" ({SPEC[arch].label}: {SPEC[arch].answer}); a product of gains near "
                     "1 carries the gradient back, below 1 it shrinks geometrically.")
    return " ".join(p for p in parts if p)


def _reach_clause(ratio, reach: int, T: int, band: Band | None) -> str:
    """The gradient reach, worded so that it never contradicts the ratio: the reach compares
    each step with the largest gradient after it, the ratio compares step 0 with the last."""
    if reach >= T:
        return (f"Gradient reach: all {T} of {T} steps (every step's gradient is at least 1e-3 "
                "of the largest after it).")
    first = T - reach                     # the earliest step still counted
    below = first - 1                     # the latest step below the threshold
    if band is not None and ratio >= 1e-3:
        return (f"Gradient reach: {reach} of {T} steps: counting back, step {below} is below "
                "1e-3 of the largest gradient after it, a peak larger than the last step's, "
                "while the ratio compares step 0 with the last step only.")
    if reach >= T / 2:
        return (f"Gradient reach: {reach} of {T} steps: the gradient stays above 1e-3 of the "
                f"largest after it back to step {first} and falls off in the first {first}.")
    return (f"Gradient reach: {reach} of {T} steps: the gradient stays above 1e-3 of the "
            f"largest after it only back to step {first}.")


def _loss_clause(ctx: dict, band: Band | None) -> str:
    """What the held-out loss at this step says besides the gradient ('' without one)."""
    loss, base = ctx.get("loss"), ctx.get("baseline")
    if not _finite(loss):
        return ""
    name = ctx.get("metric_name") or "metric"
    when = ctx.get("eval_step")
    held = ("The held-out loss" if when is None or when == ctx.get("step") else
            f"At the latest evaluation (step {when}) the held-out loss")
    if ctx.get("solved"):
        return (f"The task is solved: held-out {name} {sci(ctx.get('metric'))}"
                + (f" at the latest evaluation (step {when})." if held[0] == "A" else "."))
    if not _finite(base) or base <= 0:
        return f"{held} is {sci(loss)}: the task is not solved yet."
    if loss >= AT_BASELINE * base:
        where = "at" if loss <= base / AT_BASELINE else "above"
        text = (f"{held} is {sci(loss)}, {where} the baseline {sci(base)} (what a model that "
                "ignores its inputs scores): the task is not learned")
        reaches = band is not None and 1e-3 <= band.low < 10
        return text + (" yet. A gradient that reaches back is needed to learn it, not proof "
                       "that it has been learned." if reaches else ".")
    return f"{held} is {sci(loss)}, below the baseline {sci(base)}, but the task is not solved yet."


def _forget_clause(summary: dict) -> str:
    """The forget gate, the cell path, and why one open unit need not carry the norm."""
    text = _gate_clause(summary, "f", "The forget gate", "most open")
    cell, top = summary.get("cell_ratio"), summary.get("mean_f_max")
    if not _finite(cell):
        return text + "."
    band = ratio_band(cell)
    text += (f"; along the cell state, ‖∂ℓ/∂c₀‖ is {_ratio_of_last(cell)} ‖∂ℓ/∂c_T−1‖ "
             f"({band.name if band else 'undefined'}; the cell path scales the gradient by f "
             "at every step).")
    if _finite(top) and top >= OPEN_UNIT and cell < 1e-3:
        # Measured on the "LSTM remembers" preset (seed 0, steps 500-750): the most open
        # unit's f ≈ 0.998 while the cell ratio is ~6e-9; that unit's cell was saturated,
        # tanh′(c_T−1) = 0, so exactly none of ‖∂ℓ/∂c_T−1‖ entered it. From step 850, with
        # the task solved, it took 99.8 % of ‖∂ℓ/∂c_T−1‖ and carried 0.85 of it to c₀.
        text += (" An open unit is no contradiction: it carries back only the gradient that "
                 "enters its own cell, and the loss reaches a cell only through "
                 "h = o ⊙ tanh(c). A unit whose cell is saturated (tanh′(c) ≈ 0), whose output "
                 "gate is shut or whose output the readout ignores receives almost none, so the "
                 "norm over all units is that of the others, which f ≈ "
                 f"{summary['mean_f']:.2f} shrinks at every step.")
    return text


def _gate_clause(summary: dict, gate: str, name: str, extreme: str) -> str:
    """"The forget gate averages 0.35 over its units (its most open unit: 1.00)": the
    unit clause only when the mean hides a unit well above it, since a mean over units
    hides the few that stay open and carry the memory."""
    mean, top = summary[f"mean_{gate}"], summary.get(f"mean_{gate}_max")
    text = f"{name} averages {mean:.2f}"
    if top is not None and top - mean > 0.05:
        text += f" over its units (its {extreme} unit: {top:.2f})"
    return text


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _loss_vs_baseline(loss, base) -> str:
    """'held-out loss 0.171, at the baseline 0.167' (or above / below it)."""
    if not _finite(loss):
        return "no held-out loss yet"
    if not _finite(base) or base <= 0:
        return f"held-out loss {sci(loss)}"
    where = ("below" if loss < AT_BASELINE * base else
             "at" if loss <= base / AT_BASELINE else "above")
    return f"held-out loss {sci(loss)}, {where} the baseline {sci(base)}"


def compare_sentence(models: list[dict]) -> str:
    """Two or three sentences reading a comparison of models trained in lockstep.

    Each dict (one per model, in the order shown): ``label``, ``status``, ``step`` (steps
    done), ``steps`` (budget), ``solved``, ``steps_to_solve``, ``eval_loss``, ``baseline``,
    and from its latest probe ``vanishing_ratio``, ``gradient_reach``, ``seq_steps`` (T).
    The ratios are worded on :data:`RATIO_BANDS`, as under a single run's charts.
    """
    if not models:
        return ""
    done = min(int(m.get("step") or 0) for m in models)
    budget = max(int(m.get("steps") or 0) for m in models)
    parts = [f"After {done} of {budget} training steps on identical batches:"]
    outcome = []
    for m in models:
        label = m["label"]
        if m.get("status") == "diverged":
            outcome.append(f"{label} diverged (its loss stopped being finite)")
        elif m.get("solved"):
            outcome.append(f"{label} solved the task at step {m.get('steps_to_solve')}")
        else:
            verb = "did not solve it" if m.get("status") in ("finished", "stopped") else "has not solved it yet"
            outcome.append(f"{label} {verb} ({_loss_vs_baseline(m.get('eval_loss'), m.get('baseline'))})")
    parts.append(_join(outcome) + ".")
    probed = []
    for m in models:
        r, reach, T = m.get("vanishing_ratio"), m.get("gradient_reach"), m.get("seq_steps")
        if r is None or reach is None:
            continue
        band = ratio_band(r)
        if band is None:
            probed.append(f"{m['label']}: not finite (exploded)")
            continue
        tail = f", reach {int(reach)} of {int(T)}" if T else ""
        probed.append(f"{m['label']}: {sci(r)} ({band.name}{tail})")
    if probed:
        parts.append("At each model's latest probe, ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖ is "
                     + "; ".join(probed) + ".")
    return " ".join(parts)

"""Sentences that read the measured numbers for the learner.

All of the app's prose that depends on a measurement lives here: the sentence under
a run's charts (:func:`describe_gradient`, from a probe's summary, see
:func:`core.probe.summarise`), and the Explain page's sentences and verdicts (from
the dicts and tables of :mod:`core.explain`). The measuring code returns numbers;
these functions only put them into words: no number here is assumed or simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# The Explain page's verdicts on a claim, in this order of strength.
VERDICTS = ("Confirmed", "Half-true", "Refuted")


def sci(x: float | None) -> str:
    """A compact number for people: 3e-09, 0.42, 1.7e+04; '—' when unknown (None, NaN).

    The one number format of every sentence, table and caption: at most three
    significant digits, scientific notation below 0.01 and from 1000 on."""
    if x is None or isinstance(x, bool):
        return "—" if x is None else str(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:.3g}"
    return f"{x:.0e}" if abs(x) < 1e-2 else f"{x:.1e}"


# ---------------------------------------------------------------- the gradient's reach, in words

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


# ---------------------------------------------------------------- the Explain page's measurements


QUESTION = "How do LSTM and GRU prevent the vanishing gradient problem?"
# The question's id could not be confirmed offline: a search for its exact title finds it.
QUESTION_URL = ("https://stats.stackexchange.com/search?q="
                "%22How+do+LSTM+and+GRU+prevent+the+vanishing+gradient+problem%22")


def _band_name(r) -> str:
    band = ratio_band(r)
    return band.name if band else "not finite"


def explain_answer(rnn: dict, lstm: dict, gru: dict, forget: pd.DataFrame,
                   anchors: dict | None = None) -> str:
    """The Explain page's opening: a plain-language answer to :data:`QUESTION`, every claim
    reading a number measured further down the page (``rnn``/``lstm``/``gru``: the dicts of
    core.explain's rnn_facts, lstm_facts, gru_facts; ``forget``: forget_gate_gain's table,
    rows in FORGET_VARIANTS order), each linked to its section (``anchors``: section → the
    page's anchor, keys rnn, lstm, gru). Ratios are worded on :data:`RATIO_BANDS`."""
    a = {"rnn": "rnn", "lstm": "lstm", "gru": "gru", **(anchors or {})}
    T = rnn["steps"]
    r_rnn, r_cell = rnn["vanishing_ratio"], lstm["cell_ratio"]
    rows = forget.reset_index(drop=True)
    open_row = rows.iloc[2]                     # forget_bias = 3
    r_open = open_row["cell_ratio"]
    rnn_vanishes = _finite(r_rnn) and r_rnn < 1e-3
    text = (f"**In short, measured on this page** (untrained models, T = {T} steps): ")
    if rnn_vanishes:
        text += (f"a vanilla RNN multiplies the gradient by its recurrent Jacobian at every "
                 f"step, so over a long lag it shrinks geometrically (here × {rnn['per_step']:.2g} "
                 f"per step): the gradient reaching step 0 is {sci(r_rnn)} of the last step's: "
                 f"it {ratio_band(r_rnn).phrase} ([§1](#{a['rnn']})). ")
    else:
        text += (f"here the vanilla RNN's gradient reaching step 0 is {sci(r_rnn)} of the last "
                 f"step's ({_band_name(r_rnn)}, [§1](#{a['rnn']})). ")
    text += ("The LSTM adds a cell state updated by **addition**, c_t = f_t ⊙ c_t−1 + i_t ⊙ g_t, "
             "so along the cell the gradient is scaled at each step by the forget gate f alone. ")
    if _finite(r_cell) and r_cell < 1e-3 and _finite(r_open) and r_open >= 1e-3:
        text += (f"That is not a guarantee: at torch's default init f ≈ {lstm['mean_f']:.2f} and "
                 f"the cell's gradient reaching step 0 is still {sci(r_cell)} of the last "
                 f"step's ({_band_name(r_cell)}); the same network with f ≈ "
                 f"{open_row['mean_f']:.2f} keeps {sci(r_open)} ({_band_name(r_open)}, "
                 f"[§2](#{a['lstm']})). ")
    else:
        text += (f"With f ≈ {lstm['mean_f']:.2f} (torch's default init) the cell's gradient "
                 f"reaching step 0 is {sci(r_cell)} of the last step's ({_band_name(r_cell)}); "
                 f"with f ≈ {open_row['mean_f']:.2f}, {sci(r_open)} ([§2](#{a['lstm']})). ")
    g0, g1 = gru["default_ratio"], gru["biased_ratio"]
    text += (f"The GRU does the same with its update gate z: {sci(g0)} at default init "
             f"(z ≈ {gru['default_mean_z']:.2f}), {sci(g1)} with z ≈ {gru['biased_mean_z']:.2f} "
             f"([§3](#{a['gru']})). ")
    gate_decides = (_finite(r_cell) and _finite(r_open) and r_open > 1e3 * r_cell
                    and _finite(g0) and _finite(g1) and g1 > 1e3 * g0)
    if gate_decides:
        text += ("So they do not prevent vanishing by construction: they give the network a "
                 "gate that sets the gain of an additive path, and a gate near 1 carries the "
                 "gradient across the sequence. Training has to open it where memory is "
                 "needed, which the Train page shows live.")
    return text


def rnn_sentence(r: dict) -> str:
    """What :func:`core.explain.rnn_facts` measured, in words; every clause follows the numbers."""
    L = r["steps"] - 1
    text = (f"Measured: over {L} steps the Jacobian's norm is **{sci(r['jac_full'])}**; it "
            f"{'shrinks' if r['per_step'] < 1 else 'grows'} by × {r['per_step']:.3g} per step on "
            "average, a straight line on the log axis below. ")
    if r["w_norm"] > 1:
        text += (f"The textbook bound does not explain it: ‖W_hh‖₂ = {r['w_norm']:.3g} > 1, so "
                 f"the bound allows growth to {sci(r['bound_full'])}")
    else:
        text += (f"Here ‖W_hh‖₂ = {r['w_norm']:.3g} ≤ 1, so the bound does promise decay, but "
                 f"only to {sci(r['bound_full'])}: the measured decay is much faster")
    if r["jac_one_step"] > 1:
        text += (f", and a single step can even stretch (‖∂h_{L}/∂h_{L - 1}‖₂ = "
                 f"{r['jac_one_step']:.3g})")
    text += (f". Powers of W_hh alone shrink like its spectral radius, ρ(W_hh) = "
             f"{r['w_radius']:.3g} per step, and tanh′ ≤ 1 (mean {r['mean_phi_prime']:.3g}) scales "
             f"each factor's rows down further. The loss gradient reaching h₀ is "
             f"{sci(r['vanishing_ratio'])} of the one at h_{L}.")
    return text


def lstm_sentence(m: dict) -> str:
    """What :func:`core.explain.lstm_facts` measured at initialisation, in words."""
    L = m["steps"] - 1
    vanished = m["cell_ratio"] < 1e-3
    text = ("**At initialisation the LSTM's gradient vanishes too.** " if vanished else "")
    text += (f"torch's default init puts every gate near σ(0) = 0.5 (measured mean f = "
             f"{m['mean_f']:.3f}), so the cell path scales the gradient by about "
             f"{m['mean_f']:.2f} at every step: ‖∂c_{L}/∂c_0‖₂ = {sci(m['cell_full'])} over {L} "
             f"steps, and the loss gradient reaching c₀ is {sci(m['cell_ratio'])} of the one at "
             f"c_{L} (for h: {sci(m['vanishing_ratio'])}). The last step alone scales it by "
             f"‖∂c_{L}/∂c_{L - 1}‖₂ = {m['cell_one_step']:.3g}. What the LSTM has and the RNN "
             "lacks is a **knob**: the gain of the cell path is f, a number the network sets "
             "with its forget-gate bias and weights. The same model with only the forget gate "
             "changed:")
    return text


def forget_sentence(table: pd.DataFrame) -> str:
    """What :func:`core.explain.forget_gate_gain` measured, in words. ``table``'s rows are
    in the order of ``FORGET_VARIANTS``: default init, forget_bias 1, forget_bias 3, f ≡ 1."""
    ratios = table["cell_ratio"].tolist()
    monotone = ratios[0] < ratios[1] < ratios[2]
    text = ("The measured cell ratio follows the forget gate: the more open f, the further the "
            "gradient reaches. " if monotone else
            "Here the measured cell ratio does not simply follow the mean forget gate. ")
    none = ratios[3]
    if none > 1:
        text += (f"The terms through the gates add gradient of their own (with f ≡ 1 the ratio "
                 f"is {sci(none)}, above 1), but the diagonal f term decides whether anything "
                 "survives a long lag. ")
    text += "Training can move f, and that is what can save the LSTM:"
    return text


def gru_sentence(g: dict) -> str:
    """What :func:`core.explain.gru_facts` measured, in words."""
    L, T = g["steps"] - 1, g["steps"]
    fate = "vanishes like the others" if g["default_full"] < 1e-3 else "shrinks"
    return (f"At torch's default init z ≈ {g['default_mean_z']:.2f} and the GRU's gradient "
            f"{fate} ({sci(g['default_full'])} over {L} steps, reach {g['default_reach']} of "
            f"{T}). Push z towards 1 (update-gate bias +{g['z_bias']:g}: mean z = "
            f"{g['biased_mean_z']:.3f}) and the same weights give {sci(g['biased_full'])}, "
            f"reach {g['biased_reach']} of {T}.")


def trained_sentence(tv: dict) -> str:
    """What :func:`core.explain.trained_vs_init` measured, in words (LSTM f or GRU z)."""
    g, a, b = tv["gate"], tv["init"], tv["trained"]
    if b["gate_max_unit"] > a["gate_max_unit"] + 0.1 and b["reach"] > a["reach"]:
        k = b["units_open"]
        who = (f"of {k} of its {b['units']} units (mean {g} > 0.9)" if k
               else "of its most open unit")
        return (f"Training **opened the gate {who}**: the most open unit averages "
                f"{g} = {b['gate_max_unit']:.3f}, against {a['gate_max_unit']:.3f} at step 0, "
                f"while the mean over all units went from {a['gate_mean']:.3f} to "
                f"{b['gate_mean']:.3f}. The carry path alone, through its best unit, keeps "
                f"{sci(b['carry_gain'])} of the gradient over the whole sequence (at step 0: "
                f"{sci(a['carry_gain'])}), and the gradient reach grew from {a['reach']} to "
                f"{b['reach']} steps.")
    return (f"In this run the gate has not opened much (most open unit {g} = "
            f"{b['gate_max_unit']:.3f}, {a['gate_max_unit']:.3f} at step 0); the gradient reach "
            f"went from {a['reach']} to {b['reach']} steps.")


# ---------------------------------------------------------------- the three answers


@dataclass(frozen=True)
class Verdict:
    """One answer of the original question, judged."""

    answer: str          # "Answer 1" …
    claim: str           # a short quote of the claim
    verdict: str         # one of VERDICTS
    evidence: str        # the measurement, in words with its numbers
    parts: tuple = ()    # sub-claims: (claim, verdict, evidence) each


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _ratio_words(r: float) -> str:
    """'the gradient reaching step 0 is …' completed for a measured ratio r."""
    if r == 0:
        return "exactly 0 (it underflowed float32 on the way)"
    if not _finite(r):
        return f"{r} (it overflowed float32)"
    return f"{sci(r)} of the last step's" if r < 1 else f"{sci(r)} times the last step's"


def verdicts(evidence: dict) -> list[Verdict]:
    """Each answer of the original question, worded from
    :func:`core.explain.claim_evidence` (which decided each claim on the numbers);
    the evidence sentences quote the numbers."""
    T = evidence["steps"]
    rnn, lstm, c = evidence["rnn"], evidence["lstm"], evidence["checks"]
    default, fb3, nofg = (evidence["forget"][k] for k in ("default", "bias_3", "none"))
    lstm_ok, shut, fopen, rnn_big = (evidence["saturation"][k] for k in (
        "lstm", "lstm_shut", "lstm_open", "rnn_scaled"))

    # Answer 1: the additive cell path whose gain is the forget gate.
    gain_controls = c["gate_sets_gain"]
    v1 = "Confirmed" if gain_controls else "Refuted"
    e1 = (f"Over {T - 1} steps, the gradient reaching the first cell state, "
          f"‖∂ℓ/∂c₀‖/‖∂ℓ/∂c_T−1‖, is {sci(nofg['cell_ratio'])} with f ≡ 1 and "
          f"{sci(fb3['cell_ratio'])} with f ≈ "
          f"{fb3['mean_f']:.2f} (reach {int(fb3['gradient_reach'])} of {T} steps), against "
          f"{sci(default['cell_ratio'])} at torch's default init (f ≈ {default['mean_f']:.2f}, "
          f"reach {int(default['gradient_reach'])} steps)")
    e1 += (": the forget gate's value, which the network learns, decides how much gradient the "
           "additive path carries." if gain_controls else
           ": here the forget gate's value did not decide the gradient's reach.")
    if gain_controls and c["lstm_vanishes_at_init"]:
        e1 += (" A caveat the answer leaves out: at initialisation this LSTM's gradient vanishes "
               "too; the additive path only helps once the forget gate is near 1, which "
               "training (or a forget-gate bias) has to bring about.")

    # Answer 2: "passes the previous state … all states have information about previous states".
    v2 = "Refuted" if c["rnn_passes_state"] and c["both_vanish"] else "Half-true"
    e2 = (f"A vanilla RNN passes its previous state on too: ‖∂h_T−1/∂h_T−2‖₂ = "
          f"{sci(rnn['jac_one_step'])} at the last step, and h_T−1 depends on the first input "
          f"(‖∂h_T−1/∂x₀‖₂ = {sci(rnn['dep_x0'])}{', non-zero' if rnn['dep_x0'] > 0 else ''}). "
          f"Its gradient reaching step 0 is {sci(rnn['vanishing_ratio'])} of the last step's; an "
          f"untrained LSTM, which passes h and c, gets {sci(lstm['vanishing_ratio'])}.")
    if v2 == "Refuted":
        e2 += (" Passing the state on is what every recurrent net does, and it does not keep the "
               "gradient alive: what decides is the gain of the path it is passed along.")

    # Answer 3, claim by claim.
    shut_kills, bounded_explodes = c["saturation_kills"], c["bounded_explodes"]
    big = rnn_big["vanishing_ratio"]
    bounded_refuted = shut_kills or bounded_explodes
    e_bounded = (
        f"σ′ ≤ 1/4 and tanh′ ≤ 1, and both go to 0 in saturation. Gates saturated shut: mean σ′ "
        f"= {shut['mean_derivative']:.3g}, the gradient reaching step 0 is "
        f"{_ratio_words(shut['vanishing_ratio'])} (default init: "
        f"{sci(lstm_ok['vanishing_ratio'])}), and ‖∂L/∂W_hh‖ = {sci(shut['grad_w_hh'])} (default "
        f"{sci(lstm_ok['grad_w_hh'])})"
        + (": the saturated gate can hardly learn to reopen. " if shut_kills else ". ")
        + f"With weights × {evidence['scale']:g}, {rnn_big['saturated']:.0%} of the tanh RNN's "
        f"units saturated, the gradient reaching step 0 is {_ratio_words(big)}"
        + (": bounded outputs did not stop it from exploding." if bounded_explodes else "."))
    mult_refuted = c["product_shrinks"]
    e_mult = (f"The cell path multiplies the gradient by f at every step: with f ≈ "
              f"{default['mean_f']:.2f}, ‖∂ℓ/∂c₀‖/‖∂ℓ/∂c_T−1‖ = {sci(default['cell_ratio'])} over "
              f"{T - 1} steps (mean f^(T−1) = {sci(default['comparison_f_pow'])}, for "
              f"comparison); with f ≡ 1 it is {sci(nofg['cell_ratio'])}"
              + (": only f ≈ 1 preserves the magnitude." if mult_refuted else "."))
    keep_confirmed = c["cell_keeps_and_drops"]
    e_keep = (f"Forget gate saturated open (f ≈ {fopen['mean_f']:.3f}): the gradient reaches "
              f"{int(fopen['gradient_reach'])} of {T} steps; gates saturated shut: "
              f"{int(shut['gradient_reach'])}.")
    parts = [
        (("sigmoid/tanh outputs are bounded, so gradients can flow “without becoming too small "
         "or too large”"), "Refuted" if bounded_refuted else "Confirmed", e_bounded),
        ("“element-wise multiplication preserves the gradients' magnitude”",
         "Refuted" if mult_refuted else "Confirmed", e_mult),
        ("the memory cell can “selectively keep or drop information”",
         "Confirmed" if keep_confirmed else "Refuted", e_keep),
    ]
    short = ("bounded outputs", "multiplication preserving the magnitude", ("the memory cell's "
             "keep/drop"))
    holds = [n for n, (_, v, _) in zip(short, parts) if v == "Confirmed"]
    fails = [n for n, (_, v, _) in zip(short, parts) if v == "Refuted"]
    v3 = "Half-true" if holds and fails else ("Confirmed" if holds else "Refuted")
    e3 = " ".join(x for x in (
        f"Holds: {', '.join(holds)}." if holds else "",
        f"Does not hold: {', '.join(fails)}." if fails else "",
    ) if x) + " Claim by claim:"
    return [
        Verdict("Answer 1", "“a unique additive gradient structure that includes direct access to "
                "the forget gate's activations”", v1, e1),
        Verdict("Answer 2", "“LSTM passes the previous state's hidden weights to the current "
                "state … all states now have some information about all of the previous "
                "states”", v2, e2),
        Verdict("Answer 3", "“the gates use sigmoid and tanh … bounded output ranges … "
                "element-wise multiplication preserves the gradients' magnitude … the memory "
                "cell allows the network to selectively keep or drop information”", v3, e3,
                tuple(parts)),
    ]


# ---------------------------------------------------------------- shipped sweeps (issue 16)


def duration(seconds: float) -> str:
    """A wall time for people: '48 s', '12 min', '2.3 h'."""
    s = float(seconds)
    if s < 100:
        return f"{s:.0f} s"
    if s < 6000:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _chance(task) -> float | None:
    """Chance accuracy of a classification task whose classes are uniform (recall,
    temporal order): 1 / number of classes; None for other metrics."""
    return 1.0 / task.output_size if task.metric_name == "accuracy" else None


def shipped_cell_sentence(row: dict, task) -> str:
    """One training of a shipped sweep, read from its results row (``label``, ``seq_len``,
    ``seed``, ``solved``, ``steps_to_solve``, ``steps_done``, ``eval_metric``,
    ``metric_name``, ``gradient_reach``, ``wall_s``) and its task (threshold, chance)."""
    name = row.get("metric_name") or task.metric_name
    head = f"**{row['label']}**, T = {int(row['seq_len'])}, seed {int(row['seed'])}: "
    sign = "≥" if task.higher_is_better else "<"
    reach = row.get("gradient_reach")
    steps = task.steps
    tail = (f" At the end the gradient reached {int(reach)} of {steps} steps (final probe)."
            if reach is not None and reach == reach else "")
    if row.get("solved"):
        return (head + f"solved at step {int(row['steps_to_solve'])} (the first evaluation with "
                f"held-out {name} {sign} {task.success:g}), after {float(row['wall_s']):.0f} s of "
                "training under the sweep's load." + tail)
    chance = _chance(task)
    versus = (f" (chance: {chance:.3g})" if chance is not None else
              f" (baseline: {task.baseline_loss:.3g})")
    return (head + f"not solved in {int(row['steps_done'])} steps: held-out {name} "
            f"{sci(row['eval_metric'])}{versus}." + tail)


# ---------------------------------------------------------------- the pure lag (issue 16)


def _direction(x: float, up: str = "rose", down: str = "fell") -> str:
    return f"{up} by {x:.3f}" if x > 0 else f"{down} by {-x:.3f}" if x < 0 else "did not move"


def _share_words(p: float) -> str:
    """How a share of units reads: no consistent direction between a quarter and three."""
    if 0.25 <= p <= 0.75:
        return "no consistent direction"
    return ("a consistent direction, down (closing the gate)" if p > 0.75 else
            "a consistent direction, up (opening the gate)")


def pure_lag_gradient_sentence(default: dict, chrono: dict, short_lag: int) -> str:
    """The chicken and egg, from two :func:`core.explain.purelag.bias_gradient` results."""
    T = default["steps"]
    return (
        f"At torch's default init (mean f = {default['mean_f']:.2f}) the gradient reaching the "
        f"first cell state is {sci(default['cell_ratio'])} of the last one's after {T - 1} "
        f"steps. The forget-gate bias b_f is shared by every step, so its gradient is a sum "
        f"over steps, ∂L/∂b_f = Σ_t ∂L/∂a^f_t. On the first training batch ({default['batch']} "
        f"sequences) the last {short_lag} steps make {default['short_share']:.1%} of that sum "
        f"(cosine {default['short_cosine']:.5f} with it), the steps at lags ≥ {T // 2} only "
        f"{sci(default['long_share'])} of it: the direction b_f is pushed in is set by the "
        f"last few distractors, and the symbol at step 0 has no say in it. Over the units it "
        f"has {_share_words(default['units_down'])}: {default['units_down']:.0%} of them "
        f"point down. With chrono init (mean f = {chrono['mean_f']:.2f}) the gradient reaching the "
        f"first cell state is {sci(chrono['cell_ratio'])} of the last one's, and the lags "
        f"≥ {T // 2} make {sci(chrono['long_share'])} of ∂L/∂b_f."
    )


def first_steps_sentence(update: dict, runs: pd.DataFrame, metrics: dict, names: dict,
                         lr: float, steps: int, T: int) -> str:
    """What the first real training steps did (:func:`core.explain.purelag.first_steps`,
    :func:`core.explain.purelag.first_update`)."""
    def at(run, step, col):
        d = runs[(runs["run"] == run) & (runs["step"] == step)]
        return float(d[col].iloc[0])

    lo, hi = f"{update['size_min']:.4f}", f"{update['size_max']:.4f}"
    first = ("Adam's first update, taken for real on that batch, moved every unit's b_f by "
             + (lo if lo == hi else f"{lo} to {hi}"))
    ratio = update["size"] / lr
    if abs(ratio - 2) < 0.05:
        first += (f" = 2 × lr (lr = {lr:g}: b_ih and b_hh each move by lr, since Adam's first "
                  "step is lr times the gradient's sign, whatever its size)")
    text = (first + f", {update['down']} of {update['units']} units down, and "
            f"{update['agree']} of {update['units']} along −∂L/∂b_f as measured above. To carry "
            f"1e-3 of the gradient back {T - 1} steps a unit needs f ≥ {update['f_needed']:.3f}, "
            f"b_f ≥ {update['b_needed']:.2f}: from b_f ≈ {round(update['b_start'], 2) + 0.0:.2f} "
            f"at {update['size']:.4f} per update, {update['updates_needed']:.0f} updates or "
            f"more, every one pushing up.\n\nIn {steps} real training steps:")
    parts = []
    for run in dict.fromkeys(runs["run"]):
        change = at(run, steps, "bf_mean") - at(run, 0, "bf_mean")
        m0, m1 = metrics[run]
        name = names[run]
        parts.append(
            f"{run}: mean b_f {_direction(change)} (mean f {at(run, 0, 'mean_f'):.3f} → "
            f"{at(run, steps, 'mean_f'):.3f}, most open unit {at(run, 0, 'mean_f_max'):.3f} → "
            f"{at(run, steps, 'mean_f_max'):.3f}), gradient reach {at(run, 0, 'reach'):.0f} → "
            f"{at(run, steps, 'reach'):.0f} of {T}, held-out {name} {sci(m0)} → {sci(m1)}")
    return text + " " + "; ".join(parts) + "."


def marker_sentence(summary: dict, runs: pd.DataFrame, steps: int) -> str:
    """Why adding is learnable at default init (:func:`core.explain.purelag.marker_gradients`
    and the adding run of :func:`core.explain.purelag.first_steps`)."""
    T = summary["steps"]
    med, use = summary["median"], summary["usable"]
    second, first, symbol = ("adding: second marker", "adding: first marker",
                             "recall: the symbol")

    def reach(run, step):
        d = runs[(runs["run"] == run) & (runs["step"] == step)]
        return int(d["reach"].iloc[0]) if len(d) else None

    text = (f"At init the gradient reaching adding's second marker (lag 0 to {T - T // 2 - 1}) is "
            f"≥ 1e-3 of the last input's in {use[second]:.0%} of sequences: its median stays "
            f"above 1e-3 up to a lag of {summary['usable_lag']}. The first marker's median is "
            f"{sci(med[first])} (≥ 1e-3 in {use[first]:.0%}), recall's symbol's "
            f"{sci(med[symbol])} (≥ 1e-3 in {use[symbol]:.0%}).")
    a0, a1 = reach("adding, default init", 0), reach("adding, default init", steps)
    r0, r1 = reach("recall, default init", 0), reach("recall, default init", steps)
    if None not in (a0, a1, r0, r1):
        grew = "grew" if a1 > a0 else "did not grow"
        text += (f" A marker at a short lag gives the forget gate a gradient that asks it to "
                 f"keep something, and the reach can grow from there: in the real run above, "
                 f"adding's reach {grew} from {a0} to {a1} steps in {steps} training steps; "
                 f"recall's went from {r0} to {r1}.")
    return text


def _row(table: pd.DataFrame, spec: str) -> dict:
    return table[table["spec"] == spec].iloc[0].to_dict()


def _solved(summary: pd.DataFrame, variant: str, T: int) -> str:
    d = summary[(summary["arch"] == variant) & (summary["seq_len"] == T)]
    return f"{int(d['successes'].iloc[0])}/{int(d['n'].iloc[0])}" if len(d) else "—"


def input_gate_sentence(table: pd.DataFrame, T: int, sweep: pd.DataFrame | None = None) -> str:
    """What chrono's input-gate bias does: the f-only rows of
    :func:`core.explain.purelag.cell_drift` against chrono (and the shipped sweep's
    outcome of each, when ``sweep`` — its summary — is given)."""
    f_only = _row(table, "lstm:forget_bias=5")
    chrono = _row(table, "lstm:gate_init=chrono")
    half = _row(table, "lstm:gate_init=chrono:bias_i=default")
    more = f_only["dx0"] > chrono["dx0"]
    text = (f"Opening the forget gate alone (bias 5, f ≈ {f_only['mean_f']:.3f}) "
            + ("passes more gradient to the symbol than chrono does"
               if more else "passes less gradient to the symbol than chrono")
            + f" (‖∂ℓ/∂x₀‖ = {sci(f_only['dx0'])} against {sci(chrono['dx0'])}). What differs is "
            f"the cell: with the input gate at i ≈ {f_only['i_distractors']:.2f} on the "
            f"{T - 1} distractor steps it adds them up, to an RMS of {f_only['rms_end']:.3g} at "
            f"t = T−1, with {f_only['saturated']:.0%} of the units in tanh's flat tails "
            f"(|tanh c| > 0.95), where the output's gradient enters the cell only at "
            f"o·(1 − tanh² c) = {f_only['dh_dc']:.3f} on average. Chrono also closes the input "
            f"gate (i ≈ {chrono['i_distractors']:.3f}): the cell's RMS is "
            f"{chrono['rms_end']:.3g}, {chrono['saturated']:.0%} saturated, o·(1 − tanh² c) = "
            f"{chrono['dh_dc']:.3f}. Chrono's forget biases with the input bias left at "
            f"torch's default do what the forget bias alone does: RMS {half['rms_end']:.3g}, "
            f"{half['saturated']:.0%} saturated.")
    if sweep is not None:
        text += (f" In the shipped sweep (recall, 3 seeds, 2000 steps) the forget bias alone "
                 f"solved {_solved(sweep, 'lstm:forget_bias=5', 50)} at T = 50, "
                 f"{_solved(sweep, 'lstm:forget_bias=5', 100)} at T = 100 and "
                 f"{_solved(sweep, 'lstm:forget_bias=5', 200)} at T = 200; chrono "
                 f"{_solved(sweep, 'lstm:gate_init=chrono', 50)}, "
                 f"{_solved(sweep, 'lstm:gate_init=chrono', 100)} and "
                 f"{_solved(sweep, 'lstm:gate_init=chrono', 200)}.")
    return text


def no_forget_gate_sentence(table: pd.DataFrame, curves: pd.DataFrame, remedy: str,
                            sweep: pd.DataFrame | None = None) -> str:
    """The 1997 LSTM (f ≡ 1) at init: its cell's drift and the remedy's row ``remedy``
    (a variant string of :data:`core.explain.purelag.DRIFT_VARIANTS`)."""
    nfg = _row(table, "lstm:no_forget_gate=true")
    fix = _row(table, remedy)
    c = curves[curves["variant"] == nfg["variant"]].sort_values("t")
    T = len(c)
    rms = c["rms"].to_numpy(dtype=float)
    bias = remedy.rpartition("bias_i=")[2]
    text = (f"Without a forget gate the cell is a running sum, c_t = Σ_s i_s ⊙ g_s: at torch's "
            f"init each distractor step adds i·g with i ≈ {nfg['i_distractors']:.2f}, and the "
            f"cell's RMS grows from {rms[1]:.3g} at t = 1 to {rms[T // 2]:.3g} at t = {T // 2} "
            f"and {rms[-1]:.3g} at t = {T - 1}, {nfg['saturated']:.0%} of the units saturated "
            f"(o·(1 − tanh² c) = {nfg['dh_dc']:.3f}). The gradient still reaches the first "
            f"cell state ({sci(nfg['cell_ratio'])} of the last one's): what the drift takes away "
            f"is the cell's use to the output. The 1997 paper's remedy, input gates biased "
            f"towards shut, here b_i = {bias} (i ≈ {fix['i_distractors']:.3f}): RMS "
            f"{fix['rms_end']:.3g} at t = {T - 1}, {fix['saturated']:.0%} saturated, "
            f"o·(1 − tanh² c) = {fix['dh_dc']:.3f}, and the gradient reaching c₀ is "
            f"{sci(fix['cell_ratio'])} of the last one's.")
    if sweep is not None:
        text += (f" In the shipped sweep the no-forget-gate LSTM at torch's init solved "
                 f"{_solved(sweep, 'lstm:no_forget_gate=true', 50)} at T = 50, "
                 f"{_solved(sweep, 'lstm:no_forget_gate=true', 100)} at T = 100 and "
                 f"{_solved(sweep, 'lstm:no_forget_gate=true', 200)} at T = 200.")
    return text


def pure_lag_law_sentence(summary: pd.DataFrame, labels: dict, order: list) -> str:
    """The shipped sweep in one sentence: per model, the longest T solved on every seed."""
    parts = []
    for variant in order:
        d = summary[summary["arch"] == variant].sort_values("seq_len")
        full = d[d["successes"] == d["n"]]
        best = d["rate"].max()
        if len(full):
            parts.append(f"{labels.get(variant, variant)} up to T = {int(full['seq_len'].max())}")
        else:
            parts.append(f"{labels.get(variant, variant)} at no T (at best "
                         f"{int(d.loc[d['rate'] == best, 'successes'].iloc[0])}/"
                         f"{int(d['n'].iloc[0])})")
    return ("The longest lag each model bridged on every seed: " + "; ".join(parts) + ".")

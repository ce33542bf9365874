"""Sentences that read the measured numbers for the learner.

Every sentence is built from a measured summary (see :func:`core.probe.summarise`):
no number here is assumed or simulated.
"""

from __future__ import annotations

import math


def sci(x: float | None) -> str:
    """A compact number for prose: 3e-09, 0.42, 1.7e+04; '—' when unknown."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if x == 0:
        return "0"
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:.3g}"
    return f"{x:.0e}" if abs(x) < 1e-2 else f"{x:.1e}"


def describe_gradient(summary: dict, arch: str | None = None) -> str:
    """One or two sentences on how far the gradient reaches back, and why.

    ``summary`` needs ``vanishing_ratio``, ``gradient_reach`` and ``steps``;
    ``mean_f`` (LSTM) or ``mean_z`` (GRU) when present.
    """
    ratio = summary.get("vanishing_ratio")
    reach = summary.get("gradient_reach")
    steps = summary.get("steps")
    if ratio is None or reach is None or not steps:
        return "No gradient probe yet: the first one is taken on the first training step."
    if isinstance(ratio, float) and math.isnan(ratio):
        verdict = "No gradient reaches the last step, so the ratio is undefined."
    elif not math.isfinite(ratio) or ratio > 1e3:
        verdict = (f"The gradient reaching step 0 is {sci(ratio)} times the gradient at the "
                   "last step: it has exploded.")
    elif ratio < 1e-3:
        verdict = (f"The gradient reaching step 0 is {sci(ratio)} of the gradient at the "
                   "last step: it has vanished.")
    else:
        verdict = (f"The gradient reaching step 0 is {sci(ratio)} of the gradient at the "
                   "last step: it is carried across the whole sequence.")
    text = f"{verdict} Gradient reach: {int(reach)} of {int(steps)} steps."
    if arch == "lstm" and summary.get("mean_f") is not None:
        text += " " + _gate_clause(summary, "f", "The forget gate", "most open")
        cell = summary.get("cell_ratio")
        if cell is not None:
            text += (f"; along the cell state, ‖∂ℓ/∂c₀‖ is {sci(cell)} of ‖∂ℓ/∂c_T−1‖"
                     " (the cell path scales the gradient by f at every step).")
        else:
            text += "."
    if arch == "gru" and summary.get("mean_z") is not None:
        text += (" " + _gate_clause(summary, "z", "The update gate z", "most carrying")
                 + " (z → 1 carries h, and its gradient, unchanged).")
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

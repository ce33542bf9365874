"""The three heatmaps: A, the gradient by time step over training; B, by time step and
gate/state at one probe; C, the gate activations (mean and most open unit).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from core.charts.style import (
    GATES,
    GRAD_TITLE,
    HEIGHT,
    MAX_HEATMAP_STEPS,
    QUANTITIES,
    _AXIS,
    _GATE_QUANTITIES,
    _at_step,
    _by_tip,
    _finite,
    _frame,
    _grad_colour,
    _small_multiples,
    clamp_log,
    downsample_steps,
)


def _probe_frame(probes, by):
    """Probe rows ready for a log colour scale: a gate's gradient of exactly 0 (a path that
    does not exist, such as f at t = 0, which multiplies c₋₁ = 0) is dropped, so its cell
    stays blank; h or c at 0 (float32 underflow) is floored to ``GRAD_FLOOR`` like any
    vanished gradient; non-finite values are dropped."""
    d = _frame(probes, ["step", "t", "grad_norm"], ["quantity"], by)
    d = d[~((d["grad_norm"] == 0) & d["quantity"].isin(_GATE_QUANTITIES))]
    d["grad_norm"] = clamp_log(d["grad_norm"])
    return _finite(d, ["step", "t", "grad_norm"])


def _time_x(probes, drawn: pd.DataFrame) -> alt.X:
    """The time-step axis. When non-finite gradients were dropped (a diverging run), the
    axis still spans every probed time step, so the remaining cells keep their place
    instead of stretching across the chart; otherwise it follows the data (a spec that
    does not change with the data)."""
    t = pd.to_numeric(_frame(probes, ["t"], [], None)["t"], errors="coerce").dropna()
    every = sorted(int(v) for v in t.unique())
    x = dict(title="time step t", sort="ascending", axis=alt.Axis(**_AXIS))
    if len(drawn) and set(every) - set(drawn["t"].astype(int)):
        x["scale"] = alt.Scale(domain=every)
    return alt.X("t:O", **x)


def _grad_tooltip(quantity: str, by: str | None) -> list:
    return _by_tip(by) + [
        alt.Tooltip("step:Q", title="training step"), alt.Tooltip("t:Q", title="time step t"),
        alt.Tooltip("quantity:N", title="quantity"),
        alt.Tooltip("grad_norm:Q", title=GRAD_TITLE.format(q=quantity), format=".3e")]


def grad_time_heatmap(probes: pd.DataFrame, quantity: str = "h", by: str | None = None,
                      order: Sequence | None = None, height: int = HEIGHT):
    """Heatmap A — how far back the gradient reaches, and how that changes with training.

    x: time step t; y: training step of the probe (latest at the top, ≤ 200 steps per run,
    first and last kept); colour: log ‖∂ℓ/∂q_t‖ for one quantity (default h).
    ``by="run"``: one panel per run, in ``order``, one shared colour scale. ``height`` in
    pixels (the landing fits the chart on one 1280×720 screen).
    """
    d = _probe_frame(probes, by)
    d = downsample_steps(d[d["quantity"] == quantity], MAX_HEATMAP_STEPS, key=by)
    chart = alt.Chart(d).mark_rect().encode(
        x=_time_x(probes, d),
        y=alt.Y("step:O", title="training step", sort="descending", axis=alt.Axis(**_AXIS)),
        color=_grad_colour(quantity), tooltip=_grad_tooltip(quantity, by),
    ).properties(height=height)
    return _small_multiples(chart, d, by, order)


def gate_heatmap(probes: pd.DataFrame, step: int | None = None, by: str | None = None,
                 order: Sequence | None = None):
    """Heatmap B — where the gradient flows at one probe step: through h, the LSTM cell c,
    or which gate's pre-activation.

    x: time step t; y: quantity (fixed order h c i f g o r z n: LSTM shows h c i f g o,
    GRU h r z n); colour: log gradient norm at ``step`` (default: the latest probe; with
    runs, each run's latest, or its probe nearest ``step``). ``by="run"``: one panel per run
    in ``order``, each with only its own quantities, one shared colour scale.
    """
    d = _at_step(_probe_frame(probes, by), step, by)
    chart = alt.Chart(d).mark_rect().encode(
        x=_time_x(probes, d),
        y=alt.Y("quantity:N", title="quantity", sort=list(QUANTITIES)),
        color=_grad_colour("q"), tooltip=_grad_tooltip("q", by),
    ).properties(height=alt.Step(24))
    return _small_multiples(chart, d, by, order, shared_y=False)


def activation_heatmap(gates: pd.DataFrame, step: int | None = None, by: str | None = None,
                       order: Sequence | None = None):
    """Heatmap C — how open each gate is along the sequence at one probe step.

    x: time step t; y: gate (fixed order i f o r z); colour: mean activation on a fixed
    [0, 1] cividis scale (0 = closed, 1 = open). Step choice, ``by`` and ``order`` as in
    gate_heatmap (a model without gates has no panel).
    """
    d = _frame(gates, ["step", "t", "mean"], ["gate"], by)
    d = _at_step(_finite(d, ["step", "t", "mean"]), step, by)
    chart = alt.Chart(d).mark_rect().encode(
        x=alt.X("t:O", title="time step t", sort="ascending", axis=alt.Axis(**_AXIS)),
        y=alt.Y("gate:N", title="gate", sort=list(GATES)),
        color=alt.Color("mean:Q", title="gate value",
                        scale=alt.Scale(domain=[0, 1], clamp=True, scheme="cividis")),
        tooltip=_by_tip(by) + [
            alt.Tooltip("step:Q", title="training step"), alt.Tooltip("t:Q", title="time step t"),
            alt.Tooltip("gate:N", title="gate"), alt.Tooltip("mean:Q", title="mean", format=".3f")],
    ).properties(height=alt.Step(24))
    return _small_multiples(chart, d, by, order, shared_y=False)

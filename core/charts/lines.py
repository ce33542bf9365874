"""Line and point charts: the loss curves (built once, refilled with data), the gradient
reach, the Explain page's decay curves and pure-lag series, and the task's example input.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.charts.style import (
    ARCHS,
    FACET_WIDTH,
    HEIGHT,
    LOG_LABELS,
    LOSS_FLOOR,
    MAX_LINE_POINTS,
    NEUTRAL,
    NUMBER_LABELS,
    PALETTE,
    SERIES,
    SHAPES,
    STEP_AXIS,
    _AXIS,
    _by_tip,
    _finite,
    _frame,
    _groups,
    _labels,
    _series_colour,
    arch_of,
    clamp_log,
    downsample_steps,
    model_colour,
)


def loss_chart(metrics: pd.DataFrame, evals: pd.DataFrame, baseline: float | None,
               log_scale: bool = False, by: str | None = None,
               order: Sequence | None = None, colour: str | None = None) -> alt.LayerChart:
    """Loss against training step: smoothed training loss (rolling mean, ≤ 500 points per
    run), held-out loss, and a dashed rule at the task's input-independent baseline loss.

    ``by="run"`` colours by run (:func:`model_colours`, legend in ``order``, default: as
    the runs appear); train lines are dashed, held-out lines solid. One run drawn in
    ``colour`` (its architecture's, ``ARCH_COLOURS``) has the same dashes; without it,
    the two curves take two colours.
    """
    frames = loss_frames(metrics, evals, baseline, log_scale, by)
    if by and order is None:
        order = _labels(frames["lines"], by, None)
    return loss_layers(frames, log_scale, by, order, colour)


def loss_frames(metrics: pd.DataFrame, evals: pd.DataFrame, baseline: float | None,
                log_scale: bool = False, by: str | None = None) -> dict[str, pd.DataFrame]:
    """What :func:`loss_chart` draws, as data: ``lines`` (step, loss, series[, by]) and
    ``base`` (the baseline). A live page rebuilds only these each second and reuses the
    chart's spec (ui/live.py), since Altair's construction is most of a redraw's cost."""
    parts = []
    for src, label in ((metrics, SERIES[0]), (evals, SERIES[1])):
        d = _finite(_frame(src, ["step", "loss"], [], by), ["step", "loss"])
        smoothed = []
        for g in _groups(d, by):
            g = g.sort_values("step")
            if label == SERIES[0]:          # window grows with the run: ~100 windows per curve
                g = g.assign(loss=g["loss"].rolling(max(1, len(g) // 100), min_periods=1).mean())
            smoothed.append(g)
        d = pd.concat(smoothed, ignore_index=True) if smoothed else d
        parts.append(downsample_steps(d, MAX_LINE_POINTS, key=by).assign(series=label))
    lines = pd.concat(parts, ignore_index=True)
    base = pd.DataFrame({"baseline": [] if baseline is None else [float(baseline)]})
    base = base[np.isfinite(base["baseline"])]
    if log_scale:
        lines["loss"] = clamp_log(lines["loss"], LOSS_FLOOR)
        base["baseline"] = clamp_log(base["baseline"], LOSS_FLOOR)
    return {"lines": lines, "base": base}


def loss_layers(frames: dict[str, pd.DataFrame], log_scale: bool = False,
                by: str | None = None, order: Sequence | None = None,
                colour: str | None = None) -> alt.LayerChart:
    """The loss chart from :func:`loss_frames`; with ``by``, coloured by :func:`model_colours`
    of ``order`` (part of the spec: a page that reuses the spec keys it on the labels).
    Axis numbers stay readable at any size (1.2e+13, not 12,000,000,000,000) and
    training steps are whole numbers."""
    lines, base = frames["lines"], frames["base"]
    y_title = "loss (log)" if log_scale else "loss"
    y_scale = alt.Scale(type="log") if log_scale else alt.Scale(type="linear")
    labels = LOG_LABELS if log_scale else NUMBER_LABELS

    series_dash = alt.StrokeDash("series:N", title="curve", sort=list(SERIES),
                                 scale=alt.Scale(domain=list(SERIES), range=[[5, 3], [1, 0]]))
    enc = dict(
        x=alt.X("step:Q", title="training step", axis=alt.Axis(**STEP_AXIS)),
        y=alt.Y("loss:Q", title=y_title, scale=y_scale, axis=alt.Axis(labelExpr=labels)),
        tooltip=[alt.Tooltip("series:N", title="curve"), alt.Tooltip("step:Q", title="step"),
                 alt.Tooltip("loss:Q", title="loss", format=".4g")]
        + _by_tip(by),
    )
    if by:
        names = order if order is not None else _labels(lines, by, None)
        enc.update(color=model_colour(by, names), strokeDash=series_dash)
    elif colour:
        enc.update(color=alt.value(colour), strokeDash=series_dash)
    else:
        enc["color"] = alt.Color("series:N", title="curve", sort=list(SERIES),
                                 scale=alt.Scale(domain=list(SERIES), range=PALETTE[:2]))
    line = alt.Chart(lines).mark_line(strokeWidth=1.8, clip=True).encode(**enc)

    by_y = alt.Y("baseline:Q", title=y_title, scale=y_scale, axis=alt.Axis(labelExpr=labels))
    rule = alt.Chart(base).mark_rule(color=NEUTRAL, strokeDash=[6, 4], strokeWidth=1.5).encode(
        y=by_y, tooltip=[alt.Tooltip("baseline:Q", title="baseline (input-independent)",
                                     format=".4g")])
    label = alt.Chart(base).mark_text(
        text="baseline (input-independent)", color=NEUTRAL, align="left", baseline="bottom",
        dx=4, dy=-3).encode(y=by_y, x=alt.value(0))
    return alt.layer(line, rule, label).properties(width="container", height=HEIGHT)


def input_example_chart(example: pd.DataFrame) -> alt.Chart:
    """One input sequence of a task (``core.tasks.example``): x = time step t,
    y = input channel, colour = the input's value (one-hot symbols are 0/1)."""
    d = _finite(_frame(example, ["t", "value"], ["channel"], None), ["t", "value"])
    order = sorted(d["channel"].unique(), key=lambda c: int(c[1:]) if c[1:].isdigit() else 0)
    return alt.Chart(d).mark_rect().encode(
        x=alt.X("t:O", title="time step t", sort="ascending", axis=alt.Axis(**_AXIS)),
        y=alt.Y("channel:N", title="input", sort=order),
        color=alt.Color("value:Q", title="input value", scale=alt.Scale(scheme="greys")),
        tooltip=[alt.Tooltip("t:Q", title="time step t"), alt.Tooltip("channel:N", title="input"),
                 alt.Tooltip("value:Q", title="value", format=".3f")],
    ).properties(height=alt.Step(14))


def reach_chart(summaries: pd.DataFrame, by: str | None = None,
                order: Sequence | None = None, colour: str | None = None) -> alt.HConcatChart:
    """Two panels against training step: gradient reach (how many time steps back the
    h-gradient stays ≥ 1e-3 of its maximum) and the vanishing ratio ‖∂ℓ/∂h_0‖/‖∂ℓ/∂h_T−1‖
    on a log axis (≪ 1 vanished, ≈ 1 carried, ≫ 1 exploded). ``by="run"`` colours by run
    (:func:`model_colours` in ``order``)."""
    d = _frame(summaries, ["step", "gradient_reach", "vanishing_ratio"], [], by)
    labels = _labels(d, by, order) if by else []
    d["vanishing_ratio"] = clamp_log(d["vanishing_ratio"])
    panels = []
    for col, title, scale, fmt in (
        ("gradient_reach", "gradient reach (time steps)", alt.Scale(type="linear"), "d"),
        ("vanishing_ratio", "vanishing ratio ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖ (log)",
         alt.Scale(type="log"), None),
    ):
        p = _finite(d, ["step", col])
        if col == "gradient_reach":   # 0 only when the gradient is not finite (or all 0):
            p = p[p[col] > 0]         # undefined, not "reaches no step"
        p = downsample_steps(p, MAX_LINE_POINTS, key=by)
        p = p[["step", col] + ([by] if by else [])]
        enc = dict(
            x=alt.X("step:Q", title="training step", axis=alt.Axis(**STEP_AXIS)),
            y=alt.Y(f"{col}:Q", title=title, scale=scale,
                    axis=alt.Axis(format=fmt) if fmt else alt.Axis(labelExpr=LOG_LABELS)),
            tooltip=_by_tip(by)
            + [alt.Tooltip("step:Q", title="step"), alt.Tooltip(f"{col}:Q", title=title, format=".3g")],
        )
        if by:
            enc["color"] = model_colour(by, labels)
        line = colour or PALETTE[0]
        panels.append(alt.Chart(p).mark_line(point=alt.OverlayMarkDef(color=line), color=line)
                      .encode(**enc).properties(width=FACET_WIDTH + 60, height=HEIGHT - 60))
    return alt.hconcat(*panels).resolve_scale(color="shared")


def decay_chart(curves: pd.DataFrame, order: Sequence | None = None) -> alt.Chart:
    """Explain: log₁₀ of a Jacobian's norm against the lag (steps back), one line per series
    (core.explain.decay_curves: columns lag, series, log10_norm). Each series takes its
    architecture's colour (:func:`model_colours`); the first series of an architecture is
    solid, its others ("f path alone", "z bias") dashed in a shade of the same hue."""
    d = _finite(_frame(curves, ["lag", "log10_norm"], ["series"], None), ["lag", "log10_norm"])
    if order is None:
        def key(label):
            arch = arch_of(label)
            return (ARCHS.index(arch) if arch else len(ARCHS),
                    any(w in str(label) for w in ("alone", "bias", "+")), str(label))
        order = sorted(dict.fromkeys(d["series"]), key=key)
    order = _labels(d, "series", order)
    seen, dashes = set(), []
    for label in order:
        arch = arch_of(label)
        dashes.append([1, 0] if arch not in seen else [6, 3])
        seen.add(arch)
    return alt.Chart(d).mark_line(strokeWidth=2.2).encode(
        x=alt.X("lag:Q", title="lag T−1−t (steps back from the last step)",
                axis=alt.Axis(**STEP_AXIS)),
        y=alt.Y("log10_norm:Q", title="log₁₀ ‖∂q_T−1/∂q_t‖₂"),
        color=model_colour("series", order, "series"),
        strokeDash=alt.StrokeDash("series:N", title="series", sort=order,
                                  scale=alt.Scale(domain=order, range=dashes)),
        tooltip=[alt.Tooltip("series:N"), alt.Tooltip("lag:Q", title="lag"),
                 alt.Tooltip("log10_norm:Q", title="log₁₀ norm", format=".2f")],
    ).properties(width="container", height=HEIGHT + 40)


def series_chart(df: pd.DataFrame, x: str, y: str, series: str, x_title: str, y_title: str,
                 log_y: bool = False, order: Sequence | None = None, points: bool = False,
                 height: int = HEIGHT) -> alt.Chart:
    """Lines of ``y`` against ``x``, one per value of ``series`` (in ``order``), each in its
    own palette colour; ``log_y``: a log axis (values ≤ 0 are left out, not drawn at 0)."""
    d = _frame(df, [x, y], [series], None)
    d = _finite(d, [x, y])
    if log_y:
        d = d[d[y] > 0].reset_index(drop=True)
    labels = _labels(d, series, order) if order is not None else list(dict.fromkeys(d[series]))
    scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    mark = alt.Chart(d).mark_line(strokeWidth=2.2, point=alt.OverlayMarkDef(size=30)
                                  if points else False)
    return mark.encode(
        x=alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(**STEP_AXIS)),
        y=alt.Y(f"{y}:Q", title=y_title, scale=scale,
                axis=alt.Axis(labelExpr=LOG_LABELS) if log_y else alt.Axis()),
        color=_series_colour(series, labels, series),
        tooltip=[alt.Tooltip(f"{series}:N"), alt.Tooltip(f"{x}:Q", title=x_title),
                 alt.Tooltip(f"{y}:Q", title=y_title, format=".3g")],
    ).properties(width="container", height=height)


def marker_chart(frame: pd.DataFrame, threshold: float = 1e-3,
                 order: Sequence | None = None) -> alt.LayerChart:
    """Explain, the pure lag: for each sequence, the gradient reaching an informative input
    (columns input, lag, ratio = ‖∂ℓ/∂x_t‖ / ‖∂ℓ/∂x_T−1‖) against its lag, log axis, one
    colour per input; a dashed rule at ``threshold`` (the gradient reach's)."""
    d = _finite(_frame(frame, ["lag", "ratio"], ["input"], None), ["lag", "ratio"])
    d["ratio"] = d["ratio"].clip(lower=1e-30)
    labels = _labels(d, "input", order) if order is not None else list(dict.fromkeys(d["input"]))
    points = alt.Chart(d).mark_point(filled=True, size=28, opacity=0.65).encode(
        x=alt.X("lag:Q", title="lag T−1−t of the input (steps before the loss)",
                axis=alt.Axis(**STEP_AXIS)),
        y=alt.Y("ratio:Q", title="gradient ratio (log)", scale=alt.Scale(type="log"),
                axis=alt.Axis(labelExpr=LOG_LABELS)),
        color=_series_colour("input", labels, "informative input"),
        shape=alt.Shape("input:N", sort=labels, title="informative input",
                        scale=alt.Scale(domain=labels, range=list(SHAPES[:len(labels)]))),
        tooltip=[alt.Tooltip("input:N"), alt.Tooltip("lag:Q"),
                 alt.Tooltip("ratio:Q", title="gradient ratio", format=".2e")])
    rule = alt.Chart(pd.DataFrame({"y": [threshold]})).mark_rule(
        strokeDash=[5, 4], color=NEUTRAL).encode(y="y:Q")
    return alt.layer(points, rule).properties(width="container", height=HEIGHT)

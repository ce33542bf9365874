"""The Sweep page's charts: success rate with its Wilson interval, per-cell metrics, and
one small panel per model (success rate, gradient reach) for many variants.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from core.charts.style import (
    HEIGHT,
    NEUTRAL,
    NUMBER_LABELS,
    SHAPES,
    _finite,
    _frame,
    _labels,
    canonical_order,
    clamp_log,
    model_colour,
    model_colours,
)


def _sweep_encodings(d: pd.DataFrame, order: Sequence | None) -> dict:
    """Shared by the sweep charts: sequence lengths as evenly spaced groups (the grid's
    values, not a continuous axis), each architecture at its own offset inside the group
    with its own colour (:func:`model_colours`) and marker shape, so equal values (every
    architecture at 100 %) sit side by side instead of on top of each other. The legend
    lists only the architectures drawn."""
    full = list(order) if order is not None else canonical_order(d["arch"])
    labels = _labels(d, "arch", full)
    full += [x for x in labels if x not in full]
    # colour and shape from the whole grid: an architecture looks the same in every chart,
    # drawn in it or not
    return dict(
        x=alt.X("seq_len:O", title="sequence length", sort="ascending",
                axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("arch:N", sort=labels, scale=alt.Scale(domain=labels)),
        color=model_colour("arch", labels, "architecture", among=full),
        shape=alt.Shape("arch:N", title="architecture", sort=labels, scale=alt.Scale(
            domain=labels, range=[SHAPES[full.index(x) % len(SHAPES)] for x in labels])),
    )


def success_chart(df: pd.DataFrame, order: Sequence | None = None) -> alt.LayerChart:
    """Sweep: fraction of seeds that solved the task against sequence length, per
    architecture (``order``: legend order, default alphabetical), with Wilson 95%
    interval error bars (columns arch, seq_len, rate, low, high)."""
    d = _finite(_frame(df, ["seq_len", "rate", "low", "high"], ["arch"], None), ["seq_len", "rate"])
    enc = _sweep_encodings(d, order)
    tooltip = [alt.Tooltip("arch:N", title="architecture"), alt.Tooltip("seq_len:Q", title="length"),
               alt.Tooltip("rate:Q", title="success rate", format=".0%"),
               alt.Tooltip("low:Q", title="95% low", format=".0%"),
               alt.Tooltip("high:Q", title="95% high", format=".0%")]
    title, scale = "success rate (Wilson 95% CI)", alt.Scale(domain=[0, 1])
    base = alt.Chart(d).encode(x=enc["x"], xOffset=enc["xOffset"], color=enc["color"],
                               tooltip=tooltip)
    bars = base.mark_rule(strokeWidth=1.5).encode(
        y=alt.Y("low:Q", title=title, scale=scale), y2="high:Q")
    y = alt.Y("rate:Q", title=title, scale=scale, axis=alt.Axis(format="%"))
    lines = base.mark_line(strokeWidth=1.2, opacity=0.55).encode(y=y)
    points = base.mark_point(filled=True, size=70, opacity=1).encode(y=y, shape=enc["shape"])
    # Points first: the legend's symbols come from the first layer (opaque, shaped).
    return alt.layer(points, bars, lines).properties(width="container", height=HEIGHT)


def sweep_metric_chart(df: pd.DataFrame, y: str, title: str, log_scale: bool = False,
                       order: Sequence | None = None) -> alt.Chart:
    """Sweep: any per-(arch, seq_len) number (column ``y``, axis title ``title``) against
    sequence length, one marker per architecture as in :func:`success_chart`;
    ``log_scale`` for ratios."""
    d = _frame(df, ["seq_len", y], ["arch"], None)
    if log_scale:
        d[y] = clamp_log(d[y])
    d = _finite(d, ["seq_len", y])
    enc = _sweep_encodings(d, order)
    scale = alt.Scale(type="log") if log_scale else alt.Scale(type="linear")
    base = alt.Chart(d).encode(
        x=enc["x"], xOffset=enc["xOffset"], color=enc["color"],
        y=alt.Y(f"{y}:Q", title=title, scale=scale, axis=alt.Axis(labelExpr=NUMBER_LABELS)),
        tooltip=[alt.Tooltip("arch:N", title="architecture"), alt.Tooltip("seq_len:Q", title="length"),
                 alt.Tooltip(f"{y}:Q", title=title, format=".3g")])
    return alt.layer(base.mark_point(filled=True, size=70, opacity=1).encode(shape=enc["shape"]),
                     base.mark_line(strokeWidth=1.2, opacity=0.55),
                     ).properties(width="container", height=HEIGHT)


def _panel_frame(summary: pd.DataFrame, labels: dict | None,
                 order: Sequence | None) -> tuple[pd.DataFrame, list]:
    """The sweep summary with a ``model`` column (the variant's label) and the models in
    ``order`` (variant names; default: as they appear)."""
    d = _frame(summary, ["seq_len", "rate", "low", "high", "median_steps_to_solve",
                         "median_gradient_reach"], ["arch"], None)
    labels = labels or {}
    d["model"] = [labels.get(a, a) for a in d["arch"]]
    variants = _labels(d, "arch", order)
    return d, [labels.get(a, a) for a in variants]


def _panels(layers: list, d: pd.DataFrame, models: list, columns: int) -> alt.FacetChart:
    return alt.layer(*layers, data=d).properties(width=150, height=110).facet(
        facet=alt.Facet("model:N", sort=models, title=None,
                        header=alt.Header(labelFontSize=12, labelFontWeight="bold",
                                          labelAnchor="start", labelOrient="top")),
        columns=columns, spacing={"row": 18, "column": 14})


def _model_colour(models: list) -> alt.Color:
    colours = model_colours(models)
    return alt.Color("model:N", sort=models, legend=None,
                     scale=alt.Scale(domain=models, range=[colours[m] for m in models]))


def sweep_panels(summary: pd.DataFrame, labels: dict | None = None,
                 order: Sequence | None = None, columns: int = 4) -> alt.FacetChart:
    """Sweep, one small panel per model (many variants of one architecture would share
    a hue in :func:`success_chart`): the success rate against T with its Wilson 95%
    interval, and above each point that any seed solved, the median steps to solve.
    ``labels``: variant name → panel title; ``order``: variant names in panel order."""
    d, models = _panel_frame(summary, labels, order)
    d = _finite(d, ["seq_len", "rate"])
    d["steps_text"] = [f"{v:.0f}" if v == v else "" for v in d["median_steps_to_solve"]]
    y_scale = alt.Scale(domain=[0, 1.18], nice=False)
    y = alt.Y("rate:Q", title="success rate", scale=y_scale,
              axis=alt.Axis(format="%", values=[0, 0.5, 1]))
    base = alt.Chart().encode(
        x=alt.X("seq_len:O", title="T", sort="ascending", axis=alt.Axis(labelAngle=0)),
        color=_model_colour(models),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("seq_len:Q", title="T"),
                 alt.Tooltip("rate:Q", title="success rate", format=".0%"),
                 alt.Tooltip("low:Q", title="95% low", format=".0%"),
                 alt.Tooltip("high:Q", title="95% high", format=".0%"),
                 alt.Tooltip("median_steps_to_solve:Q", title="steps to solve (median)")])
    bars = base.mark_rule(strokeWidth=2, opacity=0.6).encode(
        y=alt.Y("low:Q", scale=y_scale, title="success rate"), y2="high:Q")
    points = base.mark_point(filled=True, size=55, opacity=1).encode(y=y)
    steps = alt.Chart().mark_text(dy=-10, fontSize=10, color="#555555").encode(
        x=alt.X("seq_len:O", sort="ascending"), y=y, text="steps_text:N")
    return _panels([bars, points, steps], d, models, columns)


def reach_panels(summary: pd.DataFrame, labels: dict | None = None,
                 order: Sequence | None = None, columns: int = 4) -> alt.FacetChart:
    """Sweep, one small panel per model: the gradient reach of the final network (median
    over seeds, log axis) against T, beside a dashed line at T itself (the whole
    sequence)."""
    d, models = _panel_frame(summary, labels, order)
    d = _finite(d, ["seq_len", "median_gradient_reach"])
    d = d[d["median_gradient_reach"] > 0].reset_index(drop=True)
    scale = alt.Scale(type="log", domain=[1, float(max(d["seq_len"].max(), 2)) if len(d) else 2])
    x = alt.X("seq_len:O", title="T", sort="ascending", axis=alt.Axis(labelAngle=0))
    whole = alt.Chart().mark_line(strokeDash=[4, 3], color=NEUTRAL, strokeWidth=1.2).encode(
        x=x, y=alt.Y("seq_len:Q", scale=scale))
    points = alt.Chart().mark_line(point=alt.OverlayMarkDef(filled=True, size=45)).encode(
        x=x, color=_model_colour(models),
        y=alt.Y("median_gradient_reach:Q", title="gradient reach", scale=scale,
                axis=alt.Axis(values=[1, 10, 100, 1000], format="~g")),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("seq_len:Q", title="T"),
                 alt.Tooltip("median_gradient_reach:Q", title="gradient reach (median)")])
    return _panels([whole, points], d, models, columns)

"""Every chart of the app: tidy DataFrames in, Altair charts out (no Streamlit here).

Inputs are the run-store tables (``core.runs.TABLES``); multi-run charts take the
same frames with an extra ``run`` label column and ``by="run"``.

Design rules, so that live refreshes only patch data in the browser:

* the spec depends on the arguments, never on the data: fixed titles, explicit
  sort orders, fixed colour ranges, no generated names;
* every function accepts an empty (even column-less) frame and returns a valid,
  empty plot; non-finite values are dropped, never plotted;
* payloads are bounded: long series are thinned with :func:`downsample_steps`;
* colours are colour-blind safe and work on light and dark backgrounds
  (viridis / cividis for heatmaps, the Okabe-Ito palette for lines);
* one colour per architecture on every page (:func:`model_colours`): its variants
  share its hue;
* several runs are drawn as small multiples in the order given (``order``), each
  panel with only the rows (quantities, gates) its model has.

Gradient norms are drawn on a log colour scale after clamping to
``GRAD_FLOOR`` (1e-30 or an underflowed 0 would otherwise be -inf); a gate's
gradient of exactly 0 is a path that does not exist (the forget gate at t = 0
multiplies c₋₁ = 0) and is left blank, not drawn as the darkest colour.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

GRAD_FLOOR = 1e-12
LOSS_FLOOR = 1e-8
MAX_LINE_POINTS = 500      # per run, for loss / reach lines
MAX_HEATMAP_STEPS = 200    # distinct training steps in heatmap A (per run)
ARCHS = ("rnn_tanh", "rnn_relu", "lstm", "gru")   # as core.models.ARCHS (no torch import)
QUANTITIES = ("h", "c", "i", "f", "g", "o", "r", "z", "n")   # LSTM: h c i f g o; GRU: h r z n
GATES = ("i", "f", "f_max", "o", "r", "z", "z_max")   # *_max: the most open unit
# Okabe-Ito, yellow last (weak on white), black dropped (invisible on dark themes).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#999999", "#F0E442"]
# One colour per architecture, on every page (Train, Compare, Runs, Sweep, Explain).
ARCH_COLOURS = dict(zip(ARCHS, PALETTE))
# Variants of an architecture (forget bias, CIFG, an init, a sweep's "lstm:forget_bias=1",
# a second run of the same arch) keep its hue: the base colour mixed towards black (< 0)
# or white (> 0), in the order the models are shown. So the architecture reads at a
# glance and every model still gets a colour of its own.
VARIANT_SHADES = (-0.45, 0.45, -0.7, 0.7)
OTHER_COLOURS = ("#CC79A7", "#56B4E9", "#999999", "#F0E442")   # labels with no known arch
SERIES = ("train (smoothed)", "held-out")
NEUTRAL = "#888888"        # the baseline rule: readable on light and dark
HEIGHT = 280
FACET_WIDTH = 240          # "container" width is not allowed in facets/concats
PANELS_WIDTH = 760         # what side-by-side panels, axes and legend take (px)
GRAD_TITLE = "‖∂ℓ/∂{q}‖, log"   # short enough to show whole above a legend
# Gate pre-activations: a gradient of exactly 0 there is a path that does not exist.
_GATE_QUANTITIES = ("i", "f", "g", "o", "r", "z", "n")
# Axis labels for numbers of any size: 0.25, 3, 1.2e+13 (not 12,000,000,000,000).
NUMBER_LABELS = ("abs(datum.value) >= 10000 || (abs(datum.value) < 0.001 && datum.value != 0)"
                 " ? format(datum.value, '.1e') : format(datum.value, '~g')")
# On a log axis: a label at each power of ten only (0.01, 1, 1e-08), not at 3.0e-5.
LOG_LABELS = ("abs(log(datum.value) / LN10 - round(log(datum.value) / LN10)) < 1e-6 ? "
              "(datum.value >= 0.01 && datum.value < 1000 ? format(datum.value, '~g') : "
              "format(datum.value, '.0e')) : ''")
STEP_AXIS = dict(tickMinStep=1, format="d")   # training steps are whole numbers


# ---------------------------------------------------------------- helpers

def clamp_log(series, floor: float = GRAD_FLOOR) -> pd.Series:
    """Numbers ready for a log scale: non-finite → NaN (callers drop it), else ≥ floor."""
    s = pd.to_numeric(pd.Series(series), errors="coerce").astype(float)
    return s.where(np.isfinite(s)).clip(lower=floor)


def latest_step(probes: pd.DataFrame | None) -> int | None:
    """The last probed training step, or None when there are no probes."""
    if probes is None or "step" not in probes.columns:
        return None
    steps = pd.to_numeric(probes["step"], errors="coerce").dropna()
    return int(steps.max()) if len(steps) else None


def _groups(df: pd.DataFrame, key: str | None):
    if key is None or key not in df.columns:
        return [df]
    return [g for _, g in df.groupby(key, sort=False, dropna=False)]


def downsample_steps(df: pd.DataFrame, max_rows_per_key: int, key: str | None = None) -> pd.DataFrame:
    """Keep at most ``max_rows_per_key`` distinct ``step`` values per key (default: ``run``
    when present), evenly spaced, always keeping the first and the last step.

    For one-row-per-step tables (metrics, evals, summaries) that bounds the rows per run;
    for probes it bounds the probe steps (each step keeps all its t/quantity rows).
    """
    if df is None or df.empty or "step" not in df.columns:
        return df
    key = key if key is not None else ("run" if "run" in df.columns else None)
    keep_n = max(2, int(max_rows_per_key))
    parts = []
    for g in _groups(df, key):
        steps = np.sort(g["step"].dropna().unique())
        if len(steps) > keep_n:
            idx = np.unique(np.linspace(0, len(steps) - 1, keep_n).round().astype(int))
            g = g[g["step"].isin(steps[idx])]
        parts.append(g)
    return pd.concat(parts, ignore_index=True) if parts else df


def _frame(df, numeric: list[str], labels: list[str], by: str | None) -> pd.DataFrame:
    """A copy with exactly the needed columns (missing ones added empty), numbers coerced."""
    cols = numeric + labels + ([by] if by else [])
    out = pd.DataFrame(index=range(0)) if df is None else df.copy()
    for c in cols:
        if c not in out.columns:
            out[c] = pd.Series(dtype=float if c in numeric else object, index=out.index)
    out = out[cols].reset_index(drop=True)
    for c in numeric:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    for c in labels + ([by] if by else []):
        out[c] = out[c].astype(object).where(out[c].notna(), "").astype(str).astype(object)
    return out


def _finite(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    ok = np.isfinite(df[cols].to_numpy(dtype=float)).all(axis=1)
    return df.loc[ok].reset_index(drop=True)


def _at_step(df: pd.DataFrame, step: int | None, by: str | None) -> pd.DataFrame:
    """Rows of one probe step per group: the latest, or the probed step nearest ``step``."""
    parts = []
    for g in _groups(df, by):
        steps = g["step"].dropna().unique()
        if not len(steps):
            continue
        pick = steps.max() if step is None else steps[np.argmin(np.abs(steps - step))]
        parts.append(g[g["step"] == pick])
    return pd.concat(parts, ignore_index=True) if parts else df.iloc[0:0]


def _by_tip(by: str | None) -> list:
    return [alt.Tooltip(f"{by}:N", title=by)] if by else []


_ARCH_RE = re.compile(r"(?<![a-z_])(rnn_tanh|rnn_relu|lstm|gru)(?![a-z_])")


def arch_of(label) -> str | None:
    """The architecture a model label names ('lstm (CIFG)' → 'lstm', 'RNN tanh: h' →
    'rnn_tanh', 'a1b2c3 · gru' → 'gru'), or None."""
    m = _ARCH_RE.search(re.sub(r"rnn[ -]+(tanh|relu)", r"rnn_\1", str(label).lower()))
    return m.group(1) if m else None


def _is_plain(label, arch: str) -> bool:
    """The label names the architecture alone (perhaps after a run id): 'lstm', 'x · lstm'."""
    return str(label).strip().lower().endswith(arch) and "(" not in str(label)


def _mix(colour: str, amount: float) -> str:
    """``colour`` mixed towards white (amount > 0) or black (amount < 0)."""
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    rgb = rgb + (255 - rgb) * amount if amount > 0 else rgb * (1 + amount)
    return "#" + "".join(f"{int(round(v)):02x}" for v in rgb)


def model_colours(labels: Sequence) -> dict:
    """A colour for each model label: its architecture's (``ARCH_COLOURS``) for the plain
    architecture (else the first label of that architecture), a shade of it
    (``VARIANT_SHADES``, in the order given) for each other label of the same
    architecture, and one of ``OTHER_COLOURS`` for labels that name none."""
    labels = list(dict.fromkeys(labels))
    out: dict = {}
    by_arch: dict[str, list] = {}
    for label in labels:
        by_arch.setdefault(arch_of(label), []).append(label)
    for arch, group in by_arch.items():
        if arch is None:
            for i, label in enumerate(group):
                out[label] = OTHER_COLOURS[i % len(OTHER_COLOURS)]
            continue
        base = ARCH_COLOURS[arch]
        first = next((x for x in group if _is_plain(x, arch)), group[0])
        out[first] = base
        rest = [x for x in group if x != first]
        for i, label in enumerate(rest):
            shade = VARIANT_SHADES[i % len(VARIANT_SHADES)]
            out[label] = _mix(base, shade * (1 if i < len(VARIANT_SHADES) else 0.6))
    return {label: out[label] for label in labels}


def canonical_order(labels) -> list:
    """Model labels by architecture (as ``ARCHS``), the plain architecture before its variants."""
    def key(label):
        arch = arch_of(label)
        return (ARCHS.index(arch) if arch else len(ARCHS),
                not (arch and _is_plain(label, arch)), str(label))
    return sorted(dict.fromkeys(labels), key=key)


def _labels(df: pd.DataFrame, by: str, order: Sequence | None) -> list:
    """The labels to draw, in ``order`` (those with data), else in order of appearance."""
    present = list(dict.fromkeys(df[by].tolist())) if by in df.columns else []
    if order is None:
        return present
    have = set(present)
    return [x for x in dict.fromkeys(order) if x in have]


def model_colour(field: str, labels: Sequence, title: str | None = None,
                 legend: bool = True, among: Sequence | None = None) -> alt.Color:
    """Colour by model label with :func:`model_colours` (computed over ``among``, default
    ``labels``, so a model keeps its colour when others are not drawn); the legend lists
    exactly ``labels``."""
    labels = list(dict.fromkeys(labels))
    colours = model_colours(list(among or []) + labels)
    return alt.Color(f"{field}:N", title=title if title is not None else field, sort=labels,
                     scale=alt.Scale(domain=labels, range=[colours[x] for x in labels]),
                     legend=alt.Legend() if legend else None)


def _grad_colour(quantity: str) -> alt.Color:
    return alt.Color(
        "grad_norm:Q", title=GRAD_TITLE.format(q=quantity),
        scale=alt.Scale(type="log", scheme="viridis"), legend=alt.Legend(format=".0e"),
    )


def _panel_width(n: int, axis_each: bool) -> int:
    """Each panel's plot width so that ``n`` panels, their axes (on the first only when
    the y scale is shared), spacing and the colour legend fit in ``PANELS_WIDTH``."""
    axes, spacing = (48, 52 * (n - 1)) if axis_each else (48, 14 * (n - 1))
    free = PANELS_WIDTH - axes - spacing - 95
    return int(max(90, min(FACET_WIDTH, free // max(1, n))))


def _small_multiples(chart: alt.Chart, d: pd.DataFrame, by: str | None,
                     order: Sequence | None = None, shared_y: bool = True):
    """One panel per model, side by side in ``order`` (default: as they appear), one colour
    scale for all; each panel filters the one dataset to its model, so with
    ``shared_y=False`` it shows only the rows (quantities, gates) that model has. Without
    ``by``: the single container-wide view."""
    if not by:
        return chart.properties(width="container")
    labels = _labels(d, by, order)
    if not labels:
        return chart.properties(width=FACET_WIDTH)
    width = _panel_width(len(labels), axis_each=not shared_y)
    colours = model_colours(labels)

    def title(label):   # in the model's colour when the label names an architecture
        extra = {"color": colours[label]} if arch_of(label) else {}
        return alt.TitleParams(str(label), fontSize=13, fontWeight="bold", anchor="start",
                               **extra)

    panels = []
    for i, label in enumerate(labels):
        panel = chart.transform_filter(alt.FieldEqualPredicate(field=by, equal=label))
        if i or not shared_y:   # a shared y axis once; row labels (h, c, f…) need no title
            y = chart.encoding.y.copy()
            y.title = None
            if shared_y:
                y.axis = alt.Axis(labels=False, ticks=False, domain=False)
            panel = panel.encode(y=y)
        panels.append(panel.properties(width=width, title=title(label)))
    # "flush": panels laid out by their plots alone, so titles line up whatever the axes;
    # the spacing leaves room for the y labels of independent panels (f_max, z_max).
    return alt.hconcat(*panels, spacing=14 if shared_y else 52, bounds="flush").resolve_scale(
        color="shared", y="shared" if shared_y else "independent")


_AXIS = dict(labelOverlap="greedy", labelAngle=0, labelSeparation=4)


# ---------------------------------------------------------------- loss

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


# ---------------------------------------------------------------- heatmaps

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


# ---------------------------------------------------------------- summaries

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


# ---------------------------------------------------------------- explain

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


# ---------------------------------------------------------------- the pure lag (issue 16)

# Variants of one architecture compared on one chart: told apart by the palette's
# colours in the order given (model_colours would give them shades of one hue).
def _series_colour(field: str, labels: Sequence, title: str) -> alt.Color:
    labels = list(dict.fromkeys(labels))
    return alt.Color(f"{field}:N", title=title, sort=labels,
                     scale=alt.Scale(domain=labels,
                                     range=[PALETTE[i % len(PALETTE)] for i in range(len(labels))]),
                     legend=alt.Legend(orient="right", labelLimit=300))


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


# ---------------------------------------------------------------- sweeps

SHAPES = ("circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "stroke")


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


# ---------------------------------------------------------------- export

def _fixed_width(spec, width: int = 640):
    """vl-convert has no container to measure: give "container" widths a fixed size."""
    if isinstance(spec, dict):
        return {k: (width if k == "width" and v == "container" else _fixed_width(v, width))
                for k, v in spec.items()}
    if isinstance(spec, list):
        return [_fixed_width(v, width) for v in spec]
    return spec


def _inline_values(chart):
    """A copy whose DataFrames are inline value lists: the default transformer's 5000-row
    limit (Streamlit uses its own, unlimited one) then does not apply, and nothing global
    (``alt.data_transformers``) is switched, which would race with Streamlit's threads."""
    chart = chart.copy(deep=False)
    if isinstance(chart["data"] if "data" in chart._kwds else None, pd.DataFrame):
        chart.data = alt.InlineData(values=alt.utils.data.to_values(chart.data)["values"])
    for attr in ("layer", "hconcat", "vconcat", "concat"):
        if attr in chart._kwds and isinstance(chart[attr], list):
            chart[attr] = [_inline_values(c) for c in chart[attr]]
    if "spec" in chart._kwds and isinstance(chart["spec"], alt.SchemaBase):
        chart.spec = _inline_values(chart.spec)
    return chart


def _export_spec(chart):
    import vl_convert as vlc
    try:
        from altair.utils._importers import vl_version_for_vl_convert
        version = vl_version_for_vl_convert()
    except Exception:  # noqa: BLE001 - a private helper of Altair's: if it moved or fails, vl-convert's default
        version = None
    kw = {"vl_version": version} if version else {}
    return vlc, _fixed_width(_inline_values(chart).to_dict()), kw


def chart_to_png(chart, scale: float = 2.0) -> bytes:
    """PNG bytes of a chart (offline: vl-convert bundles Vega), for download buttons."""
    vlc, spec, kw = _export_spec(chart)
    return vlc.vegalite_to_png(spec, scale=scale, **kw)


def chart_to_svg(chart) -> str:
    """SVG text of a chart (offline), for download buttons."""
    vlc, spec, kw = _export_spec(chart)
    return vlc.vegalite_to_svg(spec, **kw)


__all__ = [
    "activation_heatmap", "arch_of", "canonical_order", "chart_to_png", "chart_to_svg",
    "clamp_log", "decay_chart", "downsample_steps", "model_colour", "model_colours",
    "gate_heatmap", "grad_time_heatmap", "latest_step", "loss_chart", "loss_frames",
    "loss_layers", "marker_chart", "reach_chart", "reach_panels", "series_chart",
    "success_chart", "sweep_metric_chart", "sweep_panels",
]

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
  (viridis / cividis for heatmaps, the Okabe-Ito palette for lines).

Gradient norms are drawn on a log colour scale after clamping to
``GRAD_FLOOR`` (zero or 1e-30 would otherwise be -inf); legends say so.
"""

from __future__ import annotations

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
ARCH_COLOURS = dict(zip(ARCHS, PALETTE))
SERIES = ("train (smoothed)", "held-out")
NEUTRAL = "#888888"        # the baseline rule: readable on light and dark
HEIGHT = 280
FACET_WIDTH = 240          # "container" width is not allowed in facets/concats
GRAD_TITLE = "‖∂ℓ/∂{q}_t‖ (log; 0 shown as 1e-12)"


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


def _run_colour(by: str) -> alt.Color:
    return alt.Color(f"{by}:N", title=by, sort="ascending", scale=alt.Scale(range=PALETTE))


def _arch_colour(df: pd.DataFrame) -> alt.Color:
    extra = sorted(set(df["arch"]) - set(ARCHS))       # only if an unknown arch shows up
    domain = list(ARCHS) + extra
    rng = [ARCH_COLOURS.get(a, PALETTE[(4 + i) % len(PALETTE)]) for i, a in enumerate(domain)]
    return alt.Color("arch:N", title="architecture", scale=alt.Scale(domain=domain, range=rng))


def _grad_colour(quantity: str) -> alt.Color:
    return alt.Color(
        "grad_norm:Q", title=GRAD_TITLE.format(q=quantity),
        scale=alt.Scale(type="log", scheme="viridis"), legend=alt.Legend(format=".0e"),
    )


def _small_multiples(chart: alt.Chart, by: str | None) -> alt.Chart:
    """Facet columns per run with one colour scale for all, or the single container-wide view."""
    if not by:
        return chart.properties(width="container")
    return (
        chart.properties(width=FACET_WIDTH)
        .facet(column=alt.Column(f"{by}:N", title=None, sort="ascending"))
        .resolve_scale(color="shared")
    )


_AXIS = dict(labelOverlap="greedy", labelAngle=0, labelSeparation=4)


# ---------------------------------------------------------------- loss

def loss_chart(metrics: pd.DataFrame, evals: pd.DataFrame, baseline: float | None,
               log_scale: bool = False, by: str | None = None) -> alt.LayerChart:
    """Loss against training step: smoothed training loss (rolling mean, ≤ 500 points per
    run), held-out loss, and a dashed rule at the task's input-independent baseline loss.

    ``by="run"`` colours by run; train lines are dashed, held-out lines solid.
    """
    return loss_layers(loss_frames(metrics, evals, baseline, log_scale, by), log_scale, by)


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
                by: str | None = None) -> alt.LayerChart:
    """The loss chart from :func:`loss_frames`."""
    lines, base = frames["lines"], frames["base"]
    y_title = "loss (log)" if log_scale else "loss"
    y_scale = alt.Scale(type="log") if log_scale else alt.Scale(type="linear")

    series_dash = alt.StrokeDash("series:N", title="curve", sort=list(SERIES),
                                 scale=alt.Scale(domain=list(SERIES), range=[[5, 3], [1, 0]]))
    enc = dict(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("loss:Q", title=y_title, scale=y_scale),
        tooltip=[alt.Tooltip("series:N", title="curve"), alt.Tooltip("step:Q", title="step"),
                 alt.Tooltip("loss:Q", title="loss", format=".4g")]
        + _by_tip(by),
    )
    if by:
        enc.update(color=_run_colour(by), strokeDash=series_dash)
    else:
        enc["color"] = alt.Color("series:N", title="curve", sort=list(SERIES),
                                 scale=alt.Scale(domain=list(SERIES), range=PALETTE[:2]))
    line = alt.Chart(lines).mark_line(strokeWidth=1.8, clip=True).encode(**enc)

    by_y = alt.Y("baseline:Q", title=y_title, scale=y_scale)
    rule = alt.Chart(base).mark_rule(color=NEUTRAL, strokeDash=[6, 4], strokeWidth=1.5).encode(
        y=by_y, tooltip=[alt.Tooltip("baseline:Q", title="baseline (input-independent)",
                                     format=".4g")])
    label = alt.Chart(base).mark_text(
        text="baseline (input-independent)", color=NEUTRAL, align="left", baseline="bottom",
        dx=4, dy=-3).encode(y=by_y, x=alt.value(0))
    return alt.layer(line, rule, label).properties(width="container", height=HEIGHT)


# ---------------------------------------------------------------- heatmaps

def _probe_frame(probes, by):
    d = _frame(probes, ["step", "t", "grad_norm"], ["quantity"], by)
    d["grad_norm"] = clamp_log(d["grad_norm"])
    return _finite(d, ["step", "t", "grad_norm"])


def _grad_tooltip(quantity: str, by: str | None) -> list:
    return _by_tip(by) + [
        alt.Tooltip("step:Q", title="training step"), alt.Tooltip("t:Q", title="time step t"),
        alt.Tooltip("quantity:N", title="quantity"),
        alt.Tooltip("grad_norm:Q", title=GRAD_TITLE.format(q=quantity), format=".3e")]


def grad_time_heatmap(probes: pd.DataFrame, quantity: str = "h", by: str | None = None):
    """Heatmap A — how far back the gradient reaches, and how that changes with training.

    x: time step t; y: training step of the probe (latest at the top, ≤ 200 steps per run,
    first and last kept); colour: log ‖∂ℓ/∂q_t‖ for one quantity (default h).
    ``by="run"``: one facet column per run, one shared colour scale.
    """
    d = _probe_frame(probes, by)
    d = downsample_steps(d[d["quantity"] == quantity], MAX_HEATMAP_STEPS, key=by)
    chart = alt.Chart(d).mark_rect().encode(
        x=alt.X("t:O", title="time step t", sort="ascending", axis=alt.Axis(**_AXIS)),
        y=alt.Y("step:O", title="training step", sort="descending", axis=alt.Axis(**_AXIS)),
        color=_grad_colour(quantity), tooltip=_grad_tooltip(quantity, by),
    ).properties(height=HEIGHT)
    return _small_multiples(chart, by)


def gate_heatmap(probes: pd.DataFrame, step: int | None = None, by: str | None = None):
    """Heatmap B — where the gradient flows at one probe step: through h, the LSTM cell c,
    or which gate's pre-activation.

    x: time step t; y: quantity (fixed order h c i f g o r z n: LSTM shows h c i f g o,
    GRU h r z n); colour: log gradient norm at ``step`` (default: the latest probe; with
    runs, each run's latest, or its probe nearest ``step``). ``by="run"``: facets, shared colour.
    """
    d = _at_step(_probe_frame(probes, by), step, by)
    chart = alt.Chart(d).mark_rect().encode(
        x=alt.X("t:O", title="time step t", sort="ascending", axis=alt.Axis(**_AXIS)),
        y=alt.Y("quantity:N", title="quantity", sort=list(QUANTITIES)),
        color=_grad_colour("q"), tooltip=_grad_tooltip("q", by),
    ).properties(height=alt.Step(24))
    return _small_multiples(chart, by)


def activation_heatmap(gates: pd.DataFrame, step: int | None = None, by: str | None = None):
    """Heatmap C — how open each gate is along the sequence at one probe step.

    x: time step t; y: gate (fixed order i f o r z); colour: mean activation on a fixed
    [0, 1] cividis scale (0 = closed, 1 = open). Step choice and ``by`` as in gate_heatmap.
    """
    d = _frame(gates, ["step", "t", "mean"], ["gate"], by)
    d = _at_step(_finite(d, ["step", "t", "mean"]), step, by)
    chart = alt.Chart(d).mark_rect().encode(
        x=alt.X("t:O", title="time step t", sort="ascending", axis=alt.Axis(**_AXIS)),
        y=alt.Y("gate:N", title="gate", sort=list(GATES)),
        color=alt.Color("mean:Q", title="mean activation",
                        scale=alt.Scale(domain=[0, 1], clamp=True, scheme="cividis")),
        tooltip=_by_tip(by) + [
            alt.Tooltip("step:Q", title="training step"), alt.Tooltip("t:Q", title="time step t"),
            alt.Tooltip("gate:N", title="gate"), alt.Tooltip("mean:Q", title="mean", format=".3f")],
    ).properties(height=alt.Step(24))
    return _small_multiples(chart, by)


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

def reach_chart(summaries: pd.DataFrame, by: str | None = None) -> alt.HConcatChart:
    """Two panels against training step: gradient reach (how many time steps back the
    h-gradient stays ≥ 1e-3 of its maximum) and the vanishing ratio ‖∂ℓ/∂h_0‖/‖∂ℓ/∂h_T−1‖
    on a log axis (≪ 1 vanished, ≈ 1 carried, ≫ 1 exploded). ``by="run"`` colours by run."""
    d = _frame(summaries, ["step", "gradient_reach", "vanishing_ratio"], [], by)
    d["vanishing_ratio"] = clamp_log(d["vanishing_ratio"])
    panels = []
    for col, title, scale, fmt in (
        ("gradient_reach", "gradient reach (time steps)", alt.Scale(type="linear"), "d"),
        ("vanishing_ratio", "vanishing ratio ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T‖ (log)", alt.Scale(type="log"),
         ".0e"),
    ):
        p = downsample_steps(_finite(d, ["step", col]), MAX_LINE_POINTS, key=by)
        p = p[["step", col] + ([by] if by else [])]
        enc = dict(
            x=alt.X("step:Q", title="training step"),
            y=alt.Y(f"{col}:Q", title=title, scale=scale, axis=alt.Axis(format=fmt)),
            tooltip=_by_tip(by)
            + [alt.Tooltip("step:Q", title="step"), alt.Tooltip(f"{col}:Q", title=title, format=".3g")],
        )
        if by:
            enc["color"] = _run_colour(by)
        panels.append(alt.Chart(p).mark_line(point=True, color=PALETTE[0])
                      .encode(**enc).properties(width=FACET_WIDTH + 60, height=HEIGHT - 60))
    return alt.hconcat(*panels).resolve_scale(color="shared")


# ---------------------------------------------------------------- sweeps

def success_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Sweep: fraction of seeds that solved the task against sequence length, one line per
    architecture, with Wilson 95% interval error bars (columns arch, seq_len, rate, low, high)."""
    d = _finite(_frame(df, ["seq_len", "rate", "low", "high"], ["arch"], None), ["seq_len", "rate"])
    base = alt.Chart(d).encode(
        x=alt.X("seq_len:Q", title="sequence length", scale=alt.Scale(zero=False)),
        color=_arch_colour(d),
        tooltip=[alt.Tooltip("arch:N", title="architecture"), alt.Tooltip("seq_len:Q", title="length"),
                 alt.Tooltip("rate:Q", title="success rate", format=".0%"),
                 alt.Tooltip("low:Q", title="95% low", format=".0%"),
                 alt.Tooltip("high:Q", title="95% high", format=".0%")],
    )
    title, scale = "success rate (Wilson 95% CI)", alt.Scale(domain=[0, 1])
    lines = base.mark_line(point=True).encode(
        y=alt.Y("rate:Q", title=title, scale=scale, axis=alt.Axis(format="%")))
    bars = base.mark_errorbar(ticks=True).encode(
        y=alt.Y("low:Q", title=title, scale=scale), y2="high:Q")
    return alt.layer(bars, lines).properties(width="container", height=HEIGHT)


def sweep_metric_chart(df: pd.DataFrame, y: str, title: str, log_scale: bool = False) -> alt.Chart:
    """Sweep: any per-(arch, seq_len) number (column ``y``, axis title ``title``) against
    sequence length, point + line per architecture; ``log_scale`` for ratios."""
    d = _frame(df, ["seq_len", y], ["arch"], None)
    if log_scale:
        d[y] = clamp_log(d[y])
    d = _finite(d, ["seq_len", y])
    scale = alt.Scale(type="log") if log_scale else alt.Scale(type="linear")
    return alt.Chart(d).mark_line(point=True).encode(
        x=alt.X("seq_len:Q", title="sequence length", scale=alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", title=title, scale=scale),
        color=_arch_colour(d),
        tooltip=[alt.Tooltip("arch:N", title="architecture"), alt.Tooltip("seq_len:Q", title="length"),
                 alt.Tooltip(f"{y}:Q", title=title, format=".3g")],
    ).properties(width="container", height=HEIGHT)


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
    "activation_heatmap", "chart_to_png", "chart_to_svg", "clamp_log", "downsample_steps",
    "gate_heatmap", "grad_time_heatmap", "latest_step", "loss_chart", "loss_frames",
    "loss_layers", "reach_chart",
    "success_chart", "sweep_metric_chart",
]

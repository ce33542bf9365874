"""Shared by every chart: constants, colours (one per architecture), downsampling and
small multiples. See core/charts/__init__.py for the design rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.archspec import ARCHS


GRAD_FLOOR = 1e-12


LOSS_FLOOR = 1e-8


MAX_LINE_POINTS = 500      # per run, for loss / reach lines


MAX_HEATMAP_STEPS = 200    # distinct training steps in heatmap A (per run)


# States first, then gates: LSTM h c i f g o; GRU h r z n; sLSTM h c n m i f z o; minGRU h z g;
# minLSTM h f i g (core.archspec). A name means what its architecture's docstring says.
QUANTITIES = ("h", "c", "n", "m", "i", "f", "g", "o", "r", "z")


# *_max: the most open unit; gain: the carry path's per-step gain of the later architectures.
GATES = ("i", "f", "f_max", "o", "r", "z", "z_max", "gain", "gain_max", "modulus")


# Okabe-Ito, yellow last (weak on white), black dropped (invisible on dark themes).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#999999", "#F0E442"]


# One colour per architecture, on every page (Train, Compare, Runs, Sweep, Explain): the
# classic four from Okabe-Ito, the later six from Paul Tol's muted scheme (colour-blind safe).
# minGRU olive, not wine: beside the orthogonal RNN's indigo and the LRU's pink in Compare's
# "Modern answers", wine read as a second dark line.
ARCH_COLOURS = dict(zip(ARCHS, PALETTE[:4] + ["#56B4E9", "#332288", "#CC79A7", "#999933",
                                             "#44AA99", "#882255"]))


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
_GATE_QUANTITIES = ("i", "f", "g", "o", "r", "z", "n")   # GRU's n; sLSTM's n is a state


# Axis labels for numbers of any size: 0.25, 3, 1.2e+13 (not 12,000,000,000,000).
NUMBER_LABELS = ("abs(datum.value) >= 10000 || (abs(datum.value) < 0.001 && datum.value != 0)"
                 " ? format(datum.value, '.1e') : format(datum.value, '~g')")


# On a log axis: a label at each power of ten only (0.01, 1, 1e-08), not at 3.0e-5.
LOG_LABELS = ("abs(log(datum.value) / LN10 - round(log(datum.value) / LN10)) < 1e-6 ? "
              "(datum.value >= 0.01 && datum.value < 1000 ? format(datum.value, '~g') : "
              "format(datum.value, '.0e')) : ''")


STEP_AXIS = dict(tickMinStep=1, format="d")   # training steps are whole numbers


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


# Longest names first; the lookbehind keeps 'gru' out of 'mingru' and 'lstm' out of 'slstm'.
_ARCH_RE = re.compile(r"(?<![a-z_])(" + "|".join(sorted(ARCHS, key=len, reverse=True))
                      + r")(?![a-z_])")


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


# Variants of one architecture compared on one chart: told apart by the palette's
# colours in the order given (model_colours would give them shades of one hue).
def _series_colour(field: str, labels: Sequence, title: str) -> alt.Color:
    labels = list(dict.fromkeys(labels))
    return alt.Color(f"{field}:N", title=title, sort=labels,
                     scale=alt.Scale(domain=labels,
                                     range=[PALETTE[i % len(PALETTE)] for i in range(len(labels))]),
                     legend=alt.Legend(orient="right", labelLimit=300))


SHAPES = ("circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "stroke")

"""PNG/SVG export of any chart (vl-convert), with the data inlined.
"""

from __future__ import annotations

import altair as alt
import pandas as pd


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

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

Modules (one file held ~800 lines): ``style`` (constants, colours, small multiples), ``lines``
(loss, reach, decay, pure-lag series, example input), ``heatmaps`` (A, B, C), ``sweep``,
``export`` (PNG/SVG).
"""

from __future__ import annotations

from core.charts.style import (  # noqa: F401 - the package's public names
    GRAD_FLOOR,
    LOSS_FLOOR,
    MAX_LINE_POINTS,
    MAX_HEATMAP_STEPS,
    ARCHS,
    QUANTITIES,
    GATES,
    PALETTE,
    ARCH_COLOURS,
    VARIANT_SHADES,
    OTHER_COLOURS,
    SERIES,
    NEUTRAL,
    HEIGHT,
    FACET_WIDTH,
    PANELS_WIDTH,
    GRAD_TITLE,
    NUMBER_LABELS,
    LOG_LABELS,
    STEP_AXIS,
    clamp_log,
    latest_step,
    downsample_steps,
    arch_of,
    model_colours,
    canonical_order,
    model_colour,
    SHAPES,
)
from core.charts.lines import (  # noqa: F401 - the package's public names
    loss_chart,
    loss_frames,
    loss_layers,
    input_example_chart,
    reach_chart,
    decay_chart,
    series_chart,
    marker_chart,
)
from core.charts.heatmaps import (  # noqa: F401 - the package's public names
    grad_time_heatmap,
    gate_heatmap,
    activation_heatmap,
)
from core.charts.sweep import (  # noqa: F401 - the package's public names
    success_chart,
    sweep_metric_chart,
    sweep_panels,
    reach_panels,
)
from core.charts.export import (  # noqa: F401 - the package's public names
    chart_to_png,
    chart_to_svg,
)

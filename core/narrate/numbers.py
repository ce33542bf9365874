"""How the prose writes a number (:func:`sci`) and a duration, and the verdicts' words.
"""

from __future__ import annotations

import math


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


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)

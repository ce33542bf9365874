"""Statistics of a sweep: success rates with Wilson intervals, medians per grid point.

A sweep runs each grid point over a handful of seeds, so a success rate is a
proportion from a small sample (3/5, 0/5). Its uncertainty is shown with the
Wilson score interval: unlike the textbook normal approximation p ± z·√(p(1-p)/n)
it stays inside [0, 1] and does not collapse to a single point at 0/n or n/n.
The interval itself comes from SciPy (``scipy.stats.binomtest(...).proportion_ci``),
a maintained and tested implementation, rather than a formula of our own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from core.sweeps.table import COORD_COLUMNS, RESULT_COLUMNS


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (low, high) for k successes in n trials.

    0/5 gives (0, 0.43) and 5/5 gives (0.57, 1): five failures do not prove the
    rate is 0. n = 0 (no finished run yet) gives (0, 1): nothing is known. Raises
    ValueError unless 0 <= k <= n.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        # binomtest refuses n = 0; a grid point whose runs all failed has no rate.
        return 0.0, 1.0
    # Imported here: scipy.stats takes about half a second to import, which sweep
    # workers (they never summarise) and the CLI's --help should not pay.
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def summarise_sweep(results: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (task, arch, seq_len[, params]): n, successes, rate, Wilson 95% low/high,
    median steps to solve (over solved runs), median gradient reach, median
    vanishing ratio, median final held-out loss, mean wall seconds, errors.

    ``arch`` is the variant name. Runs with status "error" are counted in
    ``errors`` only, not in n: a crash says nothing about whether the model learns.
    """
    if by is None:
        # Any column that is neither a coordinate nor a result is a parameter
        # dimension (--param lr=...), and gets its own rows.
        known = set(COORD_COLUMNS) | set(RESULT_COLUMNS)
        by = ["task", "arch", "seq_len"] + [c for c in results.columns if c not in known]
    cols = [*by, "n", "successes", "rate", "low", "high", "median_steps_to_solve",
            "median_gradient_reach", "median_vanishing_ratio", "median_eval_loss",
            "mean_wall_s", "errors"]
    if results is None or len(results) == 0:
        return pd.DataFrame({c: [] for c in cols})
    out = []
    for key, g in results.groupby(list(by), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        ok = g[g["status"] != "error"]
        n, k = len(ok), int(ok["solved"].astype(bool).sum())
        low, high = wilson_interval(k, n)
        # Steps to solve means something only for runs that solved: the others
        # stopped at the budget, which would drag the median towards it.
        solved_steps = pd.to_numeric(ok.loc[ok["solved"].astype(bool), "steps_to_solve"],
                                     errors="coerce").dropna()

        def med(col, frame=ok):
            s = pd.to_numeric(frame[col], errors="coerce").dropna()
            return float(s.median()) if len(s) else math.nan

        out.append({
            **dict(zip(by, key)), "n": n, "successes": k, "rate": k / n if n else math.nan,
            "low": low, "high": high,
            "median_steps_to_solve": float(solved_steps.median()) if len(solved_steps)
            else math.nan,
            "median_gradient_reach": med("gradient_reach"),
            "median_vanishing_ratio": med("vanishing_ratio"),
            "median_eval_loss": med("eval_loss"),
            "mean_wall_s": float(pd.to_numeric(ok["wall_s"]).mean()) if n else math.nan,
            "errors": len(g) - n,
        })
    df = pd.DataFrame(out, columns=cols)
    # Variants in their spec order would be nicer, but the table has no spec: sort by name.
    return df.sort_values(list(by)).reset_index(drop=True)

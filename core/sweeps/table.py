"""The results table of a sweep: one row per run, its columns and their dtypes.

Both the store (which writes the table to Parquet after every run) and the
statistics (which group it) need to know its columns, so the schema lives here,
apart from either, and neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

# Where a run sits in the grid (extra parameter dimensions follow these).
COORD_COLUMNS = ("task", "arch", "seq_len", "seed")
# What a run produced (see core.sweeps.run.run_cell).
RESULT_COLUMNS = (
    "solved", "steps_to_solve", "steps_done", "eval_loss", "eval_metric", "metric_name",
    "baseline_loss", "vanishing_ratio", "gradient_reach", "wall_s", "status", "message",
    "label", "worker", "cell_id", "config",
)
# A cell with one of these statuses is done; anything else ("error") is run again.
DONE_STATUSES = ("finished", "diverged")


def results_frame(rows: Iterable[dict], param_names: Sequence[str] = ()) -> pd.DataFrame:
    """Rows → the results table with its fixed columns and dtypes.

    Fixed dtypes matter because the table is rebuilt from Python dicts after every
    run: without them a column that is all None so far (steps_to_solve before any
    run solved) would be written as "object" and change type on the next write.
    """
    cols = [*COORD_COLUMNS, *param_names, *RESULT_COLUMNS]
    df = pd.DataFrame(list(rows))
    for c in cols:
        if c not in df.columns:
            df[c] = None
    extra = [c for c in df.columns if c not in cols]
    df = df[cols + extra]
    for c in ("seq_len", "seed"):
        df[c] = df[c].astype("int64")
    for c in ("steps_to_solve", "steps_done", "gradient_reach"):
        # Nullable integers: "not solved" is missing, not NaN turning the column to float.
        df[c] = pd.array(pd.to_numeric(df[c], errors="coerce"), dtype="Int64") \
            if len(df) else pd.array([], dtype="Int64")
    for c in ("eval_loss", "eval_metric", "baseline_loss", "vanishing_ratio", "wall_s"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["solved"] = df["solved"].fillna(False).astype(bool)
    for c in ("task", "arch", "metric_name", "status", "message", "label", "worker",
              "cell_id", "config"):
        df[c] = df[c].astype("str")  # pandas' string dtype, as Parquet reads it back
    return df.reset_index(drop=True)

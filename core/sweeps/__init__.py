"""Sweeps: a grid of training runs, run in parallel, saved and resumable.

    from core.sweeps import SweepSpec, parse_archs, run_sweep, summarise_sweep

    spec = SweepSpec(tasks=("adding",), variants=parse_archs("rnn_tanh,lstm,gru"),
                     seq_lens=(10, 20, 50), seeds=3, steps=2000)
    sweep_id, results = run_sweep(spec, backend="local", workers=2,
                                  on_result=lambda row, done, total: print(done, total))
    summary = summarise_sweep(results)      # success rate + Wilson interval per cell

One concern per module, each readable on its own:

* :mod:`~core.sweeps.spec`     the variant grammar, :class:`Cell`, :class:`SweepSpec`
* :mod:`~core.sweeps.table`    the results table's columns and dtypes
* :mod:`~core.sweeps.stats`    Wilson interval, :func:`summarise_sweep`
* :mod:`~core.sweeps.store`    folders, load/list, the one-writer lock
* :mod:`~core.sweeps.run`      :func:`run_cell` (in a worker), :func:`run_sweep`
* :mod:`~core.sweeps.presets`  ready-made grids
* :mod:`~core.sweeps.cli`      ``python -m core sweep``

The modules import each other directly (``from core.sweeps.spec import ...``),
never through this file, which only gathers the public names.
"""

from core.sweeps.cli import ProgressBar, add_sweep_arguments, main, spec_from_args, sweep_main
from core.sweeps.presets import DEMO_PRESET, SWEEP_PRESETS, find_preset
from core.sweeps.run import run_cell, run_sweep
from core.sweeps.spec import (
    FORCED, GRID_FIELDS, SPEC_VERSION, SWEEP_DEFAULTS, Cell, SweepError, SweepSpec, parse_archs,
    parse_variant,
)
from core.sweeps.stats import summarise_sweep, wilson_interval
from core.sweeps.store import (
    RESULTS_FILE, SWEEPS_DIR, SweepData, list_sweeps, load_sweep, sweep_path, sweeps_root,
)
from core.sweeps.table import COORD_COLUMNS, DONE_STATUSES, RESULT_COLUMNS, results_frame

__all__ = [
    "COORD_COLUMNS", "DEMO_PRESET", "DONE_STATUSES", "FORCED", "GRID_FIELDS", "RESULTS_FILE",
    "RESULT_COLUMNS", "SPEC_VERSION", "SWEEPS_DIR", "SWEEP_DEFAULTS", "SWEEP_PRESETS", "Cell",
    "ProgressBar", "SweepData", "SweepError", "SweepSpec", "add_sweep_arguments", "find_preset",
    "list_sweeps", "load_sweep", "main", "parse_archs", "parse_variant", "results_frame",
    "run_cell", "run_sweep", "spec_from_args", "summarise_sweep", "sweep_main", "sweep_path",
    "sweeps_root", "wilson_interval",
]

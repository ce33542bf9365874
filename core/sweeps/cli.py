"""The sweep command line: ``python -m core sweep ...`` (flags, progress bar, JSON line).

    python -m core sweep --task adding --archs rnn_tanh,lstm,gru --seq-lens 10,20,50,100 \\
        --seeds 5 --steps 2000 [--workers N] [--backend local|dask] [--scheduler ADDR] [--out DIR]

Progress goes to stderr, one JSON line to stdout at the end (sweep_id, the results
file, runs, solved, wall_s and the summary), so a script can read the outcome
without parsing the progress. ``core.cli`` mounts these flags as its ``sweep``
subcommand; ``python -m core.sweeps`` (``__main__.py``) runs them on their own.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from core.config import ConfigError
from core.sweeps.presets import SWEEP_PRESETS, find_preset
from core.sweeps.run import run_sweep
from core.sweeps.spec import SweepError, SweepSpec, parse_archs
from core.sweeps.stats import summarise_sweep
from core.sweeps.store import RESULTS_FILE, load_sweep, sweep_path
from core.sweeps.table import DONE_STATUSES


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags of ``python -m core sweep`` (every grid flag defaults to the preset's,
    or the demo grid's, value)."""
    g = parser.add_argument_group("grid")
    g.add_argument("--preset", help="start from a preset (title or part of it, e.g. 'demo'); "
                   "the flags below override it")
    g.add_argument("--task", help="task(s), comma-separated (default: adding)")
    g.add_argument("--archs", help="variants, comma-separated: arch or arch:key=value[:...] "
                   "(default: rnn_tanh,lstm,gru)")
    g.add_argument("--seq-lens", help="sequence lengths (default: 10,20,50,100)")
    g.add_argument("--seeds", help="number of seeds n (seeds 0..n-1), or a list a,b,c "
                   "(default: 5 without a preset)")
    g.add_argument("--steps", type=int, help="step budget per run (default: 2000)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="TrainConfig override for every run, e.g. --set hidden_size=32")
    g.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2",
                   help="extra grid dimension, e.g. --param lr=0.001,0.003")
    e = parser.add_argument_group("execution")
    e.add_argument("--workers", type=int, help="parallel runs (default: one per core)")
    e.add_argument("--backend", choices=("local", "dask"), default="local",
                   help="local: loky process pool; dask: a Dask cluster (default: local)")
    e.add_argument("--scheduler", help="Dask scheduler address (default: $DASK_SCHEDULER_ADDRESS, "
                   "else a LocalCluster)")
    e.add_argument("--out", help="run store root; the sweep goes to OUT/sweeps/<id>/ "
                   "(default: $RNNLAB_RUNS_DIR or runs/)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--dry-run", action="store_true",
                   help="print the sweep id and run count, run nothing")
    e.add_argument("--list-presets", action="store_true", help="list presets and exit")
    return parser


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """Build the SweepSpec that the flags describe (raises SweepError)."""
    if args.preset:
        _, start = find_preset(args.preset)
        d = start.to_dict()
    else:
        d = SweepSpec().to_dict()
    if args.task:
        d["tasks"] = _csv(args.task)
    if args.archs:
        d["variants"] = list(parse_archs(args.archs))
    if args.seq_lens:
        d["seq_lens"] = _csv(args.seq_lens)
    if args.seeds:
        d["seeds"] = _csv(args.seeds) if "," in args.seeds else args.seeds
    if args.steps is not None:
        d["steps"] = args.steps
    for item in args.set:
        k, sep, v = item.partition("=")
        if not sep:
            raise SweepError(f"--set needs KEY=VALUE, got {item!r}")
        d["base"][k.strip()] = v.strip()
    for item in args.param:
        k, sep, v = item.partition("=")
        if not sep:
            raise SweepError(f"--param needs KEY=V1,V2, got {item!r}")
        d["params"][k.strip()] = _csv(v)
    return SweepSpec.from_dict(d)


class ProgressBar:
    """Plain-text progress on a stream (stderr): redrawn in place on a terminal,
    one line per finished run otherwise (a log file gets no carriage returns)."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.t0 = time.perf_counter()
        self.start_done = 0
        self.solved = 0

    def start(self, info: dict) -> None:
        self.t0 = time.perf_counter()
        self.start_done = info["done"]
        skipped = f", {info['done']} already done" if info["done"] else ""
        print(f"sweep {info['sweep_id']}: {info['todo']} run(s) to do of {info['total']}"
              f"{skipped} on {info['backend']}", file=self.stream, flush=True)

    def update(self, row: dict, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.t0
        # The ETA counts only this session's runs: resumed ones took no time here.
        new = done - self.start_done
        eta = elapsed / new * (total - done) if new > 0 else math.nan
        self.solved += bool(row.get("solved"))
        fill = int(self.width * done / total) if total else self.width
        bar = "#" * fill + "-" * (self.width - fill)
        if row.get("status") == "error":
            outcome = "ERROR " + str(row.get("message", "")).splitlines()[0][:80]
        elif row.get("solved"):
            outcome = f"solved at {row.get('steps_to_solve')}"
        else:
            outcome = f"not solved ({row.get('status')})"
        line = (f"[{bar}] {done}/{total} | {row.get('arch')} T={row.get('seq_len')} "
                f"seed {row.get('seed')}: {outcome}, {row.get('wall_s', 0):.1f}s | "
                f"elapsed {_hms(elapsed)} eta {_hms(eta)}")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            if done == total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _hms(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _jsonable(x: Any) -> Any:
    """Numpy scalars, pandas' NA and NaN → plain JSON values (NaN → null: strict JSON)."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if x is None or x is pd.NA:
        return None
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def sweep_main(args: argparse.Namespace) -> int:
    """Run the sweep the flags describe; progress on stderr, one JSON line on stdout.

    Exit status: 0 all runs done, 1 some runs failed, 2 bad arguments or backend,
    130 interrupted (Ctrl-C; the JSON line is still printed, resume by re-running).
    """
    # Lazy: the backends module is needed only to run, not for --help or --dry-run.
    from core.executors import BackendError

    if args.list_presets:
        for name, spec in SWEEP_PRESETS.items():
            print(f"{name}\n    {spec.describe()}")
        return 0
    try:
        spec = spec_from_args(args)
    except (SweepError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps({"sweep_id": spec.sweep_id, "runs": len(spec.cells),
                          "description": spec.describe(), "spec": spec.to_dict()}))
        return 0
    bar = None if args.quiet else ProgressBar()
    stop = threading.Event()
    t0 = time.perf_counter()
    code = 0
    try:
        sweep_id, results = run_sweep(
            spec, backend=args.backend, workers=args.workers, scheduler=args.scheduler,
            root=args.out, stop_event=stop, on_start=bar.start if bar else None,
            on_result=bar.update if bar else None)
    except KeyboardInterrupt:
        stop.set()
        code = 130
        sweep_id = spec.sweep_id
        results = load_sweep(args.out, sweep_id).results
        print("\ninterrupted: finished runs are saved; run the same command to resume",
              file=sys.stderr)
    except (SweepError, BackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if bar:
            bar.close()
    finished = results[results["status"].isin(DONE_STATUSES)]
    errors = int((results["status"] == "error").sum())
    if code == 0 and errors:
        code = 1
    summary = summarise_sweep(finished)
    out = {
        "sweep_id": sweep_id,
        "results": str((sweep_path(args.out, sweep_id) / RESULTS_FILE).resolve()),
        "runs": len(finished), "total": len(spec.cells), "solved": int(finished["solved"].sum()),
        "errors": errors, "wall_s": round(time.perf_counter() - t0, 3),
        "summary": summary.to_dict("records"),
    }
    print(json.dumps(_jsonable(out), allow_nan=False), flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.sweeps",
        description="Run a sweep: tasks × architectures × sequence lengths × seeds.")
    add_sweep_arguments(parser)
    return sweep_main(parser.parse_args(argv))

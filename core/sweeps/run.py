"""Running a sweep: one cell in a worker process, and the whole grid from here.

:func:`run_cell` trains one cell with :class:`core.train.Trainer` (``stop_when_solved``
on, capped at ``steps``, probes off during training) and then probes the final
network once, so vanishing ratio and gradient reach describe the end state.

:func:`run_sweep` submits every unfinished cell to a backend (:mod:`core.executors`:
a loky process pool, or Dask) and saves the results table after every finished
run. Both backends pickle :func:`run_cell` *by reference*, as
``core.sweeps.run.run_cell``: a worker imports this module to run it, which is why
it lives here and never in a page or ``__main__``.

Running the same spec again resumes it: finished cells are skipped, so an
interrupted sweep (Ctrl-C, a stopped page, even SIGKILL) loses at most the runs
that were in flight. Runs that raised an error are saved with ``status ==
"error"`` and retried on the next resume.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import TrainConfig
from core.runs import atomic_write, write_json
from core.sweeps.spec import Cell, SweepError, SweepSpec
from core.sweeps.store import (
    RESULTS_FILE, STATUS_FILE, SweepLock, create_sweep_dir, read_json, read_results, sweep_path,
)
from core.sweeps.table import COORD_COLUMNS, DONE_STATUSES, results_frame

# The project's folder (holding core/): what a Dask cluster needs on its PYTHONPATH.
PROJECT_DIR = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- one run


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _finite_or_none(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _error_row(cell: dict, message: str, wall_s: float = 0.0) -> dict:
    config = cell.get("config", {})
    row = {**cell.get("coords", {}), "solved": False, "steps_to_solve": None,
           "steps_done": 0, "eval_loss": None, "eval_metric": None, "metric_name": None,
           "baseline_loss": None, "vanishing_ratio": None, "gradient_reach": None,
           "wall_s": wall_s, "status": "error", "message": message[-2000:],
           "label": None, "worker": None, "cell_id": cell.get("cell_id"),
           "config": json.dumps(config, sort_keys=True)}
    return row


def run_cell(cell: dict) -> dict:
    """Train one sweep cell and return its result row (runs in a worker process).

    ``cell`` is :meth:`Cell.payload` (``{"cell_id", "coords", "config"}``) or a
    bare TrainConfig dict. Sets one torch thread and sane malloc thresholds first
    (:func:`core.executors.prepare_worker`). Never raises for a failed run: the
    row then has ``status == "error"`` and the traceback's end in ``message``.
    """
    # Imported here, in the worker, so that importing the sweep package (the CLI's
    # --help, the page's listing) does not pay for torch.
    from core.executors import prepare_worker
    from core.probe import probe
    from core.train import EvalRecord, Trainer

    if "config" not in cell:
        config_dict = dict(cell)
        cell = {"cell_id": None, "config": config_dict,
                "coords": {k: config_dict.get(k) for k in COORD_COLUMNS}}
    try:
        prepare_worker()
    except Exception:  # noqa: BLE001 - a failed warm-up shows up in the run itself
        pass
    t0 = time.perf_counter()
    try:
        config = TrainConfig.from_dict(cell["config"])
        trainer = Trainer(config)
        last: EvalRecord | None = None
        for record in trainer.run():
            if isinstance(record, EvalRecord):
                last = record
        # The gradient profile of the final network, on a fixed held-out batch.
        vanishing = reach = None
        if trainer.status != "diverged":
            b = min(config.batch_size, len(trainer.eval_x))
            try:
                summary = probe(trainer.model, trainer.task, trainer.eval_x[:b],
                                trainer.eval_y[:b]).summary
                vanishing = _finite_or_none(summary["vanishing_ratio"])
                reach = int(summary["gradient_reach"])
            except (RuntimeError, ValueError):
                pass
        return {
            **cell["coords"],
            "solved": trainer.solved_at is not None,
            "steps_to_solve": trainer.solved_at,
            "steps_done": trainer.steps_done,
            "eval_loss": _finite_or_none(last.loss) if last else None,
            "eval_metric": _finite_or_none(last.metric) if last else None,
            "metric_name": trainer.task.metric_name,
            "baseline_loss": float(trainer.task.baseline_loss),
            "vanishing_ratio": vanishing,
            "gradient_reach": reach,
            "wall_s": time.perf_counter() - t0,
            "status": trainer.status,
            "message": "",
            "label": config.label(),
            "worker": _worker_name(),
            "cell_id": cell["cell_id"],
            "config": json.dumps(config.to_dict(), sort_keys=True),
        }
    except Exception as e:  # noqa: BLE001 - one failed cell must not end the sweep
        tb = traceback.format_exc(limit=-3)
        return _error_row(cell, f"{type(e).__name__}: {e}\n{tb}", time.perf_counter() - t0)


# ---------------------------------------------------------------- the grid


OnResult = Callable[[dict, int, int], Any]


def run_sweep(
    spec: SweepSpec,
    backend: Any = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    root: str | os.PathLike | None = None,
    on_result: OnResult | None = None,
    stop_event: threading.Event | None = None,
    on_start: Callable[[dict], Any] | None = None,
) -> tuple[str, pd.DataFrame]:
    """Run every unfinished cell of ``spec``; returns (sweep_id, results table).

    ``backend``: "local" or "dask" (created here and closed at the end, with
    ``workers``/``scheduler``), or a ready :class:`core.executors.Backend` /
    ``concurrent.futures.Executor`` (used, not closed: e.g. a page's cached
    DaskBackend). Cells already finished in the stored results are skipped.
    ``on_result(row, done, total)`` is called in this thread as each run finishes
    (``done`` counts finished cells including earlier sessions'). ``on_start(info)``
    gets {sweep_id, total, done, todo, backend} before the first submission.
    Setting ``stop_event`` cancels the runs not yet finished and returns promptly;
    the results table is saved after every run, so resuming loses only in-flight runs.
    """
    from core.executors import Backend, make_executor

    if not isinstance(spec, SweepSpec):
        raise SweepError(f"run_sweep needs a SweepSpec, got {type(spec).__name__}")
    sweep_id = spec.sweep_id
    path = sweep_path(root, sweep_id)
    cells = spec.cells
    total = len(cells)
    now = time.time()
    status = {"sweep_id": sweep_id, "state": "starting", "created": now, "updated": now,
              "pid": os.getpid(), "host": socket.gethostname(), "total": total,
              "done": 0, "solved": 0}
    create_sweep_dir(path, spec, status)

    with SweepLock(path, sweep_id):
        order = {c.cell_id: c.index for c in cells}
        params = spec.param_names
        previous = read_results(path / RESULTS_FILE)
        rows: dict[str, dict] = {}
        if previous is not None:
            for row in previous.to_dict("records"):
                if row.get("cell_id") in order:
                    rows[row["cell_id"]] = row
        done = sum(1 for r in rows.values() if r.get("status") in DONE_STATUSES)
        todo = [c for c in cells if rows.get(c.cell_id, {}).get("status") not in DONE_STATUSES]
        try:
            status["created"] = read_json(path / STATUS_FILE).get("created", now)
        except SweepError:
            pass  # no status yet: this session created the sweep

        def save_status(state: str, **extra) -> None:
            solved = sum(1 for r in rows.values() if r.get("status") in DONE_STATUSES
                         and bool(r.get("solved")))
            status.update(state=state, done=done, solved=solved, updated=time.time(), **extra)
            write_json(path / STATUS_FILE, status)

        def save_results() -> pd.DataFrame:
            df = results_frame(sorted(rows.values(), key=lambda r: order[r["cell_id"]]), params)
            atomic_write(path / RESULTS_FILE, lambda tmp: df.to_parquet(tmp, index=False))
            return df

        results = save_results()
        if not todo:
            save_status("finished")
            return sweep_id, results
        # Claimed at once with this pid: a resumed sweep would otherwise list as
        # "interrupted" (its old writer is dead) until the worker pool is up.
        save_status("starting")

        own = isinstance(backend, str)
        be = make_executor(backend, workers, scheduler) if own else backend
        be_name = getattr(be, "description", type(be).__name__)
        save_status("running", backend=be_name)
        if on_start:
            on_start({"sweep_id": sweep_id, "total": total, "done": done, "todo": len(todo),
                      "backend": be_name})
        state = "interrupted"
        futures: dict[cf.Future, Cell] = {}
        try:
            for c in todo:
                futures[be.submit(run_cell, c.payload())] = c
            pending = set(futures)
            while pending:
                if stop_event is not None and stop_event.is_set():
                    break
                # A short timeout, not a blocking wait, so stop_event is noticed promptly.
                finished, pending = cf.wait(pending, timeout=0.2,
                                            return_when=cf.FIRST_COMPLETED)
                for f in sorted(finished, key=lambda f: futures[f].index):
                    row = _row_from_future(f, futures[f])
                    rows[row["cell_id"]] = row
                    if row["status"] in DONE_STATUSES:
                        done += 1
                    results = save_results()
                    save_status("running", backend=be_name)
                    if on_result:
                        on_result(row, done, total)
            state = "stopped" if pending else (
                "finished" if done == total else "finished with errors")
        finally:
            unfinished = [f for f in futures if not f.done()]
            if unfinished:
                if isinstance(be, Backend):
                    be.abort()
                else:
                    for f in unfinished:
                        f.cancel()
            if own:
                be.shutdown(wait=False, cancel_futures=True)
            save_status(state, backend=be_name)
        return sweep_id, results


def _row_from_future(f: cf.Future, cell: Cell) -> dict:
    if f.cancelled():
        return _error_row(cell.payload(), "cancelled")
    exc = f.exception()
    if exc is None:
        return f.result()
    from core.executors import cluster_import_error

    # Dask unpickles run_cell (by reference to core.sweeps.run) on the scheduler as
    # well as on the workers: every process of the cluster must import core.
    problem = cluster_import_error(exc)
    if problem:
        raise SweepError(problem) from exc
    return _error_row(cell.payload(), f"{type(exc).__name__}: {exc}")

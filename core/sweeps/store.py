"""Where sweeps live on disk: their folders, reading them back, and one writer each.

Under the run store's root (``$RNNLAB_RUNS_DIR`` or ``runs/``)::

    sweeps/<sweep_id>/spec.json        the SweepSpec (sweep_id = hash of it)
    sweeps/<sweep_id>/status.json      state, progress, pid and host of the writer
    sweeps/<sweep_id>/results.parquet  one row per finished run (rewritten atomically
                                       after every run)
    sweeps/<sweep_id>/writer.lock      while a process runs the sweep

Every file is replaced atomically (:func:`core.runs.atomic_write`), and a new
sweep's folder appears with spec.json and status.json already in it
(:func:`create_sweep_dir`), so a reader such as the Sweep page, listing while a
sweep starts, never sees a half-made sweep. Messages name files relative to the
store's root (``sweeps/<id>/spec.json``): they reach users of the web app, who
have no business with the server's directories.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.runs import RunError, check_run_id, default_root, pid_alive, write_json
from core.sweeps.spec import SweepError, SweepSpec
from core.sweeps.stats import summarise_sweep
from core.sweeps.table import DONE_STATUSES, results_frame

SWEEPS_DIR = "sweeps"
SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
RESULTS_FILE = "results.parquet"
LOCK_FILE = "writer.lock"

# States in which a writer process is at work; if that process is gone, the sweep
# is "interrupted" instead. "starting" covers the seconds between creating the
# folder and the worker pool being up (Dask's LocalCluster takes several).
ACTIVE_STATES = ("starting", "running")
# A writer on another host cannot be asked whether it lives: this long without an
# update of status.json counts as gone (seconds).
FOREIGN_STALE_S = 3600


# ---------------------------------------------------------------- paths


def sweeps_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root if root is not None else default_root()) / SWEEPS_DIR


def sweep_path(root: str | os.PathLike | None, sweep_id: str) -> Path:
    try:
        return sweeps_root(root) / check_run_id(sweep_id)
    except RunError:
        raise SweepError(f"invalid sweep id {sweep_id!r}") from None


def shown(path: Path) -> str:
    """A sweep's file as messages name it: relative to the store's root."""
    return f"{SWEEPS_DIR}/{path.parent.name}/{path.name}"


def _reason(e: BaseException, path: Path) -> str:
    """Why reading ``path`` failed, without the server's directories in it."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror  # str(e) of an OSError ends with the absolute file name
    text = f"{type(e).__name__}: {e}"
    for d in sorted({str(path.parent.resolve()), str(path.parent)}, key=len, reverse=True):
        text = text.replace(d, f"{SWEEPS_DIR}/{path.parent.name}")
    return text


# ---------------------------------------------------------------- reading


def read_results(path: Path) -> pd.DataFrame | None:
    """The stored results table at ``path`` (a results.parquet), or None if absent."""
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many kinds; all of them mean unreadable
        raise SweepError(f"cannot read {shown(path)} ({_reason(e, path)}); move it away to "
                         "start the sweep afresh") from e


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; SweepError if missing, unreadable or not an object."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SweepError(f"cannot read {shown(path)}: {_reason(e, path)}") from e
    if not isinstance(d, dict):
        raise SweepError(f"{shown(path)} does not hold a JSON object")
    return d


def effective_state(status: dict) -> str:
    """The stored state, except that a starting or running sweep whose writer is
    gone is "interrupted" (a writer on another host counts as gone after
    FOREIGN_STALE_S without an update)."""
    state = status.get("state", "interrupted")
    if state not in ACTIVE_STATES:
        return state
    if status.get("host") == socket.gethostname():
        return state if pid_alive(status.get("pid")) else "interrupted"
    fresh = time.time() - float(status.get("updated") or 0) < FOREIGN_STALE_S
    return state if fresh else "interrupted"


@dataclass
class SweepData:
    """A stored sweep: its id, spec, results table and status."""

    sweep_id: str
    spec: SweepSpec
    results: pd.DataFrame
    status: dict
    path: Path

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    def summary(self) -> pd.DataFrame:
        return summarise_sweep(self.results)


def load_sweep(root: str | os.PathLike | None, sweep_id: str) -> SweepData:
    """Read a sweep back; raises SweepError with a clear message if it is unusable."""
    path = sweep_path(root, sweep_id)
    if not path.is_dir():
        raise SweepError(f"no sweep {sweep_id!r} in this run store")
    spec = SweepSpec.from_dict(read_json(path / SPEC_FILE))
    results = read_results(path / RESULTS_FILE)
    results = results_frame([] if results is None else results.to_dict("records"),
                            spec.param_names)
    try:
        status = read_json(path / STATUS_FILE)
    except SweepError:
        status = {}  # a sweep from before status.json existed, or one cut short
    status["state"] = effective_state(status)
    return SweepData(sweep_id, spec, results, status, path)


def list_sweeps(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per stored sweep, newest first: sweep_id, description, state, done,
    total, solved, created, updated (unreadable sweeps are listed with state 'broken'
    and the reason as description)."""
    cols = ["sweep_id", "description", "state", "done", "total", "solved", "created", "updated"]
    base = sweeps_root(root)
    rows = []
    if base.is_dir():
        for p in base.iterdir():
            # Dot-folders are new sweeps still being assembled (create_sweep_dir).
            if not p.is_dir() or p.name.startswith("."):
                continue
            try:
                data = load_sweep(root, p.name)
                done = data.results[data.results["status"].isin(DONE_STATUSES)]
                rows.append({
                    "sweep_id": p.name, "description": data.spec.describe(),
                    "state": data.status.get("state"), "done": len(done),
                    "total": len(data.spec.cells), "solved": int(done["solved"].sum()),
                    "created": data.status.get("created"), "updated": data.status.get("updated"),
                })
            except (SweepError, OSError) as e:
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                rows.append({"sweep_id": p.name, "description": reason, "state": "broken",
                             "done": 0, "total": 0, "solved": 0, "created": None,
                             "updated": None})
    df = pd.DataFrame(rows, columns=cols)
    for c in ("created", "updated"):
        df[c] = pd.to_datetime(pd.to_numeric(df[c], errors="coerce"), unit="s")
    return df.sort_values("updated", ascending=False, na_position="last").reset_index(drop=True)


# ---------------------------------------------------------------- writing


def create_sweep_dir(path: Path, spec: SweepSpec, status: dict) -> None:
    """Make sure ``path`` is the folder of ``spec``: create it, or check the stored spec.

    A new folder is assembled under a hidden name, with spec.json and ``status``
    (state "starting") in it, and renamed into place in one step. Made in place,
    the folder would exist for a moment without spec.json, and a listing in that
    moment showed the new sweep as "broken"; on the Sweep page, whose list is drawn
    right after the Run click starts the sweep, that moment was easy to hit.
    """
    spec_file = path / SPEC_FILE
    if not path.is_dir():
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            write_json(tmp / SPEC_FILE, spec.to_dict())
            write_json(tmp / STATUS_FILE, status)
            os.rename(tmp, path)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            # Another process creating the same sweep at the same moment won the
            # rename: its folder holds the same spec, checked below.
            if not path.is_dir():
                raise SweepError(f"cannot create the folder of sweep {path.name}: "
                                 f"{e.strerror or type(e).__name__}") from e
    if spec_file.exists():
        stored = SweepSpec.from_dict(read_json(spec_file))
        if stored.sweep_id != spec.sweep_id:
            raise SweepError(f"{shown(spec_file)} holds a different spec than sweep {spec.sweep_id}")
    else:
        write_json(spec_file, spec.to_dict())  # a folder made by hand or by an older version


# Folders locked by this process: a second run_sweep of the same sweep from
# another thread would otherwise see its own pid in the lock and take it over.
_held: set[str] = set()
_held_lock = threading.Lock()


class SweepLock:
    """One writer per sweep folder: refuses while a live process holds it.

    The lock is a file created with O_EXCL holding the writer's pid and host. A
    writer killed with SIGKILL cannot remove it, so a lock whose process is gone
    (same host, pid not alive) is stale and taken over: that is what lets the same
    command resume a killed sweep.
    """

    def __init__(self, path: Path, sweep_id: str):
        self.file = path / LOCK_FILE
        self.key = str(path.resolve())
        self.sweep_id = sweep_id

    def __enter__(self):
        with _held_lock:
            if self.key in _held:
                raise SweepError(f"sweep {self.sweep_id} is already running in this process")
            for _ in range(2):  # the second try follows removing a stale lock
                try:
                    fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    try:
                        owner = json.loads(self.file.read_text())
                    except (OSError, ValueError):
                        owner = {}  # being written this instant, or vanished: not ours
                    here = owner.get("host") == socket.gethostname()
                    mine = owner.get("pid") == os.getpid()  # left by this process, not held
                    if here and (mine or not pid_alive(owner.get("pid"))):
                        self.file.unlink(missing_ok=True)  # stale: its writer is gone
                        continue
                    raise SweepError(
                        f"sweep {self.sweep_id} is being run by process {owner.get('pid')} on "
                        f"{owner.get('host')}; wait for it to end, or if that process is gone "
                        f"delete {shown(self.file)} in the run store") from None
                with os.fdopen(fd, "w") as fh:
                    json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fh)
                _held.add(self.key)
                return self
            raise SweepError(f"cannot lock sweep {self.sweep_id}: {shown(self.file)} keeps coming back")

    def __exit__(self, *exc):
        with _held_lock:
            _held.discard(self.key)
            self.file.unlink(missing_ok=True)

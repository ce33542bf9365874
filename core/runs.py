"""The run store: one directory per run, written while it trains.

Layout of ``<root>/<run_id>/`` (the one run format; see also README):

    config.json        the TrainConfig
    status.json        status, progress and headline numbers (rewritten on each flush)
    metrics.parquet    step, loss, metric, grad_norm, wall_s        (every training step)
    evals.parquet      step, loss, metric, solved, wall_s           (held-out evaluations)
    probes.parquet     step, t, quantity, grad_norm                 (gradient profiles)
    gates.parquet      step, t, gate, mean                          (mean gate activations)
    summaries.parquet  step, vanishing_ratio, gradient_reach, ...   (one row per probe)
    model.safetensors  final weights (never pickle)

Every file is written atomically (temporary file, fsync, rename), so a reader
sees the old or the new version, never half of one, and a killed process loses
at most the records since the last flush (``flush_every`` seconds).

A run whose status says "running" but whose writer has stopped beating
(process gone, or no flush for ``STALE_AFTER_S``) is reported as "interrupted".

Sharing (see core.identity and core.jobs.JobRegistry): a run trained by the app
carries in status.json its ``identity`` (configs + code + numerics) and ``group``
(the run ids of its lockstep job, in order), so a Train press with the same
identity finds it (:meth:`RunStore.find_identical`) instead of training it again;
once a run has been handed to more than one session it is ``shared``, and
:meth:`RunStore.delete` refuses it (see :func:`shared_refusal`).

Ownership (see core.owners): a run started by the app records its ``owner`` (a hash of
the browser's token) and, from the Learn page, ``lesson``; :meth:`RunStore.list` lists
what one owner may see, :meth:`RunStore.delete` refuses another owner's run, and
:meth:`RunStore.room_refusal` applies the store-wide and per-owner caps.

Why one file of ~470 lines: the run format (its files, atomic writes, statuses) and the
store that lists, opens and deletes runs are one contract with the disk.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core import owners, settings
from core.config import ConfigError, TrainConfig, parse_config
from core.train import EndRecord, EvalRecord, ProbeRecord, Record, StepRecord

STATUSES = ("queued", "running", "finished", "stopped", "diverged", "interrupted")
STALE_AFTER_S = 30.0
# Directories under the root that are not runs (sweeps live in root/sweeps/).
RESERVED_NAMES = ("sweeps",)
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

TABLES = {
    "metrics": ["step", "loss", "metric", "grad_norm", "wall_s"],
    "evals": ["step", "loss", "metric", "solved", "wall_s"],
    "probes": ["step", "t", "quantity", "grad_norm"],
    "gates": ["step", "t", "gate", "mean"],
    "summaries": ["step", "vanishing_ratio", "gradient_reach", "h_grad_first", "h_grad_last"],
}


class RunError(Exception):
    """A run cannot be found, read or written; the message says which and why."""


def default_root() -> Path:
    """The run store's root: $RNNLAB_RUNS_DIR, else ``runs`` (see core.settings)."""
    return settings.get("RNNLAB_RUNS_DIR")


def new_run_id(config: TrainConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{config.task}-{config.arch}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """Refuse ids that could name anything outside the runs root."""
    if (not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id
            or run_id in RESERVED_NAMES):
        raise RunError(f"invalid run id {run_id!r}: use letters, digits, '-', '_' and '.'")
    return run_id


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a torn file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: Path, data: dict) -> None:
    def w(tmp):
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=1, default=_json_default)

    atomic_write(path, w)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@dataclass
class RunData:
    """A run's records in memory: what the UI draws and the store writes.

    Thread-safe: a trainer thread calls ``add``; readers call ``table`` or
    ``snapshot``, which return copies.
    """

    config: TrainConfig
    status: dict = field(default_factory=dict)
    rows: dict[str, list] = field(default_factory=lambda: {k: [] for k in TABLES})
    frames: dict[str, list[pd.DataFrame]] = field(
        default_factory=lambda: {"probes": [], "gates": []}
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Identifies this object in caches keyed by (token, versions): unlike id(), never reused.
    token: str = field(default_factory=lambda: secrets.token_hex(8), repr=False, compare=False)

    def __post_init__(self):
        task = self.config.make_task()
        base = {
            "status": "queued", "step": 0, "steps": self.config.steps, "solved": False,
            "steps_to_solve": None, "final_loss": None, "eval_loss": None,
            "eval_metric": None, "baseline_loss": task.baseline_loss,
            "metric_name": task.metric_name, "created": time.time(), "updated": time.time(),
            "wall_s": 0.0, "steps_per_s": None, "vanishing_ratio": None,
            "gradient_reach": None, "message": "",
        }
        base.update(self.status)
        self.status = base

    def add(self, record: Record) -> None:
        with self._lock:
            s = self.status
            if isinstance(record, StepRecord):
                self.rows["metrics"].append(
                    (record.step, record.loss, record.metric, record.grad_norm, record.wall_s)
                )
                s.update(step=record.step + 1, final_loss=record.loss, wall_s=record.wall_s)
                if record.wall_s > 0:
                    s["steps_per_s"] = (record.step + 1) / record.wall_s
            elif isinstance(record, EvalRecord):
                self.rows["evals"].append(
                    (record.step, record.loss, record.metric, record.solved, record.wall_s)
                )
                s.update(eval_loss=record.loss, eval_metric=record.metric)
                if record.solved and not s["solved"]:
                    s.update(solved=True, steps_to_solve=record.step)
            elif isinstance(record, ProbeRecord):
                self.frames["probes"].append(record.profile.assign(step=record.step))
                self.frames["gates"].append(record.activations.assign(step=record.step))
                sm = record.summary
                self.rows["summaries"].append(
                    (record.step, sm["vanishing_ratio"], sm["gradient_reach"],
                     sm["h_grad_first"], sm["h_grad_last"])
                )
                s.update(vanishing_ratio=sm["vanishing_ratio"], gradient_reach=sm["gradient_reach"])
            elif isinstance(record, EndRecord):
                s.update(status=record.status, wall_s=record.wall_s, message=record.message)
            s["updated"] = time.time()

    def update_status(self, **fields) -> None:
        """Set status fields as they are (e.g. ``message=""`` clears the message;
        ``shared=True``); the writer saves them at its next flush."""
        with self._lock:
            self.status.update(fields, updated=time.time())

    def set_status(self, status: str, message: str = "") -> None:
        with self._lock:
            self.status.update(status=status, updated=time.time())
            if message:
                self.status["message"] = message

    def table(self, name: str) -> pd.DataFrame:
        """A copy of one table as a DataFrame with the columns of ``TABLES[name]``."""
        with self._lock:
            if name in self.frames:
                frames = list(self.frames[name])
                if not frames:
                    return pd.DataFrame({c: [] for c in TABLES[name]})
                return pd.concat(frames, ignore_index=True)[TABLES[name]]
            return pd.DataFrame(list(self.rows[name]), columns=TABLES[name])

    def status_copy(self) -> dict:
        with self._lock:
            return dict(self.status)

    def versions(self) -> dict[str, int]:
        """How many records each table holds: tables only grow, so a table whose
        count is unchanged is unchanged (a cheap key for caches and writers)."""
        with self._lock:
            return {name: len(self.frames[name]) if name in self.frames else len(self.rows[name])
                    for name in TABLES}

    @classmethod
    def from_tables(cls, config: TrainConfig, status: dict, tables: dict[str, pd.DataFrame]):
        data = cls(config, status=status)
        for name, df in tables.items():
            if name in data.frames:
                data.frames[name] = [df]
            else:
                data.rows[name] = list(df[TABLES[name]].itertuples(index=False, name=None))
        return data


class RunWriter:
    """Persists a :class:`RunData` under its run directory, at most every ``flush_every`` s."""

    def __init__(self, run_dir: Path, data: RunData, flush_every: float = 2.0):
        self.dir = run_dir
        self.data = data
        self.flush_every = flush_every
        self._last_flush = 0.0
        self._written: dict[str, int] = {}  # table versions on disk
        self.error: str | None = None  # the last write failure, for the UI to show

    def add(self, record: Record) -> None:
        self.data.add(record)
        if isinstance(record, EndRecord) or time.monotonic() - self._last_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write every table and the status; a write failure is kept in ``error``, not raised,
        so the training and its in-memory charts go on."""
        self._last_flush = time.monotonic()
        try:
            # Rewrite only the tables that grew: the probe tables are the big ones and
            # change only at each probe, while the server has pages to draw.
            for name, version in self.data.versions().items():
                if self._written.get(name) == version:
                    continue
                df = self.data.table(name)
                atomic_write(self.dir / f"{name}.parquet", lambda tmp, df=df: df.to_parquet(tmp))
                self._written[name] = version
            status = self.data.status_copy()
            status.update(pid=os.getpid(), heartbeat=time.time())
            write_json(self.dir / "status.json", status)
            self.error = None
        except OSError as e:
            self.error = f"could not save the run to {self.dir}: {e.strerror or e}"

    def save_model(self, model) -> None:
        self.save_state(model.state_dict())

    def save_state(self, state: dict) -> None:
        """Write weights (a state dict) as model.safetensors; failures go to ``error``."""
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in state.items()}
        try:
            atomic_write(self.dir / "model.safetensors", lambda tmp: save_file(state, tmp))
        except OSError as e:
            self.error = f"could not save the model weights: {e.strerror or e}"


def pid_alive(pid) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


#: Statuses of a run that is complete: training it again would give the same records.
COMPLETE_STATUSES = ("finished", "diverged")


def shared_refusal(status: dict) -> str | None:
    """Why a run may not be deleted or renamed for being shared, or None."""
    if status.get("shared"):
        return ("it is shared: Train handed it to more than one session, so it belongs to "
                "none of them")
    return None


def effective_status(status: dict) -> str:
    """'running'/'queued' runs whose writer is gone are 'interrupted'."""
    s = status.get("status", "interrupted")
    if s in ("running", "queued"):
        beat = status.get("heartbeat") or 0
        if not pid_alive(status.get("pid")) or time.time() - beat > STALE_AFTER_S:
            return "interrupted"
    return s if s in STATUSES else "interrupted"


class RunStore:
    """List, create, load and delete runs under one root directory."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        self._identities: dict[str, str | None] = {}  # run id -> identity (never changes)
        self._owners: dict[str, str | None] = {}  # run id -> recorded owner (never changes)
        self._identities_lock = threading.Lock()

    def path(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    def create(self, config: TrainConfig, run_id: str | None = None,
               status: dict | None = None) -> RunWriter:
        """Make the run's directory and write its config; raises RunError if it can't.
        ``status``: fields the run starts with (the job's ``identity`` and ``group``)."""
        run_id = check_run_id(run_id or new_run_id(config))
        data = RunData(config, status={**(status or {}), "run_id": run_id})
        d = self.path(run_id)
        try:
            d.mkdir(parents=True, exist_ok=False)
            write_json(d / "config.json", config.to_dict())
        except OSError as e:
            raise RunError(f"cannot create run directory {d}: {e.strerror or e}") from e
        writer = RunWriter(d, data)
        writer.flush()
        return writer

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            (p.name for p in self.root.iterdir()
             if p.is_dir() and _RUN_ID.match(p.name) and p.name not in RESERVED_NAMES),
            reverse=True,
        )

    def read_status(self, run_id: str) -> dict:
        d = self.path(run_id)
        try:
            status = json.loads((d / "status.json").read_text())
            if not isinstance(status, dict):
                raise ValueError("status.json is not an object")
        except (OSError, ValueError) as e:
            return {"run_id": run_id, "status": "interrupted", "incomplete": True,
                    "message": f"status unreadable: {e}"}
        status["run_id"] = run_id
        status["status"] = effective_status(status)
        return status

    def list(self, owner: str | None = None, *, everything: bool = False) -> pd.DataFrame:
        """One row per run: run_id, task, arch, seq_len, status, step, steps, eval_loss,
        eval_metric, solved, created, owner. With ``owner``: only the runs it sees
        (core.owners.visible) unless ``everything`` (the presenter), and the ``owner``
        column says whose each run is from its point of view ("you", "shared", "lesson",
        "no owner", "visitor …"); without: every run."""
        rows = []
        for run_id in self.ids():
            st = self.read_status(run_id)
            if owner is not None and not everything and not owners.visible(st, owner):
                continue
            try:
                cfg = json.loads((self.path(run_id) / "config.json").read_text())
            except (OSError, ValueError):
                cfg = {}
            rows.append({
                "run_id": run_id, "task": cfg.get("task"), "arch": cfg.get("arch"),
                "seq_len": cfg.get("seq_len"), "status": st.get("status"),
                "step": st.get("step"), "steps": st.get("steps"),
                "eval_loss": st.get("eval_loss"), "eval_metric": st.get("eval_metric"),
                "solved": bool(st.get("solved")), "created": pd.to_datetime(
                    st.get("created") or 0, unit="s"),
                "owner": owners.owner_label(st, owner),
            })
        cols = ["run_id", "task", "arch", "seq_len", "status", "step", "steps",
                "eval_loss", "eval_metric", "solved", "created", "owner"]
        return pd.DataFrame(rows, columns=cols)

    def load(self, run_id: str) -> RunData:
        """Read a run back; raises RunError with a clear message if it is unusable.

        Missing tables (a run killed before its first flush) load as empty and the
        status carries ``incomplete: True``.
        """
        d = self.path(run_id)
        if not d.is_dir():
            raise RunError(f"no run {run_id!r} in {self.root}")
        try:
            cfg_dict = json.loads((d / "config.json").read_text())
            config = TrainConfig.from_dict(cfg_dict)
        except (OSError, ValueError, TypeError) as e:
            reason = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            raise RunError(f"run {run_id!r} has no usable config.json ({reason})") from e
        status = self.read_status(run_id)
        tables = {}
        for name, cols in TABLES.items():
            p = d / f"{name}.parquet"
            try:
                df = pd.read_parquet(p)
                missing = set(cols) - set(df.columns)
                if missing:
                    raise ValueError(f"missing columns {sorted(missing)}")
                tables[name] = df[cols]
            except Exception as e:  # noqa: BLE001 - pyarrow raises many types for bad files
                status["incomplete"] = True
                status.setdefault("problems", []).append(f"{name}.parquet: {e}")
                tables[name] = pd.DataFrame({c: [] for c in cols})
        return RunData.from_tables(config, status, tables)

    def delete(self, run_id: str, *, force: bool = False, by: str | None = None) -> None:
        """Remove a run. Refused (RunError saying why) unless ``force`` (whoever may clean
        up a whole deployment: the presenter): with ``by``, an owner, a run that is not
        ``by``'s own (core.owners.ownership_refusal); without, a shared run. See
        core.jobs.JobRegistry.delete_refusal for the rule a page applies, which also
        refuses runs being trained or watched by other sessions."""
        d = self.path(run_id)
        if not d.is_dir():
            raise RunError(f"no run {run_id!r} to delete")
        refusal = None
        if not force:
            status = self.read_status(run_id)
            refusal = (owners.ownership_refusal(status, by) if by is not None
                       else shared_refusal(status))
        if refusal:
            raise RunError(f"run {run_id!r} cannot be deleted: {refusal}")
        shutil.rmtree(d)
        with self._identities_lock:
            self._identities.pop(run_id, None)
            self._owners.pop(run_id, None)

    # ------------------------------------------------------------ caps

    def recorded_owner(self, run_id: str) -> str | None:
        """The owner the run was started for (core.owners.recorded_owner), read once per
        run: it never changes."""
        with self._identities_lock:
            if run_id in self._owners:
                return self._owners[run_id]
        try:
            status = json.loads((self.path(run_id) / "status.json").read_text())
        except (OSError, ValueError, RunError):
            return None  # not cached: a run being created may have no status yet
        owner = owners.recorded_owner(status) if isinstance(status, dict) else None
        with self._identities_lock:
            self._owners[run_id] = owner
        return owner

    def owned(self, owner: str) -> list[str]:
        """The ids of the runs that are ``owner``'s now (core.owners.owner_of): those it
        started that are neither shared nor a lesson run trained to its end."""
        return [i for i in self.ids() if self.recorded_owner(i) == owner
                and owners.owner_of(self.read_status(i)) == owner]

    def room_refusal(self, n: int = 1, owner: str | None = None) -> str | None:
        """Why ``n`` more runs (for ``owner``, None: for no one) may not be saved, or None:
        the store would hold more than $RNNLAB_MAX_STORED_RUNS runs, or ``owner`` more
        than $RNNLAB_MAX_RUNS_PER_OWNER of its own. The message names the limit and what
        to do about it."""
        if owner is not None:
            per_owner = settings.get("RNNLAB_MAX_RUNS_PER_OWNER")
            mine = len(self.owned(owner))
            if mine + n > per_owner:
                return (f"you have {mine} runs of your own in the run store, the limit per "
                        f"visitor on this server is {per_owner}: delete one of your runs on "
                        "the Runs page first")
        total = settings.get("RNNLAB_MAX_STORED_RUNS")
        if len(self.ids()) + n > total:
            return (f"the run store is full ({total} runs): delete runs on the Runs page "
                    "first")
        return None

    # ------------------------------------------------------------ identical runs

    def identity_of(self, run_id: str) -> str | None:
        """The identity status.json gives the run (None: an upload, an older run, or
        unreadable), read once per run: it never changes."""
        with self._identities_lock:
            if run_id in self._identities:
                return self._identities[run_id]
        try:
            ident = json.loads((self.path(run_id) / "status.json").read_text()).get("identity")
        except (OSError, ValueError, AttributeError, RunError):
            return None  # not cached: a run being created may have no status yet
        ident = ident if isinstance(ident, str) else None
        with self._identities_lock:
            self._identities[run_id] = ident
        return ident

    def find_identical(self, identity: str, n: int) -> list[str] | None:
        """The run ids, in order, of a complete job with this identity (``n`` runs, all
        finished or diverged, with their weights saved), or None. The newest such job
        wins when there are several (say, two servers shared the store)."""
        candidates = [i for i in self.ids() if self.identity_of(i) == identity]
        for run_id in candidates:  # ids() lists the newest first
            group = self.read_status(run_id).get("group")
            if not isinstance(group, list) or len(group) != n:
                continue
            try:
                statuses = [self.read_status(g) for g in group]
            except RunError:
                continue
            if all(s.get("identity") == identity and s.get("status") in COMPLETE_STATUSES
                   and not s.get("incomplete") and self.model_path(g).is_file()
                   for g, s in zip(group, statuses)):
                return list(group)
        return None

    def mark_shared(self, run_id: str) -> None:
        """Note in a saved run's status.json that it is shared (a run still training is
        marked through its RunData instead, which its writer saves)."""
        d = self.path(run_id)
        status = json.loads((d / "status.json").read_text())
        if isinstance(status, dict) and not status.get("shared"):
            status["shared"] = True
            write_json(d / "status.json", status)

    def model_path(self, run_id: str) -> Path:
        return self.path(run_id) / "model.safetensors"


def config_from_json(text: str) -> tuple[TrainConfig, dict[str, str]]:
    """Parse an uploaded config.json leniently (see :func:`core.config.parse_config`)."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise RunError(f"config.json is not valid JSON: {e}") from e
    if not isinstance(d, dict):
        raise RunError("config.json must hold a JSON object")
    return parse_config(d)

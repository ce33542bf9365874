"""Sweeps: a grid of training runs, run in parallel, saved and resumable.

A sweep is tasks × variants (architectures, or an architecture with options)
× sequence lengths × seeds (× optional extra parameters such as ``lr``). Each
cell is one :class:`core.train.Trainer` run with ``stop_when_solved`` on, capped
at ``steps``, with probes off during training and one gradient probe of the
final network (so vanishing ratio and gradient reach describe the end state).

    spec = SweepSpec(tasks=("adding",), variants=parse_archs("rnn_tanh,lstm,gru"),
                     seq_lens=(10, 20, 50), seeds=3, steps=2000)
    sweep_id, results = run_sweep(spec, backend="local", workers=2,
                                  on_result=lambda row, done, total: print(done, total))
    summary = summarise_sweep(results)      # success rate + Wilson interval per cell

Storage, under the run store's root (``$RNNLAB_RUNS_DIR`` or ``runs/``)::

    sweeps/<sweep_id>/spec.json        the SweepSpec (sweep_id = hash of it)
    sweeps/<sweep_id>/results.parquet  one row per finished run (rewritten atomically
                                       after every run)
    sweeps/<sweep_id>/status.json      state, progress, pid of the writer

Running the same spec again resumes it: finished cells are skipped, so an
interrupted sweep loses at most the runs that were in flight. Runs that raised
an error are saved with ``status == "error"`` and retried on the next resume.

Backends (:mod:`core.executors`): ``local`` (loky process pool, one torch thread
per worker) or ``dask`` (an existing cluster or a LocalCluster); both run
:func:`run_cell`, the same function on the same inputs, so they give the same
results for the same seeds.

Command line: ``python -m core.sweep --task adding --archs rnn_tanh,lstm,gru
--seq-lens 10,20,50,100 --seeds 5 --steps 2000 [--workers N] [--backend local|dask]
[--scheduler ADDR] [--out DIR]`` (see :func:`add_sweep_arguments`) prints a
progress bar on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import functools
import hashlib
import json
import math
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import FIELD_BY_NAME, ConfigError, TrainConfig, coerce
from core.runs import atomic_write, check_run_id, default_root, pid_alive, write_json
from core.tasks import TASK_NAMES

SPEC_VERSION = 1
SWEEPS_DIR = "sweeps"
RESULTS_FILE = "results.parquet"

# Grid dimensions: set per cell, so they may not appear in ``base`` or ``params``.
GRID_FIELDS = ("task", "arch", "seq_len", "seed", "steps")
# Forced for every cell.
FORCED = {"stop_when_solved": True, "threads": 1}
# Defaults for sweep cells (any may be overridden in ``base``): no probes while
# training (one probe of the final network instead), evaluation every 50 steps
# so "steps to solve" has a resolution of 50.
SWEEP_DEFAULTS = {"probe_every": 0, "eval_every": 50, "eval_size": 500}

COORD_COLUMNS = ("task", "arch", "seq_len", "seed")
RESULT_COLUMNS = (
    "solved", "steps_to_solve", "steps_done", "eval_loss", "eval_metric", "metric_name",
    "baseline_loss", "vanishing_ratio", "gradient_reach", "wall_s", "status", "message",
    "label", "worker", "cell_id", "config",
)
# A cell with one of these statuses is done; anything else ("error") is run again.
DONE_STATUSES = ("finished", "diverged")


class SweepError(ValueError):
    """A sweep spec is invalid, or a sweep cannot be found, read, run or saved."""


# ---------------------------------------------------------------- statistics


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95% for z = 1.96).

    Unlike the normal approximation it stays inside [0, 1] and is not
    degenerate at k = 0 or k = n: 0/5 gives (0, 0.43). n = 0 gives (0, 1).
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------- the spec


def _coerce_field(name: str, value: Any) -> Any:
    f = FIELD_BY_NAME.get(name)
    if f is None:
        raise SweepError(f"{name!r} is not a configuration field")
    try:
        return coerce(f, value)
    except ValueError as e:
        raise SweepError(f"{name}: {e}") from None


def parse_variant(token: str) -> dict:
    """``"lstm"`` → {name: lstm, arch: lstm}; ``"lstm:forget_bias=1"`` adds options.

    The token itself (stripped) is the variant's name, used as the ``arch`` column.
    """
    token = token.strip()
    if not token:
        raise SweepError("empty architecture name")
    arch, *options = [p.strip() for p in token.split(":")]
    variant: dict[str, Any] = {"name": token, "arch": _coerce_field("arch", arch)}
    for opt in options:
        key, sep, value = opt.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SweepError(f"variant {token!r}: write options as key=value, got {opt!r}")
        if key in GRID_FIELDS or key in FORCED:
            raise SweepError(f"variant {token!r}: {key} cannot be set per variant")
        variant[key] = _coerce_field(key, value.strip())
    return variant


def parse_archs(text: str | Iterable[str]) -> tuple[dict, ...]:
    """``"rnn_tanh,lstm,gru"`` → three variants named after their arch (see parse_variant)."""
    tokens = text.split(",") if isinstance(text, str) else list(text)
    variants = tuple(parse_variant(t) for t in tokens if str(t).strip())
    if not variants:
        raise SweepError("no architectures given")
    return variants


def _normalise_variant(v: Any) -> dict:
    if isinstance(v, str):
        return parse_variant(v)
    if not isinstance(v, dict) or "arch" not in v:
        raise SweepError(f"a variant must be an arch name or a dict with 'arch', got {v!r}")
    out = {"arch": _coerce_field("arch", v["arch"])}
    for k, value in v.items():
        if k in ("name", "arch"):
            continue
        if k in GRID_FIELDS or k in FORCED:
            raise SweepError(f"variant {v!r}: {k} cannot be set per variant")
        out[k] = _coerce_field(k, value)
    extras = ":".join(f"{k}={out[k]}" for k in out if k != "arch")
    out = {"name": str(v.get("name") or (out["arch"] + (":" + extras if extras else ""))), **out}
    return out


def _as_tuple(value: Any, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        value = (value,)
    out = tuple(value)
    if not out:
        raise SweepError(f"{name}: give at least one value")
    return out


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its grid coordinates and its full training config."""

    index: int
    cell_id: str
    coords: dict
    config: TrainConfig

    def payload(self) -> dict:
        """What :func:`run_cell` receives (plain, picklable, JSON-able)."""
        return {"cell_id": self.cell_id, "coords": dict(self.coords),
                "config": self.config.to_dict()}


@dataclass(frozen=True, eq=True)
class SweepSpec:
    """A sweep grid. ``seeds`` may be a count n (seeds 0..n-1) or explicit seeds.

    ``variants``: arch names, ``"arch:key=value"`` strings or dicts (see parse_variant).
    ``base``: TrainConfig overrides for every cell (e.g. hidden_size, batch_size, lr).
    ``params``: extra grid dimensions, ``{"lr": (0.001, 0.003)}``; a parameter that
    does not apply to a variant's arch (forget_bias for gru) is left at its default
    for that variant, which then has one cell instead of one per value.
    """

    tasks: tuple[str, ...] = ("adding",)
    variants: tuple[dict, ...] = ("rnn_tanh", "lstm", "gru")
    seq_lens: tuple[int, ...] = (10, 20, 50, 100)
    seeds: tuple[int, ...] | int = 5
    steps: int = 2000
    base: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        set_("tasks", tuple(_coerce_field("task", t) for t in _as_tuple(self.tasks, "tasks")))
        set_("variants", tuple(_normalise_variant(v) for v in _as_tuple(self.variants, "variants")))
        names = [v["name"] for v in self.variants]
        if len(set(names)) != len(names):
            raise SweepError(f"variant names must be unique, got {names}")
        set_("seq_lens", tuple(_coerce_field("seq_len", t)
                               for t in _as_tuple(self.seq_lens, "seq_lens")))
        seeds = self.seeds
        if isinstance(seeds, (int, str)) and not isinstance(seeds, bool):
            try:
                count = int(seeds)
            except ValueError:
                raise SweepError(f"seeds: give a count or a list, got {seeds!r}") from None
            if count < 1:
                raise SweepError(f"seeds: need at least one seed, got {count}")
            seeds = range(count)
        set_("seeds", tuple(_coerce_field("seed", s) for s in _as_tuple(seeds, "seeds")))
        set_("steps", _coerce_field("steps", self.steps))
        base = dict(self.base or {})
        for k in base:
            if k in GRID_FIELDS or k in FORCED:
                raise SweepError(f"base: {k} is set by the sweep grid, not in base")
        set_("base", {k: _coerce_field(k, v) for k, v in base.items()})
        params = {}
        for k, values in dict(self.params or {}).items():
            if k in GRID_FIELDS or k in FORCED or k in base:
                raise SweepError(f"params: {k} cannot be a parameter dimension here")
            clash = [v["name"] for v in self.variants if k in v]
            if clash:
                raise SweepError(f"params: {k} is also set by variant(s) {', '.join(clash)}")
            params[k] = tuple(_coerce_field(k, v) for v in _as_tuple(values, f"params.{k}"))
        set_("params", params)
        for dim, values in (("tasks", self.tasks), ("seq_lens", self.seq_lens),
                            ("seeds", self.seeds), *((f"params.{k}", v) for k, v in params.items())):
            if len(set(values)) != len(values):
                raise SweepError(f"{dim}: values repeat: {list(values)}")
        _ = self.cells  # validate every cell now, with one message for all bad ones

    def __hash__(self) -> int:
        return hash(self.sweep_id)

    # -- identity ------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "version": SPEC_VERSION, "tasks": list(self.tasks),
            "variants": [dict(v) for v in self.variants], "seq_lens": list(self.seq_lens),
            "seeds": list(self.seeds), "steps": self.steps, "base": dict(self.base),
            "params": {k: list(v) for k, v in self.params.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        if not isinstance(d, dict):
            raise SweepError("a sweep spec must be a JSON object")
        d = dict(d)
        version = d.pop("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SweepError(f"sweep spec version {version} is not supported "
                             f"(this code reads version {SPEC_VERSION})")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SweepError(f"unknown sweep spec field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @functools.cached_property
    def sweep_id(self) -> str:
        """Stable id: a hash of the canonical spec plus the resolved base config, so
        the same grid resumes the same sweep and changed defaults start a new one."""
        resolved = self.base_config().to_dict()
        canonical = json.dumps({"spec": self.to_dict(), "resolved_base": resolved},
                               sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
        return check_run_id(f"{'-'.join(self.tasks)}-{digest}")

    def base_config(self) -> TrainConfig:
        """The config every cell starts from (grid fields at TrainConfig defaults)."""
        return TrainConfig(**{**SWEEP_DEFAULTS, **self.base, **FORCED, "steps": self.steps})

    def describe(self) -> str:
        parts = [", ".join(self.tasks), ", ".join(v["name"] for v in self.variants),
                 "T=" + ",".join(map(str, self.seq_lens)), f"{len(self.seeds)} seed(s)",
                 f"{self.steps} steps"]
        parts += [f"{k}={','.join(map(str, v))}" for k, v in self.params.items()]
        return " · ".join(parts) + f" · {len(self.cells)} runs"

    # -- the grid ------------------------------------------------------------

    @functools.cached_property
    def cells(self) -> tuple[Cell, ...]:
        """Every run, in submission order: seed-major (so a partial sweep already
        covers the whole grid with its first seeds), longest sequences first
        within a seed (better packing of the workers)."""
        base = {**SWEEP_DEFAULTS, **self.base, **FORCED, "steps": self.steps}
        raw: list[tuple[dict, dict]] = []
        for seed in self.seeds:
            for task in self.tasks:
                for seq_len in sorted(self.seq_lens, reverse=True):
                    for variant in self.variants:
                        for combo in self._param_combos(variant["arch"]):
                            coords = {"task": task, "arch": variant["name"], "seq_len": seq_len,
                                      "seed": seed, **combo}
                            options = {k: v for k, v in variant.items() if k != "name"}
                            values = {**base, **options,
                                      **{k: v for k, v in combo.items() if v is not None},
                                      "task": task, "seq_len": seq_len, "seed": seed}
                            raw.append((coords, values))
        cells, errors = [], {}
        for i, (coords, values) in enumerate(raw):
            try:
                config = TrainConfig.from_dict(values)
            except ConfigError as e:
                where = ", ".join(f"{k}={v}" for k, v in coords.items() if k != "seed")
                errors.setdefault(where, str(e))
                continue
            ident = json.dumps({"coords": coords, "config": config.to_dict()}, sort_keys=True)
            cells.append(Cell(i, hashlib.sha256(ident.encode()).hexdigest()[:16], coords, config))
        if errors:
            raise SweepError("invalid sweep cells: " + "; ".join(
                f"[{where}] {msg}" for where, msg in errors.items()))
        return tuple(cells)

    def _param_combos(self, arch: str) -> list[dict]:
        combos: list[dict] = [{}]
        for k, values in self.params.items():
            applies = FIELD_BY_NAME[k].applies_to
            if applies is not None and applies[0] not in TASK_NAMES and arch not in applies:
                values = (None,)  # not this arch's option: one cell, recorded as missing
            combos = [{**c, k: v} for c in combos for v in values]
        return combos

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params)


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


# ---------------------------------------------------------------- storage


def sweeps_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root if root is not None else default_root()) / SWEEPS_DIR


def sweep_path(root: str | os.PathLike | None, sweep_id: str) -> Path:
    return sweeps_root(root) / check_run_id(sweep_id)


def results_frame(rows: Iterable[dict], param_names: Sequence[str] = ()) -> pd.DataFrame:
    """Rows → the results table with its fixed columns and dtypes."""
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
        df[c] = pd.array(pd.to_numeric(df[c], errors="coerce"), dtype="Int64") \
            if len(df) else pd.array([], dtype="Int64")
    for c in ("eval_loss", "eval_metric", "baseline_loss", "vanishing_ratio", "wall_s"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["solved"] = df["solved"].fillna(False).astype(bool)
    for c in ("task", "arch", "metric_name", "status", "message", "label", "worker",
              "cell_id", "config"):
        df[c] = df[c].astype("str")  # pandas' string dtype, as Parquet reads it back
    return df.reset_index(drop=True)


def _read_results(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as e:
        raise SweepError(f"cannot read {path} ({type(e).__name__}: {e}); move it away to "
                         "start the sweep afresh") from e


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SweepError(f"cannot read {path}: {e}") from e
    if not isinstance(d, dict):
        raise SweepError(f"{path} does not hold a JSON object")
    return d


def _effective_state(status: dict) -> str:
    """The stored state, except that a "running" sweep whose writer is gone is
    "interrupted" (another host's writer cannot be checked: an hour without an
    update counts as gone)."""
    state = status.get("state", "interrupted")
    if state != "running":
        return state
    if status.get("host") == socket.gethostname():
        return "running" if pid_alive(status.get("pid")) else "interrupted"
    return "running" if time.time() - float(status.get("updated") or 0) < 3600 else "interrupted"


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
        raise SweepError(f"no sweep {sweep_id!r} in {sweeps_root(root)}")
    spec = SweepSpec.from_dict(_read_json(path / "spec.json"))
    results = _read_results(path / RESULTS_FILE)
    results = results_frame([] if results is None else results.to_dict("records"),
                            spec.param_names)
    try:
        status = _read_json(path / "status.json")
    except SweepError:
        status = {}
    status["state"] = _effective_state(status)
    return SweepData(sweep_id, spec, results, status, path)


def list_sweeps(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per stored sweep, newest first: sweep_id, description, state, done,
    total, solved, created, updated (unreadable sweeps are listed with state 'broken')."""
    cols = ["sweep_id", "description", "state", "done", "total", "solved", "created", "updated"]
    base = sweeps_root(root)
    rows = []
    if base.is_dir():
        for p in base.iterdir():
            if not p.is_dir():
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
                rows.append({"sweep_id": p.name, "description": str(e), "state": "broken",
                             "done": 0, "total": 0, "solved": 0, "created": None,
                             "updated": None})
    df = pd.DataFrame(rows, columns=cols)
    for c in ("created", "updated"):
        df[c] = pd.to_datetime(pd.to_numeric(df[c], errors="coerce"), unit="s")
    return df.sort_values("updated", ascending=False, na_position="last").reset_index(drop=True)


_held: set[str] = set()
_held_lock = threading.Lock()


class _SweepLock:
    """One writer per sweep directory: refuses while a live process holds it."""

    def __init__(self, path: Path, sweep_id: str):
        self.file = path / "writer.lock"
        self.key = str(path.resolve())
        self.sweep_id = sweep_id

    def __enter__(self):
        with _held_lock:
            if self.key in _held:
                raise SweepError(f"sweep {self.sweep_id} is already running in this process")
            for _ in range(2):
                try:
                    fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    try:
                        owner = json.loads(self.file.read_text())
                    except (OSError, ValueError):
                        owner = {}
                    here = owner.get("host") == socket.gethostname()
                    if here and (not pid_alive(owner.get("pid")) or owner.get("pid") == os.getpid()):
                        self.file.unlink(missing_ok=True)  # stale: its writer is gone
                        continue
                    raise SweepError(
                        f"sweep {self.sweep_id} is being run by process {owner.get('pid')} on "
                        f"{owner.get('host')}; wait for it, or delete {self.file} if it is gone") from None
                with os.fdopen(fd, "w") as fh:
                    json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fh)
                _held.add(self.key)
                return self
            raise SweepError(f"cannot lock {self.file}")

    def __exit__(self, *exc):
        with _held_lock:
            _held.discard(self.key)
            self.file.unlink(missing_ok=True)


# ---------------------------------------------------------------- running


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
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SweepError(f"cannot create sweep directory {path}: {e.strerror or e}") from e
    spec_file = path / "spec.json"
    if spec_file.exists():
        stored = SweepSpec.from_dict(_read_json(spec_file))
        if stored.sweep_id != sweep_id:
            raise SweepError(f"{spec_file} holds a different spec than sweep {sweep_id}")
    else:
        write_json(spec_file, spec.to_dict())

    with _SweepLock(path, sweep_id):
        cells = spec.cells
        order = {c.cell_id: c.index for c in cells}
        params = spec.param_names
        previous = _read_results(path / RESULTS_FILE)
        rows: dict[str, dict] = {}
        if previous is not None:
            for row in previous.to_dict("records"):
                if row.get("cell_id") in order:
                    rows[row["cell_id"]] = row
        done = sum(1 for r in rows.values() if r.get("status") in DONE_STATUSES)
        todo = [c for c in cells if rows.get(c.cell_id, {}).get("status") not in DONE_STATUSES]
        total = len(cells)
        try:
            old_status = _read_json(path / "status.json")
        except SweepError:
            old_status = {}
        status = {"sweep_id": sweep_id, "created": old_status.get("created", time.time()),
                  "pid": os.getpid(), "host": socket.gethostname(), "total": total}

        def save_status(state: str, **extra) -> None:
            solved = sum(1 for r in rows.values() if r.get("status") in DONE_STATUSES
                         and bool(r.get("solved")))
            status.update(state=state, done=done, solved=solved, updated=time.time(), **extra)
            write_json(path / "status.json", status)

        def save_results() -> pd.DataFrame:
            df = results_frame(sorted(rows.values(), key=lambda r: order[r["cell_id"]]), params)
            atomic_write(path / RESULTS_FILE, lambda tmp: df.to_parquet(tmp, index=False))
            return df

        results = save_results()
        if not todo:
            save_status("finished")
            return sweep_id, results

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
    if (isinstance(exc, ImportError) and "core" in str(exc)) or (
            "deserializ" in str(exc) and "environment" in str(exc)):
        # Dask unpickles run_cell (by reference to core.sweep) on the scheduler as
        # well as on the workers: every process of the cluster must import core.
        raise SweepError(
            f"the cluster cannot import this project ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}): start `dask scheduler` and `dask worker` with the "
            f"project on PYTHONPATH (e.g. PYTHONPATH={Path(__file__).resolve().parent.parent})"
        ) from exc
    return _error_row(cell.payload(), f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- summary


def summarise_sweep(results: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (task, arch, seq_len[, params]): n, successes, rate, Wilson 95% low/high,
    median steps to solve (over solved runs), median gradient reach, median
    vanishing ratio, median final held-out loss, mean wall seconds, errors.

    ``arch`` is the variant name. Runs with status "error" are counted in
    ``errors`` only, not in n.
    """
    if by is None:
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


# ---------------------------------------------------------------- presets

DEMO_PRESET = "demo: 3 archs × T 10,20,50,100 × 3 seeds on adding"
SWEEP_PRESETS: dict[str, SweepSpec] = {
    DEMO_PRESET: SweepSpec(tasks=("adding",), variants=("rnn_tanh", "lstm", "gru"),
                           seq_lens=(10, 20, 50, 100), seeds=3, steps=2000),
    "RNN vs LSTM vs GRU on adding, T = 10…200, 5 seeds": SweepSpec(
        tasks=("adding",), variants=("rnn_tanh", "lstm", "gru"),
        seq_lens=(10, 20, 50, 100, 200), seeds=5, steps=3000),
    "LSTM forget gate: none vs default vs bias 1 on adding, T = 20…200, 3 seeds": SweepSpec(
        tasks=("adding",),
        variants=("lstm", "lstm:forget_bias=1", "lstm:no_forget_gate=true"),
        seq_lens=(20, 50, 100, 200), seeds=3, steps=3000),
}


def find_preset(name: str) -> tuple[str, SweepSpec]:
    """A preset by its title or any unambiguous case-insensitive part of it ("demo")."""
    if name in SWEEP_PRESETS:
        return name, SWEEP_PRESETS[name]
    hits = [k for k in SWEEP_PRESETS if name.lower() in k.lower()]
    if len(hits) != 1:
        raise SweepError(f"no single preset matches {name!r}; presets: "
                         + "; ".join(SWEEP_PRESETS))
    return hits[0], SWEEP_PRESETS[hits[0]]


# ---------------------------------------------------------------- command line


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
    one line per finished run otherwise."""

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
        prog="python -m core.sweep",
        description="Run a sweep: tasks × architectures × sequence lengths × seeds.")
    add_sweep_arguments(parser)
    return sweep_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

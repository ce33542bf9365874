"""What a sweep is: the variant grammar, one cell of the grid, and the whole grid.

A sweep is tasks × variants (architectures, or an architecture with options)
× sequence lengths × seeds (× optional extra parameters such as ``lr``). A
:class:`SweepSpec` holds that grid, validates every cell at construction, and
names the sweep by a hash of itself (:attr:`SweepSpec.sweep_id`), which is
what makes a sweep resumable: the same grid finds the same folder again.

    spec = SweepSpec(tasks=("adding",), variants=parse_archs("rnn_tanh,lstm:forget_bias=1"),
                     seq_lens=(10, 20, 50), seeds=3, steps=2000)
    spec.cells[0].config      # the TrainConfig of the first run

Nothing here trains or touches the disk.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.config import FIELD_BY_NAME, ConfigError, TrainConfig, coerce
from core.runs import check_run_id
from core.tasks import TASK_NAMES

# Bumped when spec.json's meaning changes: an old folder is then refused, not misread.
SPEC_VERSION = 1

# Grid dimensions: set per cell, so they may not appear in ``base`` or ``params``.
GRID_FIELDS = ("task", "arch", "seq_len", "seed", "steps")
# Forced for every cell: a sweep measures "steps to solve", so each run stops once
# solved; one torch thread per run because the runs themselves fill the cores.
FORCED = {"stop_when_solved": True, "threads": 1}
# Defaults for sweep cells (any may be overridden in ``base``): no probes while
# training (one probe of the final network instead), evaluation every 50 steps
# so "steps to solve" has a resolution of 50.
SWEEP_DEFAULTS = {"probe_every": 0, "eval_every": 50, "eval_size": 500}


class SweepError(ValueError):
    """A sweep spec is invalid, or a sweep cannot be found, read, run or saved."""


# ---------------------------------------------------------------- variants


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
    # A dict without a name is named as its string form would be, so that
    # {"arch": "lstm", "forget_bias": 1} and "lstm:forget_bias=1" are one variant.
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


# ---------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its grid coordinates and its full training config."""

    index: int
    cell_id: str
    coords: dict
    config: TrainConfig

    def payload(self) -> dict:
        """What :func:`core.sweeps.run.run_cell` receives (plain, picklable, JSON-able)."""
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
        # Frozen, yet normalised here: the canonical form is what gets hashed into
        # the sweep id, so "5" and 5, or a list and a tuple, name the same sweep.
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
            # On resume, stored rows are matched to cells by this id: hashing the full
            # config, not the cell's position, means a row counts only for this very run.
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

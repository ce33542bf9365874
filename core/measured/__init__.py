"""Sweeps measured once and shipped with the app, so that pages can show them without
re-running their trainings (the pure-lag sweep is 120 trainings, ~45 minutes on two cores).

Each folder here is a finished sweep as the sweep store wrote it (``spec.json``,
``status.json``, ``results.parquet``, see :mod:`core.sweeps.store`) plus
``measured.json``: how it was measured — the exact ``command``, the ``commit`` it ran
at, the ``cpu``, the ``date``, the machine's ``load`` and the ``wall_s`` it took —
which every page that shows it must print beside it::

    from core.measured import load_shipped, shipped_sweeps
    shipped = load_shipped("pure-lag")
    shipped.data.results          # one row per training, as load_sweep returns it
    shipped.summary()             # success rate with its Wilson interval, per cell
    shipped.label()               # "measured by `…` on …, 2026-12-04, commit e6a658c"

Nothing here trains: the numbers are the file's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.config import TrainConfig
from core.sweeps.spec import SweepError, SweepSpec
from core.sweeps.stats import summarise_sweep
from core.sweeps.store import (
    RESULTS_FILE,
    SPEC_FILE,
    STATUS_FILE,
    SweepData,
    read_json,
    read_results,
)
from core.sweeps.table import results_frame

MEASURED_DIR = Path(__file__).resolve().parent
META_FILE = "measured.json"
META_KEYS = ("command", "commit", "cpu", "date", "load")
# The order pages offer them in; any other shipped folder follows, by name.
ORDER = ("pure-lag", "temporal-order", "pure-lag-modern", "adding-modern")
# A cell re-run live on the Train page is probed this often (its heatmaps' rows).
LIVE_PROBE_EVERY = 50


@dataclass(frozen=True)
class ShippedSweep:
    """A shipped sweep: its folder ``name``, the stored sweep (``data``, the same
    :class:`~core.sweeps.store.SweepData` the sweep store gives) and ``meta``, the
    contents of measured.json."""

    name: str
    data: SweepData
    meta: dict

    @property
    def spec(self) -> SweepSpec:
        return self.data.spec

    @property
    def results(self) -> pd.DataFrame:
        return self.data.results

    def summary(self) -> pd.DataFrame:
        """Per (task, variant, T): runs, successes, rate with its Wilson 95% interval,
        median steps to solve, gradient reach, … (:func:`core.sweeps.summarise_sweep`)."""
        return summarise_sweep(self.results)

    @property
    def order(self) -> list[str]:
        """The variants in the spec's order (the order the sweep was defined in)."""
        return [v["name"] for v in self.spec.variants]

    def label(self) -> str:
        """How the pages name where the numbers come from (Markdown)."""
        m = self.meta
        return (f"measured by `{m['command']}` on {m['cpu']}, {m['date']}, "
                f"commit {str(m['commit'])[:7]}")

    def cell(self, arch: str, seq_len: int, seed: int) -> pd.Series:
        """The result row of one training (variant name, T, seed); KeyError if absent."""
        r = self.results
        hit = r[(r["arch"] == arch) & (r["seq_len"] == int(seq_len)) & (r["seed"] == int(seed))]
        if hit.empty:
            raise KeyError(f"{self.name}: no training {arch}, T = {seq_len}, seed {seed}")
        return hit.iloc[0]

    def cell_config(self, arch: str, seq_len: int, seed: int) -> TrainConfig:
        """The exact TrainConfig that cell trained with (stored in its row)."""
        return TrainConfig.from_dict(json.loads(self.cell(arch, seq_len, seed)["config"]))

    def live_config(self, arch: str, seq_len: int, seed: int) -> TrainConfig:
        """That cell's training for a live re-run on the Train page: the same config, with
        gradient probes every :data:`LIVE_PROBE_EVERY` steps so that the heatmaps draw (the
        sweep probed only the final network) and its whole step budget trained."""
        return self.cell_config(arch, seq_len, seed).replace(
            probe_every=LIVE_PROBE_EVERY, stop_when_solved=False)

    def labels(self) -> dict[str, str]:
        """Variant name → the model's label (``lstm:gate_init=chrono`` → ``lstm (chrono
        init)``), from the results table, in the spec's order."""
        first = self.results.groupby("arch")["label"].first()
        return {v: str(first.get(v, v)) for v in self.order}

    def seed_table(self) -> pd.DataFrame:
        """One row per variant (its label), one column per T: "k/n" seeds solved, then the
        steps to solve of each seed in seed order ("-": not solved within the budget),
        e.g. "3/3 150,200,150". Read from the results table, nothing else."""
        r = self.results
        labels = self.labels()
        rows = {}
        for variant in self.order:
            row = {}
            for T in self.spec.seq_lens:
                d = r[(r["arch"] == variant) & (r["seq_len"] == T)].sort_values("seed")
                done = d[d["status"] != "error"]
                solved = done["solved"].astype(bool)
                steps = [str(int(s)) if ok else "-"
                         for s, ok in zip(done["steps_to_solve"], solved)]
                row[f"T={T}"] = f"{int(solved.sum())}/{len(done)}" + (
                    f" {','.join(steps)}" if solved.any() else "")
            rows[labels[variant]] = row
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "model"
        return table


def shipped_sweeps() -> list[str]:
    """The names of the shipped sweeps (folders holding a measured.json and a results
    table), in :data:`ORDER`."""
    names = [p.name for p in MEASURED_DIR.iterdir()
             if p.is_dir() and (p / META_FILE).exists() and (p / RESULTS_FILE).exists()]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def load_shipped(name: str) -> ShippedSweep:
    """Read a shipped sweep back; SweepError naming the problem if it is missing or
    incomplete (measured.json must name the command, commit, CPU, date and load)."""
    if name not in shipped_sweeps():
        raise SweepError(f"no shipped sweep {name!r}; shipped: {', '.join(shipped_sweeps())}")
    path = MEASURED_DIR / name
    spec = SweepSpec.from_dict(read_json(path / SPEC_FILE))
    stored = read_results(path / RESULTS_FILE)
    results = results_frame(stored.to_dict("records"), spec.param_names)
    status = read_json(path / STATUS_FILE)
    meta = read_json(path / META_FILE)
    missing = [k for k in META_KEYS if not meta.get(k)]
    if missing:
        raise SweepError(f"core/measured/{name}/{META_FILE} does not say {', '.join(missing)}")
    sweep_id = str(status.get("sweep_id") or name)
    return ShippedSweep(name, SweepData(sweep_id, spec, results, status, path), meta)


__all__ = ["LIVE_PROBE_EVERY", "MEASURED_DIR", "META_FILE", "ShippedSweep", "load_shipped", "shipped_sweeps"]

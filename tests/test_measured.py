"""The sweeps shipped with the app (core/measured): they load, they are the presets'
grids, and every number the pages and BENCHMARKS.md show is the file's."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import core.measured as measured
from core.config import TrainConfig
from core.measured import LIVE_PROBE_EVERY, load_shipped, shipped_sweeps
from core.sweeps import SweepError, find_preset
from core.sweeps.presets import PURE_LAG_PRESET, TEMPORAL_ORDER_PRESET

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"pure-lag": PURE_LAG_PRESET, "temporal-order": TEMPORAL_ORDER_PRESET}


def raw(name: str) -> pd.DataFrame:
    """The results file as pandas reads it, without the loader."""
    return pd.read_parquet(ROOT / "core" / "measured" / name / "results.parquet")


@pytest.fixture(params=[n for n in PRESETS if n in shipped_sweeps()])
def name(request):
    return request.param


def test_the_pure_lag_sweep_is_shipped_first():
    assert shipped_sweeps()[0] == "pure-lag"


def test_a_shipped_sweep_loads_with_how_it_was_measured(name):
    sw = load_shipped(name)
    raw_meta = json.loads((ROOT / "core" / "measured" / name / "measured.json").read_text())
    assert sw.meta == raw_meta
    for key in ("command", "commit", "cpu", "date", "load"):
        assert raw_meta[key]
    label = sw.label()
    assert raw_meta["command"] in label and raw_meta["cpu"] in label
    assert raw_meta["date"] in label and raw_meta["commit"][:7] in label
    assert sw.data.status["state"] == "finished"
    assert len(sw.results) == sw.data.status["total"] == sw.data.status["done"]
    assert (sw.results["status"] == "finished").all()
    assert int(sw.results["solved"].sum()) == sw.data.status["solved"]


def test_its_trainings_are_the_presets_grid(name):
    sw = load_shipped(name)
    title, preset = find_preset(PRESETS[name])
    assert sw.meta["preset"] == title
    assert sw.spec.to_dict() == preset.to_dict()
    cells = {(c.coords["arch"], c.coords["seq_len"], c.coords["seed"]): c.config
             for c in preset.cells}
    stored = {(r.arch, r.seq_len, r.seed): json.loads(r.config) for r in sw.results.itertuples()}
    assert set(stored) == set(cells)          # every cell once, nothing else
    defaults = TrainConfig().to_dict()
    for key, config in stored.items():
        today = cells[key].to_dict()
        # the stored config is today's, except fields added since, at their defaults
        assert {k: today[k] for k in config} == config, key
        assert all(today[k] == defaults[k] for k in set(today) - set(config)), key


def test_every_number_of_its_tables_comes_from_the_file(name):
    sw = load_shipped(name)
    r = raw(name)
    table = sw.seed_table()
    summary = sw.summary()
    for variant, label in sw.labels().items():
        assert label == r[r["arch"] == variant]["label"].iloc[0]
        for T in sw.spec.seq_lens:
            d = r[(r["arch"] == variant) & (r["seq_len"] == T)].sort_values("seed")
            k, n = int(d["solved"].sum()), len(d)
            steps = [str(int(s)) if ok else "-" for s, ok in zip(d["steps_to_solve"], d["solved"])]
            assert table.loc[label, f"T={T}"] == f"{k}/{n}" + (f" {','.join(steps)}" if k else "")
            row = summary[(summary["arch"] == variant) & (summary["seq_len"] == T)].iloc[0]
            assert (row["successes"], row["n"]) == (k, n)
            # Wilson score interval, by its formula (z = 1.959964)
            z, p = 1.959963984540054, k / n
            centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
            assert row["low"] == pytest.approx(max(0.0, centre - half), abs=1e-9)
            assert row["high"] == pytest.approx(min(1.0, centre + half), abs=1e-9)
            solved_steps = d.loc[d["solved"], "steps_to_solve"].astype(float)
            if k:
                assert row["median_steps_to_solve"] == solved_steps.median()
            else:
                assert math.isnan(row["median_steps_to_solve"])
            assert row["median_gradient_reach"] == d["gradient_reach"].astype(float).median()


def test_the_pure_lag_table_is_the_issues_measurement():
    """The figures quoted in the brief and in BENCHMARKS.md, row by row."""
    table = load_shipped("pure-lag").seed_table()
    assert table.loc["lstm (chrono init)"].tolist() == [
        "3/3 100,100,100", "3/3 150,150,150", "3/3 400,250,200", "3/3 450,1600,350",
        "3/3 1100,400,700"]
    assert table.loc["lstm"].tolist() == ["3/3 100,250,250", "0/3", "0/3", "0/3", "0/3"]
    assert table.loc["lstm (forget bias 5)", "T=100"] == "1/3 -,-,500"


def test_benchmarks_md_shows_the_shipped_tables():
    text = (ROOT / "BENCHMARKS.md").read_text()
    section = text[text.index("## Pure lag and gate initialisation (issue 16)"):]
    for name in shipped_sweeps():
        sw = load_shipped(name)
        assert sw.meta["command"] in section, name
        for label, row in sw.seed_table().iterrows():
            line = "| " + " | ".join([label, *row.tolist()]) + " |"
            assert line in section, (name, line)


def test_a_cell_reruns_with_its_own_settings_and_probes():
    sw = load_shipped("pure-lag")
    config = sw.cell_config("lstm:gate_init=chrono", 100, 1)
    assert (config.task, config.seq_len, config.arch, config.gate_init, config.seed) == \
        ("recall", 100, "lstm", "chrono", 1)
    assert (config.hidden_size, config.batch_size, config.lr, config.steps) == (32, 64, 0.003, 2000)
    live = sw.live_config("lstm:gate_init=chrono", 100, 1)
    assert live == config.replace(probe_every=LIVE_PROBE_EVERY, stop_when_solved=False)
    with pytest.raises(KeyError):
        sw.cell("lstm", 300, 0)


def test_an_incomplete_shipped_sweep_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "pure-lag"
    shutil.copytree(ROOT / "core" / "measured" / "pure-lag", copy)
    meta = json.loads((copy / "measured.json").read_text())
    del meta["cpu"]
    (copy / "measured.json").write_text(json.dumps(meta))
    monkeypatch.setattr(measured, "MEASURED_DIR", tmp_path)
    assert shipped_sweeps() == ["pure-lag"]
    with pytest.raises(SweepError, match="cpu"):
        load_shipped("pure-lag")
    with pytest.raises(SweepError, match="no shipped sweep"):
        load_shipped("nothing")


def test_shipped_files_are_readable_by_everyone():
    for name in shipped_sweeps():
        for f in (ROOT / "core" / "measured" / name).iterdir():
            assert f.stat().st_mode & 0o444 == 0o444, f
            assert re.fullmatch(r"(spec|status|measured)\.json|results\.parquet", f.name), f

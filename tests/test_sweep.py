"""Sweeps: spec and grid, statistics, storage and resume, both backends, the CLI.

The grids are tiny (2 archs × 2 lengths × 1 seed, 20 steps, hidden 8) so the
suite stays cheap on a shared 2-core machine; most of the time is worker start-up.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import os
import sys
import threading
import time
from statistics import NormalDist

import pandas as pd
import pytest

from core.config import TrainConfig
from core.executors import BackendError, LocalBackend, make_executor, reset_malloc_thresholds
from core.sweeps import (
    COORD_COLUMNS, RESULT_COLUMNS, RESULTS_FILE, SWEEP_PRESETS, SweepError, SweepSpec,
    add_sweep_arguments, find_preset, list_sweeps, load_sweep, parse_archs, results_frame,
    run_cell, run_sweep, summarise_sweep, sweep_main, sweep_path, wilson_interval,
)

TINY_BASE = {"hidden_size": 8, "batch_size": 16, "eval_every": 10, "eval_size": 16}
COMPARE = ["cell_id", "task", "arch", "seq_len", "seed", "solved", "steps_to_solve",
           "steps_done", "eval_loss", "eval_metric", "vanishing_ratio", "gradient_reach",
           "status"]


def tiny_spec(**changes) -> SweepSpec:
    d = dict(tasks=("adding",), variants=parse_archs("rnn_tanh,lstm"), seq_lens=(5, 8),
             seeds=1, steps=20, base=TINY_BASE)
    d.update(changes)
    return SweepSpec(**d)


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df[COMPARE].sort_values("cell_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The tiny grid run once on the local (loky) backend with 2 workers."""
    root = tmp_path_factory.mktemp("runs")
    calls = []
    sweep_id, results = run_sweep(tiny_spec(), backend="local", workers=2, root=root,
                                  on_result=lambda row, done, total: calls.append(
                                      (row["cell_id"], done, total)))
    return root, sweep_id, results, calls


# ------------------------------------------------------------------ statistics


def wilson_closed_form(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval written out, independently of SciPy:
    (p + z²/2n ± z·√(p(1-p)/n + z²/4n²)) / (1 + z²/n), z the normal quantile."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n,low,high", [
    # Newcombe (1998), Statistics in Medicine 17:857, Table II, method 3 (Wilson score)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    # small sweeps: 0/5 failures still allow a rate of 43%
    (0, 5, 0.0, 0.4345), (5, 5, 0.5655, 1.0), (5, 10, 0.2366, 0.7634),
    (1, 3, 0.0615, 0.7923), (8, 10, 0.4902, 0.9433),
])
def test_wilson_interval_matches_published_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_interval_matches_the_closed_form(confidence):
    for n in (1, 2, 3, 5, 7, 10, 30, 100):
        for k in range(n + 1):
            lo, hi = wilson_interval(k, n, confidence)
            want_lo, want_hi = wilson_closed_form(k, n, confidence)
            assert lo == pytest.approx(want_lo, abs=1e-12), (k, n)
            assert hi == pytest.approx(want_hi, abs=1e-12), (k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
            assert type(lo) is float and type(hi) is float  # plain floats, not numpy's


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)  # no finished run: nothing known
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    for k, n in ((4, 3), (-1, 3), (1, 0)):
        with pytest.raises(ValueError):
            wilson_interval(k, n)


def test_summarise_sweep_rates_and_intervals():
    rows = []
    for seed in range(5):
        rows.append({"task": "adding", "arch": "lstm", "seq_len": 50, "seed": seed,
                     "solved": True, "steps_to_solve": 100 * (seed + 1), "gradient_reach": 50,
                     "status": "finished", "wall_s": 1.0, "eval_loss": 0.001})
        rows.append({"task": "adding", "arch": "rnn_tanh", "seq_len": 50, "seed": seed,
                     "solved": seed == 0, "steps_to_solve": 700 if seed == 0 else None,
                     "gradient_reach": 10, "status": "finished", "wall_s": 2.0,
                     "eval_loss": 0.1})
    rows.append({"task": "adding", "arch": "rnn_tanh", "seq_len": 50, "seed": 9,
                 "status": "error", "message": "boom"})
    s = summarise_sweep(results_frame(rows)).set_index("arch")
    assert list(s.columns[:6]) == ["task", "seq_len", "n", "successes", "rate", "low"]
    assert s.loc["lstm", "n"] == 5 and s.loc["lstm", "rate"] == 1.0
    assert s.loc["lstm", "low"] == pytest.approx(0.5655, abs=1e-4)
    assert s.loc["lstm", "median_steps_to_solve"] == 300
    assert s.loc["rnn_tanh", "n"] == 5 and s.loc["rnn_tanh", "errors"] == 1
    assert s.loc["rnn_tanh", "rate"] == pytest.approx(0.2)
    assert s.loc["rnn_tanh", "median_steps_to_solve"] == 700  # over solved runs only
    assert s.loc["rnn_tanh", "median_gradient_reach"] == 10
    assert summarise_sweep(results_frame([])).empty


# ------------------------------------------------------------------ the spec


def test_spec_cells_count_and_coordinates():
    spec = SweepSpec(tasks=("adding", "recall"), variants=parse_archs("rnn_tanh,lstm,gru"),
                     seq_lens=(5, 10), seeds=3, steps=30, base=TINY_BASE)
    cells = spec.cells
    assert len(cells) == 2 * 3 * 2 * 3
    coords = {tuple(c.coords[k] for k in COORD_COLUMNS) for c in cells}
    assert coords == {(t, a, T, s) for t in ("adding", "recall")
                      for a in ("rnn_tanh", "lstm", "gru") for T in (5, 10) for s in range(3)}
    assert len({c.cell_id for c in cells}) == len(cells)
    for c in cells:
        cfg = c.config
        assert isinstance(cfg, TrainConfig)
        assert (cfg.task, cfg.arch, cfg.seq_len, cfg.seed) == tuple(
            c.coords[k] for k in COORD_COLUMNS)
        assert cfg.stop_when_solved and cfg.threads == 1 and cfg.probe_every == 0
        assert cfg.steps == 30 and cfg.hidden_size == 8
    # seed-major order: every grid point gets seed 0 before any gets seed 1
    seeds = [c.coords["seed"] for c in cells]
    assert seeds == sorted(seeds)


def test_spec_id_is_stable_and_round_trips():
    spec = tiny_spec()
    again = tiny_spec()
    assert spec.sweep_id == again.sweep_id and spec == again and hash(spec) == hash(again)
    back = SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back.sweep_id == spec.sweep_id
    assert [c.cell_id for c in back.cells] == [c.cell_id for c in spec.cells]
    assert tiny_spec(steps=21).sweep_id != spec.sweep_id
    assert tiny_spec(seeds=(0, 1)).sweep_id != spec.sweep_id
    assert spec.sweep_id.startswith("adding-")


def test_variants_and_parameter_dimensions():
    v = parse_archs("rnn_tanh, lstm:forget_bias=1 ,gru")
    assert v[1] == {"name": "lstm:forget_bias=1", "arch": "lstm", "forget_bias": 1.0}
    spec = SweepSpec(variants=("lstm", "gru"), seq_lens=(5,), seeds=1, steps=10,
                     base=TINY_BASE, params={"forget_bias": (0, 1), "lr": (0.01, 0.003)})
    # forget_bias applies to lstm only: gru gets one cell per lr, lstm one per (fb, lr)
    assert len(spec.cells) == 2 * 2 + 1 * 2
    lstm = [c for c in spec.cells if c.coords["arch"] == "lstm"]
    assert {(c.config.forget_bias, c.config.lr) for c in lstm} == {
        (0.0, 0.01), (1.0, 0.01), (0.0, 0.003), (1.0, 0.003)}
    gru = [c for c in spec.cells if c.coords["arch"] == "gru"]
    assert all(c.coords["forget_bias"] is None and c.config.forget_bias is None for c in gru)


@pytest.mark.parametrize("kwargs,message", [
    ({"variants": ("lstm", "transformer")}, "arch"),
    ({"base": {"arch": "lstm"}}, "set by the sweep grid"),
    ({"base": {"hidden_size": 0}}, "hidden_size"),
    ({"seq_lens": (5, 5)}, "repeat"),
    ({"seeds": 0}, "at least one seed"),
    ({"variants": ("rnn_tanh:forget_bias=1",)}, "applies to lstm"),
    ({"params": {"nonsense": (1,)}}, "not a configuration field"),
])
def test_invalid_specs_are_refused_with_a_message(kwargs, message):
    with pytest.raises(SweepError, match=message):
        tiny_spec(**kwargs)


def test_presets_are_valid():
    name, demo = find_preset("demo")
    assert name.startswith("demo") and len(demo.cells) == 3 * 4 * 3
    assert demo.tasks == ("adding",) and demo.seq_lens == (10, 20, 50, 100)
    assert any("RNN vs LSTM vs GRU on adding" in k for k in SWEEP_PRESETS)
    for spec in SWEEP_PRESETS.values():
        assert spec.cells


# ------------------------------------------------------------------ one run


def test_run_cell_row_is_complete_and_deterministic():
    cell = tiny_spec().cells[0].payload()
    a, b = run_cell(cell), run_cell(cell)
    assert set(COORD_COLUMNS) | set(RESULT_COLUMNS) <= set(a)
    assert a["status"] == "finished" and a["steps_done"] == 20
    assert a["eval_loss"] is not None and a["gradient_reach"] is not None
    assert a["vanishing_ratio"] is not None and a["wall_s"] > 0
    assert {k: a[k] for k in COMPARE} == {k: b[k] for k in COMPARE}
    # a bare config dict works too
    bare = run_cell(tiny_spec().cells[0].config.to_dict())
    assert bare["eval_loss"] == a["eval_loss"]


def test_run_cell_reports_a_failed_run_as_a_row():
    cell = tiny_spec().cells[0].payload()
    cell["config"]["hidden_size"] = -1
    row = run_cell(cell)
    assert row["status"] == "error" and "hidden_size" in row["message"]
    assert row["arch"] == cell["coords"]["arch"]


def test_malloc_reset_only_when_inherited(monkeypatch):
    import core.executors as ex

    monkeypatch.setattr(ex, "_malloc_reset_done", False)
    for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"):
        monkeypatch.delenv(k, raising=False)
    assert reset_malloc_thresholds() is False
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    import platform

    assert reset_malloc_thresholds() is (platform.libc_ver()[0] == "glibc")


# ------------------------------------------------------------------ local backend


def test_local_backend_end_to_end(local_run):
    root, sweep_id, results, calls = local_run
    spec = tiny_spec()
    assert sweep_id == spec.sweep_id
    assert len(results) == 4 and len(calls) == 4
    assert [c[1] for c in calls] == [1, 2, 3, 4] and all(c[2] == 4 for c in calls)
    assert set(results["cell_id"]) == {c.cell_id for c in spec.cells}
    assert (results["status"] == "finished").all()
    required = ["task", "arch", "seq_len", "seed", "solved", "steps_done", "eval_loss",
                "eval_metric", "vanishing_ratio", "gradient_reach", "wall_s", "worker"]
    assert results[required].notna().all().all()
    assert (results["steps_done"] == 20).all()  # nothing solves adding in 20 steps
    assert results["steps_to_solve"].isna().all()
    assert sorted(zip(results["arch"], results["seq_len"])) == [
        ("lstm", 5), ("lstm", 8), ("rnn_tanh", 5), ("rnn_tanh", 8)]
    # saved: results file equals what was returned; status and listing agree
    path = sweep_path(root, sweep_id)
    stored = pd.read_parquet(path / RESULTS_FILE)
    pd.testing.assert_frame_equal(comparable(stored), comparable(results))
    data = load_sweep(root, sweep_id)
    assert data.spec == spec and data.status["state"] == "finished"
    assert data.status["done"] == 4
    listing = list_sweeps(root)
    assert listing.loc[0, "sweep_id"] == sweep_id and listing.loc[0, "done"] == 4
    summary = summarise_sweep(results)
    assert len(summary) == 4 and (summary["n"] == 1).all()
    assert {"arch", "seq_len", "rate", "low", "high"} <= set(summary.columns)


def test_finished_sweep_is_not_run_again(local_run):
    root, sweep_id, results, _ = local_run
    calls = []
    again_id, again = run_sweep(tiny_spec(), workers=2, root=root,
                                on_result=lambda *a: calls.append(a))
    assert again_id == sweep_id and calls == []
    pd.testing.assert_frame_equal(comparable(again), comparable(results))


def test_resume_runs_only_missing_and_failed_cells(local_run, tmp_path):
    _, _, full, _ = local_run
    spec = tiny_spec()
    ids = [c.cell_id for c in spec.cells]
    # Pre-seed: two cells finished, one failed, one never started.
    seeded = full[full["cell_id"].isin(ids[:3])].copy()
    seeded.loc[seeded["cell_id"] == ids[2], ["status", "eval_loss"]] = ["error", None]
    path = sweep_path(tmp_path, spec.sweep_id)
    path.mkdir(parents=True)
    seeded.to_parquet(path / RESULTS_FILE, index=False)
    calls = []
    _, results = run_sweep(spec, backend="local", workers=2, root=tmp_path,
                           on_result=lambda row, done, total: calls.append(
                               (row["cell_id"], done, total)))
    assert sorted(c[0] for c in calls) == sorted(ids[2:])
    assert sorted(c[1] for c in calls) == [3, 4] and all(c[2] == 4 for c in calls)
    pd.testing.assert_frame_equal(comparable(results), comparable(full))


def test_stop_then_resume_loses_no_work(local_run, tmp_path):
    """Stop after the first result, then resume: only the unfinished cells run, and
    the union equals an uninterrupted sweep. Any Executor works as a backend."""
    _, _, full, _ = local_run
    spec = tiny_spec()
    stop = threading.Event()
    first = []

    def on_result(row, done, total):
        first.append(row["cell_id"])
        stop.set()

    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        t0 = time.perf_counter()
        sweep_id, partial = run_sweep(spec, backend=pool, root=tmp_path, on_result=on_result,
                                      stop_event=stop)
        stopped_after = time.perf_counter() - t0
    assert 1 <= len(first) == len(partial) < 4
    assert load_sweep(tmp_path, sweep_id).status["state"] == "stopped"
    assert stopped_after < 60
    second = []
    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        _, results = run_sweep(spec, backend=pool, root=tmp_path,
                               on_result=lambda row, done, total: second.append(row["cell_id"]))
    assert sorted(second) == sorted(set(c.cell_id for c in spec.cells) - set(first))
    # threads in this process and loky worker processes give identical results
    pd.testing.assert_frame_equal(comparable(results), comparable(full))


def test_a_sweep_cannot_run_twice_at_once(tmp_path):
    from core.sweeps.store import SweepLock

    path = tmp_path / "s"
    path.mkdir()
    with SweepLock(path, "s"):
        with pytest.raises(SweepError, match="already running"):
            with SweepLock(path, "s"):
                pass
    with SweepLock(path, "s"):  # released
        pass


def test_backend_errors_are_clear():
    with pytest.raises(BackendError, match="unknown backend"):
        make_executor("ray")
    with pytest.raises(BackendError, match="dask backend only"):
        make_executor("local", scheduler="tcp://127.0.0.1:1")
    be = make_executor("local", workers=1)
    assert isinstance(be, LocalBackend) and be.workers == 1
    be.shutdown()


# ------------------------------------------------------------------ dask backend


def test_dask_local_cluster_gives_identical_results(local_run, tmp_path):
    pytest.importorskip("distributed")
    from core.executors import DaskBackend

    _, _, full, _ = local_run
    t0 = time.perf_counter()
    be = DaskBackend(workers=2)
    startup = time.perf_counter() - t0
    try:
        assert be.cluster is not None and be.workers == 2
        # the nanny's MALLOC_TRIM_THRESHOLD_ is removed for our LocalCluster
        env = be.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert len(env) == 2 and set(env.values()) == {None}
        calls = []
        _, results = run_sweep(tiny_spec(), backend=be, root=tmp_path,
                               on_result=lambda row, done, total: calls.append(done))
        assert sorted(calls) == [1, 2, 3, 4]
        pd.testing.assert_frame_equal(comparable(results), comparable(full))
        assert not be._closed  # a backend passed in is the caller's to close
    finally:
        be.close()
    print(f"dask LocalCluster(2) startup {startup:.2f}s")


def test_dask_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("distributed")
    from core.executors import DaskBackend

    with pytest.raises(BackendError, match="cannot reach the Dask scheduler"):
        DaskBackend(scheduler="tcp://127.0.0.1:9", connect_timeout="2s").close()


# ------------------------------------------------------------------ CLI


def _args(*argv: str) -> argparse.Namespace:
    return add_sweep_arguments(argparse.ArgumentParser()).parse_args(list(argv))


TINY_ARGS = ("--task", "adding", "--archs", "rnn_tanh,lstm", "--seq-lens", "5,8", "--seeds",
             "1", "--steps", "20", "--set", "hidden_size=8", "--set", "batch_size=16",
             "--set", "eval_every=10", "--set", "eval_size=16")


def test_cli_prints_one_json_line(local_run, tmp_path, capsys):
    _, sweep_id, full, _ = local_run
    code = sweep_main(_args(*TINY_ARGS, "--workers", "2", "--out", str(tmp_path)))
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["sweep_id"] == sweep_id
    assert result["runs"] == 4 and result["total"] == 4 and result["errors"] == 0
    assert result["solved"] == 0 and result["wall_s"] > 0
    assert {"task", "arch", "seq_len", "rate", "low", "high"} <= set(result["summary"][0])
    table = pd.read_parquet(result["results"])
    for col in ("task", "arch", "seq_len", "seed", "solved", "steps_to_solve", "eval_loss",
                "wall_s"):
        assert col in table.columns
    pd.testing.assert_frame_equal(comparable(table), comparable(full))
    assert "4/4" in err  # the progress bar went to stderr


def test_cli_dry_run_and_bad_arguments(capsys):
    assert sweep_main(_args(*TINY_ARGS, "--dry-run")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 4 and out["sweep_id"] == tiny_spec().sweep_id
    assert sweep_main(_args("--archs", "lstm,transformer", "--dry-run")) == 2
    assert "transformer" in capsys.readouterr().err
    assert sweep_main(_args("--preset", "demo", "--seeds", "2", "--dry-run")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 3 * 4 * 2
    assert sweep_main(_args("--list-presets")) == 0
    assert "demo" in capsys.readouterr().out


def test_results_frame_keeps_types_with_missing_values():
    df = results_frame([{"task": "adding", "arch": "lstm", "seq_len": 5, "seed": 0,
                         "solved": None, "steps_to_solve": None, "status": "error"}])
    assert df["steps_to_solve"].dtype == "Int64" and df["solved"].dtype == bool
    assert not df.loc[0, "solved"] and math.isnan(df.loc[0, "wall_s"])


def test_dask_local_cluster_starts_while_main_is_a_page_script(tmp_path, monkeypatch):
    """Streamlit installs the page being run as ``__main__``; spawned nanny workers
    would re-run it and crash. The cluster must start regardless, and ``__main__``
    be given back."""
    pytest.importorskip("distributed")
    import types
    from core.executors import DaskBackend

    page = tmp_path / "page.py"
    page.write_text("raise SystemExit('a page script was re-run in a dask worker')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    be = DaskBackend(workers=1)
    try:
        assert sys.modules["__main__"] is fake_main
        assert be.client.submit(sum, [1, 2], pure=False).result(timeout=60) == 3
    finally:
        be.close()

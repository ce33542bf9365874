"""Faults that lose nothing and bad input refused clearly (AppTest and subprocess level)."""

import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import pandas as pd
from streamlit.testing.v1 import AppTest

from pagetest import ROOT, page_path
from core.runs import RunStore

TINY = {"steps": "40", "seq_len": "10", "hidden_size": "8", "batch_size": "16",
        "probe_every": "5", "eval_every": "10", "eval_size": "32"}


def _train_until(at: AppTest, words: tuple[str, ...], timeout=90.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        text = " ".join(m.value for m in at.markdown)
        for w in words:
            if f"Status: {w}" in text:
                return w
        time.sleep(0.3)
    raise AssertionError("no final status: " + str([m.value for m in at.markdown]))


def test_a_diverging_run_is_marked_diverged_and_explained(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params["preset"] = "Exploding gradients (RNN, spectral radius 1.7, no clipping)"
    at.run()
    assert at.selectbox(key="train_arch").value == "rnn_relu"
    next(b for b in at.button if b.label == "Train").click().run()
    assert _train_until(at, ("diverged", "finished")) == "diverged"
    assert any("exploded" in e.value for e in at.error)
    assert len(at.get("vega_lite_chart")) >= 2  # charts up to the divergence


def test_an_unwritable_runs_dir_keeps_the_charts_in_memory(runs_dir):
    runs_dir.parent.mkdir(parents=True, exist_ok=True)
    runs_dir.write_text("a file where the runs directory should be")
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update(TINY)
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert _train_until(at, ("finished",)) == "finished"
    assert any("cannot create run directory" in w.value for w in at.warning)
    assert len(at.get("vega_lite_chart")) >= 5


def test_the_per_session_run_limit_gives_a_message(runs_dir, monkeypatch):
    monkeypatch.setenv("RNNLAB_MAX_RUNS_PER_SESSION", "1")
    at = AppTest.from_file(page_path("compare"), default_timeout=60)
    at.query_params.update(TINY)
    at.run()
    next(b for b in at.button if b.label == "Train together").click().run()
    assert any("limit on this server is 1" in e.value for e in at.error)
    assert not at.exception


def test_values_above_the_server_limits_fall_back_with_a_named_message(runs_dir, monkeypatch):
    monkeypatch.setenv("RNNLAB_MAX_HIDDEN", "32")
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update({"hidden_size": "200"})
    at.run()
    assert any("hidden_size" in w.value and "limited to 32" in w.value for w in at.warning)
    assert at.number_input(key="train_hidden_size").value == 32


def test_server_config_keeps_xsrf_on_and_uploads_small():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"]["maxUploadSize"] <= 50


def test_no_page_passes_text_to_unsafe_allow_html():
    for path in list((ROOT / "pages").glob("*.py")) + list((ROOT / "ui").glob("*.py")) + [ROOT / "app.py"]:
        assert "unsafe_allow_html" not in path.read_text(), path


def test_core_never_imports_streamlit():
    for path in (ROOT / "core").rglob("*.py"):
        text = path.read_text()
        assert "import streamlit" not in text and "from streamlit" not in text, path


def test_a_killed_training_process_leaves_an_interrupted_run_with_its_records(tmp_path):
    """SIGKILL mid-run: the store lists the run as interrupted, with every flushed record."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--steps", "100000", "--seq-len", "10",
         "--hidden", "8", "--batch", "16", "--probe-every", "10", "--eval-every", "50",
         "--eval-size", "32", "--out", str(tmp_path), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        metrics = None
        while time.time() < deadline:
            time.sleep(0.5)
            found = list(tmp_path.glob("*/metrics.parquet"))
            if found:
                try:
                    if len(pd.read_parquet(found[0])) > 20:
                        metrics = found[0]
                        break
                except (OSError, ValueError):  # half-written file: poll again
                    pass
        assert metrics is not None, "no flushed metrics"
        time.sleep(2.5)  # at least one more flush
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    store = RunStore(tmp_path)
    run_id = metrics.parent.name
    status = json.loads((metrics.parent / "status.json").read_text())
    assert status["status"] == "running"  # what the dead writer last said
    assert store.list().loc[0, "status"] == "interrupted"
    data = store.load(run_id)
    assert data.status["status"] == "interrupted"
    flushed = len(data.table("metrics"))
    assert flushed >= status["step"] - 1 > 20
    assert not data.table("probes").empty

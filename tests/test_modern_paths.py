"""Each later architecture (issue 17) trains from every door: the CLI, the Train page, the
Compare page and a sweep, and its probes reach the charts."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.archspec import MODERN, SPEC
from core.sweeps import SweepSpec, parse_archs, run_sweep
from pagetest import ROOT, page_path

TINY = {"steps": "24", "seq_len": "8", "hidden_size": "8", "batch_size": "16",
        "probe_every": "6", "eval_every": "12", "eval_size": "32", "task": "recall"}


def _wait(at: AppTest, done: str, timeout: float = 90.0) -> AppTest:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if any(done in m.value for m in at.markdown):
            return at
        time.sleep(0.3)
    raise AssertionError("training did not finish: " + str([m.value for m in at.markdown]))


@pytest.mark.parametrize("arch", MODERN)
def test_the_cli_trains_it_and_reports_its_probe(arch, tmp_path):
    p = subprocess.run([sys.executable, "-m", "core", "train", "--task", "recall", "--arch", arch,
                        "--seq-len", "8", "--hidden", "8", "--batch", "8", "--steps", "12",
                        "--probe-every", "4", "--eval-every", "6", "--eval-size", "32",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["status"] == "finished" and out["steps"] == 12
    assert 0 < out["gradient_reach"] <= 8


@pytest.mark.parametrize("arch", MODERN)
def test_the_train_page_trains_it_and_draws_its_heatmaps(arch, runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update({**TINY, "arch": arch})
    at.run()
    assert at.selectbox(key="train_arch").value == arch
    assert any(SPEC[arch].paper in c.value for c in at.caption)       # its paper, its gain
    next(b for b in at.button if b.label == "Train").click().run()
    _wait(at, "Status: finished")
    assert not at.exception
    assert len(at.get("vega_lite_chart")) >= 4        # loss, heatmaps A, B, C (and reach)
    if SPEC[arch].probe_note:
        assert any(SPEC[arch].probe_note in c.value for c in at.caption)


@pytest.mark.parametrize("models", [MODERN[:3], MODERN[3:]])
def test_the_compare_page_trains_them_together(models, runs_dir):
    at = AppTest.from_file(page_path("compare"), default_timeout=60)
    at.query_params.update({**TINY, "models": ",".join(models)})
    at.run()
    next(b for b in at.button if b.label == "Train together").click().run()
    _wait(at, "Status: finished**")
    assert not at.exception
    assert list(at.dataframe[0].value["model"]) == list(models)


def test_the_compare_page_offers_the_modern_answers(runs_dir):
    from core.presets import COMPARISONS, MODERN_ANSWERS
    at = AppTest.from_file(page_path("compare"), default_timeout=60).run()
    assert any(COMPARISONS[MODERN_ANSWERS].link() in m.value for m in at.markdown)


def test_a_sweep_trains_every_later_architecture(tmp_path):
    spec = SweepSpec(tasks=("recall",), variants=parse_archs(",".join(MODERN)), seq_lens=(6,),
                     seeds=1, steps=10, base={"hidden_size": 8, "batch_size": 8,
                                              "eval_every": 5, "eval_size": 16})
    _, results = run_sweep(spec, backend="local", workers=1, root=tmp_path)
    assert sorted(results["arch"]) == sorted(MODERN)
    assert (results["status"] == "finished").all(), results[["arch", "status", "message"]]

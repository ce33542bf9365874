"""Explain page (AppTest): math, live measurements, verdicts, and the learner's run."""

from __future__ import annotations

from pagetest import page_path
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.runs import RunStore
from core.train import Trainer


def _text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_explain_page_renders_math_charts_and_three_verdicts(runs_dir):
    at = AppTest.from_file(page_path("explain"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.latex) >= 3
    assert len(at.get("vega_lite_chart")) >= 1
    text = _text(at)
    for answer in ("Answer 1", "Answer 2", "Answer 3"):
        assert f"**{answer}:**" in text
    verdict_lines = [m.value for m in at.markdown if m.value.startswith("Verdict:")]
    assert len(verdict_lines) == 3
    assert "Confirmed" in verdict_lines[0] and "Refuted" in verdict_lines[1]
    assert "Half-true" in verdict_lines[2]
    # numbers on screen are the measured ones: an untrained LSTM's gradient vanishes
    metrics = {m.label: m.value for m in at.metric}
    assert "mean f" in metrics and metrics["mean f"].startswith("0.")
    assert "e-" in metrics["‖∂h_99/∂h_0‖₂"]                # vanished: 1e-xx
    # empty store: the page says how to get a run
    assert any("No run with gradient probes" in i.value for i in at.info)


def test_explain_page_shows_the_latest_run(runs_dir):
    store = RunStore(runs_dir)
    cfg = TrainConfig(task="recall", seq_len=20, arch="lstm", hidden_size=8, batch_size=8,
                      steps=6, probe_every=2, eval_every=3, eval_size=16, seed=0)
    writer = store.create(cfg)
    trainer = Trainer(cfg)
    for record in trainer.run():
        writer.add(record)
    writer.save_model(trainer.model)

    at = AppTest.from_file(page_path("explain"), default_timeout=60)
    at.session_state["explain_T"] = 25        # smaller measurements: this test is about the run
    at.session_state["explain_H"] = 16
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="explain_run").value == writer.dir.name
    text = _text(at)
    assert "first probe at training step 0" in text and "latest at step 4" in text
    metrics = {m.label: m.value for m in at.metric}
    assert "gradient reach (of 20)" in metrics and "mean f, all units" in metrics
    assert "→" in metrics["mean f, all units"]
    # the per-unit table of the saved weights against step 0
    tables = [d.value for d in at.dataframe]
    assert any(list(t.columns) == ["measured", "step 0", "trained"] for t in tables)
    assert not at.info or not any("No run with gradient probes" in i.value for i in at.info)

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
    story = next(t.value for t in at.table if list(t.value.columns)[0].startswith("first probe"))
    assert list(story.columns) == ["first probe (step 0)", "latest probe (step 4)"]
    assert story.loc["gradient reach"].str.endswith("/ 20").all()
    assert {"mean f, all units", "h: ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖",
            "cell: ‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖"} <= set(story.index)
    # the per-unit table of the saved weights against step 0 (a static table: never clipped)
    tables = [t.value for t in at.table]
    assert any(list(t.columns) == ["step 0", "trained"] and t.index.name == "measured"
               for t in tables)
    assert not at.info or not any("No run with gradient probes" in i.value for i in at.info)


def test_explain_opens_with_the_answer_read_from_its_own_measurements(runs_dir):
    from core import explain, narrate

    at = AppTest.from_file(page_path("explain"), default_timeout=60)
    at.session_state["explain_T"] = 25
    at.session_state["explain_H"] = 16
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [m.value for m in at.markdown]
    # the question it tests, named and linked, before anything else
    assert narrate.QUESTION in texts[0] and "stats.stackexchange.com" in texts[0]
    answer = texts[1]
    forget, _ = explain.forget_gate_gain(25, 16, explain.SEED)
    expected = narrate.explain_answer(explain.rnn_facts(25, 16, explain.SEED),
                                      explain.lstm_facts(25, 16, explain.SEED),
                                      explain.gru_facts(25, 16, explain.SEED), forget)
    assert answer == expected
    assert "(#rnn)" in answer and "(#lstm)" in answer and "(#gru)" in answer
    # the anchors exist: the sections carry them
    assert {h.proto.anchor for h in at.header} >= {"rnn", "lstm", "gru", "answers"}
    # the forget-gate and saturation tables are static tables: never clipped
    assert len(at.table) >= 2 and not at.dataframe

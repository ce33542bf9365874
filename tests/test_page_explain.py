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


def test_explain_shows_the_pure_lag_section_with_its_measurements(runs_dir):
    """Section 5, at T = 25, H = 16: every number on screen is the measurement's (the same
    functions called here), the shipped sweep is labelled with its command, and the Compare
    link opens the pure-lag models."""
    from core import explain, narrate
    from core.explain import purelag
    from core.measured import load_shipped

    at = AppTest.from_file(page_path("explain"), default_timeout=90)
    at.session_state["explain_T"] = 25
    at.session_state["explain_H"] = 16
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "pure-lag" in {h.proto.anchor for h in at.header}
    seed = explain.SEED
    bg = explain.bias_gradient(25, 16, seed)
    chrono = explain.bias_gradient(25, 16, seed, "chrono")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖"] == narrate.sci(bg["cell_ratio"])
    assert metrics[f"∂L/∂b_f from the last {purelag.SHORT_LAG} steps"] == f"{bg['short_share']:.1%}"
    assert metrics["… from lags ≥ 12"] == narrate.sci(bg["long_share"])
    assert metrics["… from lags ≥ 12, chrono"] == narrate.sci(chrono["long_share"])
    texts = [m.value for m in at.markdown]
    assert narrate.pure_lag_gradient_sentence(bg, chrono, purelag.SHORT_LAG) in texts
    runs = explain.first_steps(25, 16, seed)
    update = explain.first_update(bg, runs)
    assert narrate.first_steps_sentence(update, runs["runs"], runs["metrics"],
                                        runs["metric_names"], runs["lr"], runs["steps"],
                                        25) in texts
    _, markers = explain.marker_gradients(25, 16, seed)
    assert narrate.marker_sentence(markers, runs["runs"], runs["steps"]) in texts
    table, curves = explain.cell_drift(25, 16, seed)
    sweep = load_shipped("pure-lag")
    assert narrate.input_gate_sentence(table, 25, sweep.summary()) in texts
    assert narrate.no_forget_gate_sentence(table, curves, purelag.NFG_REMEDY,
                                           sweep.summary()) in texts
    assert narrate.pure_lag_law_sentence(sweep.summary(), sweep.labels(), sweep.order) in texts
    # the tables: the first steps (step 0 → end) and the cell of each variant
    first = next(t.value for t in at.table if t.value.index.name == "run")
    assert list(first.index) == list(explain.FIRST_RUNS)
    row = runs["runs"][(runs["runs"]["run"] == "recall, chrono init")]
    assert first.loc["recall, chrono init", "gradient reach"] == \
        f"{row['reach'].iloc[0]} → {row['reach'].iloc[-1]} / 25"
    cells = next(t.value for t in at.table if t.value.index.name == "variant")
    assert list(cells.index) == list(explain.DRIFT_VARIANTS)
    assert cells.loc["forget bias 5 alone (f only)", "cell RMS at T−1"] == \
        narrate.sci(table.set_index("spec").loc["lstm:forget_bias=5", "rms_end"])
    # the shipped law: labelled as measured by its command, not on this page
    label = next(i.value for i in at.info if i.value.startswith("Not measured on this page"))
    assert sweep.meta["command"] in label and sweep.meta["commit"][:7] in label
    # a link that opens the three LSTMs on Compare
    link = next(t for t in texts if "side by side on Compare" in t)
    assert "compare?preset=Pure%20lag" in link and "lstm%20%28chrono%20init%29" in link
    assert len(at.get("vega_lite_chart")) >= 7     # 2 in sections 1-2, 5 here

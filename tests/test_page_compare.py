"""AppTest of the Compare page."""

import time

from streamlit.testing.v1 import AppTest

from pagetest import page_path

TINY = {"steps": "30", "seq_len": "8", "hidden_size": "8", "batch_size": "16",
        "probe_every": "5", "eval_every": "10", "eval_size": "32"}


def test_compare_page_renders_with_defaults(runs_dir):
    at = AppTest.from_file(page_path("compare"), default_timeout=60).run()
    assert not at.exception
    assert at.multiselect(key="compare_models").value == ["rnn_tanh", "lstm", "gru"]


def test_two_models_train_together_and_fill_the_table(runs_dir):
    at = AppTest.from_file(page_path("compare"), default_timeout=60)
    at.query_params.update({**TINY, "models": "rnn_tanh,lstm (no forget gate)"})
    at.run()
    assert at.multiselect(key="compare_models").value == ["rnn_tanh", "lstm (no forget gate)"]
    next(b for b in at.button if b.label == "Train together").click().run()
    deadline = time.time() + 90
    while time.time() < deadline:
        at.run()
        if any("Status: finished" in m.value for m in at.markdown):
            break
        time.sleep(0.3)
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == ["rnn_tanh", "lstm (no forget gate)"]
    assert (table["step"] == 30).all()
    assert table["gradient reach"].notna().all()
    assert len(at.get("vega_lite_chart")) >= 4


def test_fewer_than_two_models_disables_training(runs_dir):
    at = AppTest.from_file(page_path("compare"), default_timeout=60)
    at.query_params.update({"models": "lstm"})
    at.run()
    assert next(b for b in at.button if b.label == "Train together").disabled

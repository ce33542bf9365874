"""AppTest of the Compare page."""

import json
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
        # "Status: finished**" exactly: "Status: finished, running" is one run still going
        if any("Status: finished**" in m.value for m in at.markdown):
            break
        time.sleep(0.3)
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == ["rnn_tanh", "lstm (no forget gate)"]
    assert (table["step"] == 30).all()
    # numbers for people, no None/NaN placeholders; one held-out column (adding: MSE = loss)
    assert not table.isna().any().any()
    assert not any(str(v) in ("None", "nan") for v in table.to_numpy().ravel())
    assert all(r != "—" for r in table["reach"]) and table["reach"].str.endswith("/ 8").all()
    held = [c for c in table.columns if c.startswith("held-out")]
    assert held == ["held-out mse"], table.columns
    assert any("Baseline loss 0.167" in c.value and "is the held-out loss" in c.value
               for c in at.caption)
    assert set(table["solved"]) <= {"no"} | {f"at step {s}" for s in range(31)}
    # a sentence reads the comparison, from the same numbers
    sentence = next(m.value for m in at.markdown if m.value.startswith("After 30 of 30"))
    assert "rnn_tanh" in sentence and "lstm (no forget gate)" in sentence
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 4
    # panels in the order picked, each with its own rows (no blank blocks)
    specs = [json.loads(c.proto.spec) for c in charts]
    panelled = [sp for sp in specs if "hconcat" in sp and "title" in sp["hconcat"][0]]
    assert panelled and all([p["title"]["text"] for p in sp["hconcat"]] ==
                            ["rnn_tanh", "lstm (no forget gate)"] for sp in panelled[:2])


def test_a_link_with_five_models_warns_and_keeps_the_first_four(runs_dir):
    at = AppTest.from_file(page_path("compare"), default_timeout=60)
    at.query_params["models"] = "rnn_tanh,lstm,gru,lstm (CIFG),lstm (forget bias 1)"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="compare_models").value == ["rnn_tanh", "lstm", "gru", "lstm (CIFG)"]
    assert any("at most 4" in w.value and "first 4" in w.value for w in at.warning)
    at.run()                                   # still said on the next rerun
    assert any("at most 4" in w.value for w in at.warning)
    at.query_params["models"] = "gru,nope"
    fresh = AppTest.from_file(page_path("compare"), default_timeout=60)
    fresh.query_params["models"] = "gru,nope,lstm"
    fresh.run()
    assert fresh.multiselect(key="compare_models").value == ["gru", "lstm"]   # order kept
    assert any("'nope'" in w.value for w in fresh.warning)


def test_fewer_than_two_models_disables_training(runs_dir):
    at = AppTest.from_file(page_path("compare"), default_timeout=60)
    at.query_params.update({"models": "lstm"})
    at.run()
    assert next(b for b in at.button if b.label == "Train together").disabled

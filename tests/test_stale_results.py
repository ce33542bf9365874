"""Issue 15 §4 on the Compare page: results say which settings produced them, and are
marked "from earlier settings" once the settings change (ui.state.results_label, drawn
under the start/Stop buttons of every training page)."""

import time

from streamlit.testing.v1 import AppTest

from pagetest import page_path

TINY = {"steps": "30", "seq_len": "8", "hidden_size": "8", "batch_size": "16",
        "probe_every": "5", "eval_every": "10", "eval_size": "32", "models": "rnn_tanh,gru"}


def test_compare_results_are_labelled_and_marked_when_the_settings_change(runs_dir):
    at = AppTest.from_file(page_path("compare"), default_timeout=60)
    at.query_params.update(TINY)
    at.run()
    next(b for b in at.button if b.label == "Train together").click().run()
    deadline = time.time() + 90
    while time.time() < deadline:
        at.run()
        if any("Status: finished" in m.value for m in at.markdown):
            break
        time.sleep(0.3)
    label = " ".join(c.value for c in at.caption)
    assert "Showing runs " in label and "(rnn_tanh)" in label and "(gru)" in label
    assert "adding, T = 8" in label
    assert not any("From earlier settings" in w.value for w in at.warning)

    at.number_input(key="compare_seq_len").set_value(9).run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "From earlier settings" in warning and "seq_len: 8 → 9" in warning

    at.number_input(key="compare_seq_len").set_value(8).run()
    assert not any("From earlier settings" in w.value for w in at.warning)
    at.multiselect(key="compare_models").select("lstm").run()
    warning = " ".join(w.value for w in at.warning)
    assert "models: rnn_tanh, gru → rnn_tanh, gru, lstm" in warning

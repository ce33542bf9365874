"""AppTest of the Sweep page: defaults render; a tiny sweep runs and its charts appear."""

import time

from streamlit.testing.v1 import AppTest

from pagetest import page_path


def test_sweep_page_renders_with_the_default_preset(runs_dir):
    at = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    assert not at.exception
    assert any("Grid:" in m.value for m in at.markdown)
    assert any("No sweeps saved yet" in i.value for i in at.info)


def test_a_tiny_sweep_runs_and_reopens_from_the_store(runs_dir):
    at = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    at.multiselect(key="sweep_variants").set_value(["rnn_tanh", "gru"])
    at.multiselect(key="sweep_lens").set_value([5])
    at.number_input(key="sweep_seeds").set_value(1)
    at.number_input(key="sweep_steps").set_value(50)
    at.number_input(key="sweep_workers").set_value(1)
    at.run()
    assert any("2 runs" in m.value for m in at.markdown)
    next(b for b in at.button if b.label == "Run sweep").click().run()
    deadline = time.time() + 120
    while time.time() < deadline:
        at.run()
        if any("Sweep status: finished" in m.value for m in at.markdown):
            break
        time.sleep(0.5)
    assert not at.exception
    assert any("2 / 2 runs" in m.value for m in at.markdown)
    assert len(at.get("vega_lite_chart")) >= 3
    fresh = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    opener = next(s for s in fresh.selectbox if s.label == "Open sweep")
    opener.select(opener.options[0]).run()
    assert len(fresh.get("vega_lite_chart")) >= 3


def test_a_grid_too_large_for_the_server_is_refused(runs_dir, monkeypatch):
    monkeypatch.setenv("RNNLAB_MAX_SWEEP_RUNS", "3")
    at = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    assert any("more than this server allows (3)" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Run sweep").disabled

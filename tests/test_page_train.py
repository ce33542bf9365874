"""AppTest of the Train page: defaults render, a tiny training runs through the page's code."""

import time

from streamlit.testing.v1 import AppTest

from pagetest import ROOT, page_path

TINY = {"steps": "40", "seq_len": "10", "hidden_size": "8", "batch_size": "16",
        "probe_every": "5", "eval_every": "10", "eval_size": "32"}


def _wait_finished(at: AppTest, timeout=60.0) -> AppTest:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if any("Status: finished" in m.value for m in at.markdown):
            return at
        time.sleep(0.3)
    raise AssertionError("training did not finish: " + str([m.value for m in at.markdown]))


def test_train_page_renders_with_defaults(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Train", "Stop"]
    assert any("No run yet" in i.value for i in at.info)


def test_app_entrypoint_shows_the_landing_with_its_question(runs_dir):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("How do LSTM and GRU keep the gradient alive" in m.value for m in at.markdown)


def test_a_tiny_training_shows_its_charts_and_is_saved(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update(TINY)
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    _wait_finished(at)
    assert not at.exception
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 5  # loss, heatmap A (h and c), B, C, reach
    text = " ".join(m.value for m in at.markdown)
    assert "Gradient reach:" in text
    assert (runs_dir / run_id / "metrics.parquet").is_file()


def test_bad_url_values_show_a_warning_naming_the_fields(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update({"seq_len": "99999", "hidden_size": "abc"})
    at.run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "seq_len" in warning and "hidden_size" in warning and "from 2 to 1000" in warning
    assert at.number_input(key="train_seq_len").value == 100


def test_a_preset_fills_the_form(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60).run()
    at.selectbox(key="train_preset").select("Exploding gradients (RNN, spectral radius 1.7, no clipping)").run()
    assert at.selectbox(key="train_arch").value == "rnn_relu"
    assert at.number_input(key="train_spectral_radius").value == 1.7
    assert at.query_params["arch"] in ("rnn_relu", ["rnn_relu"])


def test_reload_with_the_run_in_the_url_shows_the_saved_run(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update(TINY)
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    _wait_finished(at)
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    fresh = AppTest.from_file(page_path("train"), default_timeout=60)
    fresh.query_params.update({**TINY, "run": run_id})
    fresh.run()
    assert not fresh.exception
    assert any("Status: finished" in m.value for m in fresh.markdown)
    assert len(fresh.get("vega_lite_chart")) >= 5


def test_the_page_shows_one_example_sequence_of_the_task(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update({"task": "recall", "seq_len": "12"})
    at.run()
    assert not at.exception
    example = at.get("expander")[0]
    assert "example sequence" in example.label
    assert len(example.get("vega_lite_chart")) == 1
    from core.tasks import example as task_example, make_task
    _, target = task_example(make_task("recall", 12), 0)
    assert any(f"the target for this sequence is {target}." in c.value for c in at.caption)


def test_heatmap_b_follows_the_latest_probe_until_the_user_scrubs_back(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update(dict(TINY, steps="60", probe_every="10"))
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    _wait_finished(at)
    follow = at.toggle(key="train_probe_step_follow")
    assert follow.value is True
    assert not [s for s in at.select_slider if s.key == "train_probe_step"]
    assert any("At training step 50" in m.value for m in at.markdown)
    follow.set_value(False).run()
    slider = at.select_slider(key="train_probe_step")
    assert slider.value == 50 and slider.options[0] == "0"
    slider.set_value(10).run()
    assert not at.exception and at.select_slider(key="train_probe_step").value == 10


def test_click_trace_notes_the_log_toggle_only_when_switched_on(runs_dir, tmp_path, monkeypatch):
    """ui/trace.py (the load test's server-side click timing): off by default; with
    RNNLAB_TRACE_CLICKS set and the trace installed from outside (app.py does it then),
    a change of "Log-scale loss" appends one JSON line."""
    import json

    from ui import trace

    trace_file = tmp_path / "clicks.jsonl"
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update(TINY)
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    _wait_finished(at)
    at.toggle(key="train_log").set_value(True).run()
    assert not trace_file.exists()  # off: nothing written

    monkeypatch.setenv("RNNLAB_TRACE_CLICKS", str(trace_file))
    trace.install()  # what app.py does when the variable is set
    try:
        at.run()  # first traced run: remembers the value, notes nothing
        at.toggle(key="train_log").set_value(False).run()
    finally:
        trace.uninstall()
    assert not at.exception
    lines = [json.loads(x) for x in trace_file.read_text().splitlines()]
    # besides: "run", each script run's times; "threads", the census of the server's threads
    clicks = [x for x in lines if x["what"] not in ("run", "threads")]
    assert [x["what"] for x in clicks] == ["log toggle"]
    assert clicks[0]["answered"] > clicks[0]["started"] > 0
    assert {x["kind"] for x in lines if x["what"] == "run"} <= {"full", "fragment"}


def test_an_unknown_preset_in_the_link_is_named_with_the_presets(runs_dir):
    from core.presets import PRESETS

    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update({"preset": "nope"})
    at.run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "'nope' is not a preset" in warning and all(name in warning for name in PRESETS)
    assert at.selectbox(key="train_preset").value == "Custom"


def test_a_preset_in_the_link_is_named_in_the_dropdown_until_a_setting_changes(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update({"preset": "GRU remembers"})
    at.run()
    assert not at.exception
    assert not any("preset" in w.value or "not valid" in w.value for w in at.warning)
    assert at.selectbox(key="train_preset").value == "GRU remembers"
    assert at.selectbox(key="train_arch").value == "gru"
    at.number_input(key="train_seq_len").set_value(60).run()
    assert at.selectbox(key="train_preset").value == "Custom"       # no longer the preset
    assert "preset" not in at.query_params


def test_results_say_which_settings_made_them_and_are_marked_when_the_settings_change(runs_dir):
    """Issue 15 §4: stop an LSTM run, pick "Vanilla RNN forgets": the page must not show the
    LSTM's charts as if they belonged to the sidebar's settings."""
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update(TINY)
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    _wait_finished(at)
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    label = " ".join(c.value for c in at.caption)
    assert f"Showing run {run_id}: lstm · adding, T = 10" in label
    assert not any("From earlier settings" in w.value for w in at.warning)
    at.selectbox(key="train_preset").select("Vanilla RNN forgets (adding, T=50)").run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "From earlier settings" in warning and "arch: lstm → rnn_tanh" in warning
    assert f"Showing run {run_id}: lstm" in " ".join(c.value for c in at.caption)


def test_a_link_to_one_run_opens_the_form_at_its_settings(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update(dict(TINY, arch="gru"))
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    _wait_finished(at)
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    fresh = AppTest.from_file(page_path("train"), default_timeout=60)
    fresh.query_params.update({"run": run_id})
    fresh.run()
    assert not fresh.exception
    assert fresh.selectbox(key="train_arch").value == "gru"
    assert fresh.number_input(key="train_seq_len").value == 10
    assert not any("From earlier settings" in w.value for w in fresh.warning)


def test_solved_says_not_in_n_steps_once_a_run_ended_unsolved(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update(TINY)
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    _wait_finished(at)
    solved = next(m for m in at.metric if m.label == "Solved")
    assert (solved.value, solved.delta) == ("no", "not solved in 40 steps") or \
        solved.value.startswith("at step"), (solved.value, solved.delta)

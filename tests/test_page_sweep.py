"""AppTest of the Sweep page: the shipped measured sweeps and their re-run button;
defaults render; a tiny sweep runs and its charts appear."""

import time

from streamlit.testing.v1 import AppTest

from core.measured import load_shipped
from pagetest import ROOT, page_path


def _charts(at) -> int:
    return len(at.get("vega_lite_chart"))


def test_sweep_page_renders_with_the_default_preset(runs_dir):
    at = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    assert not at.exception
    assert any("Grid:" in m.value for m in at.markdown)
    assert any("No sweeps saved yet" in i.value for i in at.info)


def test_a_tiny_sweep_runs_and_reopens_from_the_store(runs_dir):
    at = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    shipped_charts = _charts(at)
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
    assert _charts(at) >= shipped_charts + 3
    fresh = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    opener = next(s for s in fresh.selectbox if s.label == "Open sweep")
    opener.select(opener.options[0]).run()
    assert _charts(fresh) >= shipped_charts + 3


def test_a_grid_too_large_for_the_server_is_refused(runs_dir, monkeypatch):
    monkeypatch.setenv("RNNLAB_MAX_SWEEP_RUNS", "3")
    at = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    assert any("more than this server allows (3)" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Run sweep").disabled


def test_the_shipped_pure_lag_sweep_is_shown_with_how_it_was_measured(runs_dir):
    at = AppTest.from_file(page_path("sweep"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    sw = load_shipped("pure-lag")
    assert at.radio(key="shipped_name").value == "pure-lag"
    label = next(i.value for i in at.info if i.value.startswith("Measured by"))
    for part in (sw.meta["command"], sw.meta["cpu"], sw.meta["date"], sw.meta["commit"][:7],
                 f"{len(sw.results)} real trainings"):
        assert part in label
    assert {h.proto.anchor for h in at.header} >= {"measured", "run"}
    assert _charts(at) >= 2                                    # success and reach panels
    # the per-seed table is the file's, and so is the summary (in the spec's order)
    seeds = next(t.value for t in at.table if "T=100" in t.value.columns)
    assert seeds.loc["lstm (chrono init)", "T=100"] == "3/3 450,1600,350"
    assert seeds.equals(sw.seed_table())
    summary = at.dataframe[0].value
    assert summary["model"].iloc[0] == "rnn_tanh" and len(summary) == 40
    row = summary[(summary["model"] == "lstm (chrono init)") & (summary["T"] == 200)].iloc[0]
    assert row["solved"] == "3 / 3" and row["success (95% CI)"] == "100% (44%–100%)"
    assert row["steps to solve"] == "700" and row["reach"] == "200"
    # the temporal-order sweep, one click away, with its own command
    at.radio(key="shipped_name").set_value("temporal-order").run()
    order = load_shipped("temporal-order")
    label = next(i.value for i in at.info if i.value.startswith("Measured by"))
    assert order.meta["command"] in label and "72 real trainings" in label
    seeds = next(t.value for t in at.table if "T=100" in t.value.columns)
    assert seeds.equals(order.seed_table())


def test_a_shipped_training_reports_its_result_and_reruns_live_on_train(runs_dir):
    """Through app.py (the button switches pages in its navigation): pick a cell, read its
    stored result, press the button, land on Train with that cell's settings."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.switch_page("pages/sweep.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="rerun_pure-lag_model").select("lstm:gate_init=chrono").run()
    at.selectbox(key="rerun_pure-lag_T").select(100).run()
    at.selectbox(key="rerun_pure-lag_seed").select(1).run()
    text = "\n".join(m.value for m in at.markdown)
    assert ("**lstm (chrono init)**, T = 100, seed 1: solved at step 1600 (the first evaluation "
            "with held-out accuracy ≥ 0.99)") in text
    at.selectbox(key="rerun_pure-lag_model").select("lstm").run()
    text = "\n".join(m.value for m in at.markdown)
    row = load_shipped("pure-lag").cell("lstm", 100, 1)
    assert (f"**lstm**, T = 100, seed 1: not solved in 2000 steps: held-out accuracy "
            f"{row['eval_metric']:.3g} (chance: 0.125)") in text
    at.selectbox(key="rerun_pure-lag_model").select("lstm:gate_init=chrono").run()
    next(b for b in at.button if b.label == "Re-run this training live").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Train a recurrent network" in t.value for t in at.title)
    params = {k: at.query_params[k] for k in at.query_params}
    flat = {k: v[0] if isinstance(v, list) else v for k, v in params.items()}
    assert {"task": "recall", "hidden_size": "32", "gate_init": "chrono",
            "seed": "1", "steps": "2000"}.items() <= flat.items()
    assert at.selectbox(key="train_task").value == "recall"
    assert at.number_input(key="train_seq_len").value == 100

"""The browser-less load driver (loadtest/) against the real server, at small N.

N = $RNNLAB_WSLOAD_SESSIONS (default 3) simulated sessions open /train with a tiny
configuration (harness.TINY, 60 steps) and press Train; each clicks its "Log-scale loss"
toggle twice while it trains. The scenario runs once (module fixture); the tests
check behaviour, not timings (the timings are BENCHMARKS.md's, "Load without
browsers"):

* every session opens, presses, gets live charts (≥ 4 new: loss + heatmaps) and
  reads "Status: finished"; its runs are saved as finished;
* no session sees an error box, a message its front end would refuse, or a disconnect;
  every click is answered (the redrawn loss chart with or without its log axis);
* after every session closed: the server's child processes, threads (by kind, from the
  trace's census) and RSS are back, as in test_e2e_06_load.py;
* the widget states the driver sends are what the server reads: a number input, a
  selectbox and a checkbox set through the protocol end up in the run's config.json;
* /compare: two sessions pick two models in the "Models" multiselect and press "Train
  together"; the two models' runs train and both pages show them finished.

No browser here: a server only (marked ``slow``: it trains).
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs, urlencode

import pytest
from harness import TINY, AppServer
from load import after_close, read_trace, settle, thread_pool_peaks, thread_problems

from loadtest import run_sync
from loadtest.__main__ import format_table, warm_up
from loadtest.client import Session
from loadtest.scenario import Scenario, run
from ui.config_form import arch_label

N = int(os.environ.get("RNNLAB_WSLOAD_SESSIONS", "3"))
GRACE_S = 3.0
SPARES = 1
RSS_SLACK_MB = 150.0
TRAIN_PATH = "/train?" + urlencode(dict(TINY, steps=60))
STATUS = r"Status: finished"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600 + 60 * N)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("rnnlab-wsload")
    srv = AppServer(base / "runs", base / "logs", max_trainings=2,
                    env={"RNNLAB_RELEASE_GRACE_S": GRACE_S,
                         "RNNLAB_TRACE_CLICKS": str(base / "trace.jsonl")})
    try:
        srv.start(timeout=120)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    srv.trace = base / "trace.jsonl"
    yield srv
    code = srv.stop()
    print(f"\n[wsload] server exit code {code}; stderr tail:\n{srv.stderr_tail(20)}")


@pytest.fixture(scope="module")
def load(server):
    run_sync(warm_up(server.url, TRAIN_PATH + "&steps=20&seed=99", "Train", STATUS, 240))
    baseline = settle(server, spares=SPARES)
    before = server.run_ids()
    sc = Scenario(path=TRAIN_PATH, sessions=N, press="Train", until=STATUS, finish_timeout=300,
                  click="Log-scale loss", click_chart=r"train \(smoothed\)",
                  click_answer=r"loss \(log\)", click_rounds=2, click_every_s=1.0)
    figures, sessions = run_sync(run(server.url, sc))
    figures["baseline"] = baseline
    figures["after_close"] = after_close(server, GRACE_S, spares=SPARES)
    figures["thread_pool_peak"] = thread_pool_peaks(read_trace(server.trace))
    figures["runs"] = {r: server.run_status(r).get("status") for r in server.run_ids() - before}
    figures["table"] = format_table(dict(figures, load_before=[round(x, 2) for x in os.getloadavg()]), sc)
    print(f"\n[wsload] {N} sessions:\n{figures['table']}")
    return figures, sessions


def _why(load, msg: str) -> str:
    return f"{msg}\n{load[0]['table']}"


def test_every_session_trains_with_live_charts(load):
    figures, sessions = load
    assert figures["failures"] == {}, _why(load, f"sessions failed: {figures['failures']}")
    for s in sessions:
        assert s.ready_at and s.press_at and s.first_chart_at, _why(load, s.describe())
        assert s.new_charts_max >= 4, _why(load, f"session {s.index}: {s.new_charts_max} new charts")
        assert s.until_at is not None, _why(load, f"session {s.index} never read {STATUS!r}")
        assert any(t.startswith("Status: finished") for t in s.texts()), _why(load, s.describe())
        assert "Step 60 / 60" in s.texts(), _why(load, s.describe())
    assert figures["runs"] and set(figures["runs"].values()) == {"finished"}, _why(
        load, f"runs saved: {figures['runs']}")


def test_no_errors_refused_messages_or_disconnects(load):
    figures, sessions = load
    for s in sessions:
        assert not s.errors, _why(load, f"session {s.index}: error boxes {s.errors}")
        assert not s.client_errors, _why(load, f"session {s.index}: {s.client_errors}")
        assert not s.disconnects, _why(load, f"session {s.index}: {s.disconnects}")
        assert s.sent["auto_rerun"] > 0, _why(load, f"session {s.index} ran no fragment timer")


def test_every_click_is_answered(load):
    figures, sessions = load
    for s in sessions:
        assert len(s.clicks) == 2 and None not in s.clicks, _why(
            load, f"session {s.index}: clicks {s.clicks}")


def test_server_resources_return_after_sessions_close(load):
    figures, _ = load
    b, a = figures["baseline"], figures["after_close"]
    assert len(a["children"]) == len(b["children"]) == SPARES, _why(
        load, f"child processes before {b['children']}, after close {a['children']}")
    assert b["thread_kinds"] and a["thread_kinds"], _why(load, "no thread census in the trace")
    problems = thread_problems(b["thread_kinds"], a["thread_kinds"], figures["thread_pool_peak"])
    assert not problems, _why(load, "; ".join(problems))
    assert a["server_rss_mb"] <= b["server_rss_mb"] + RSS_SLACK_MB, _why(
        load, f"server RSS {b['server_rss_mb']:.0f} MB before, {a['server_rss_mb']:.0f} MB after")


def test_widget_states_sent_are_what_the_server_reads(server, load):
    async def scenario():
        s = Session(server.url, TRAIN_PATH, until=STATUS)
        try:
            await s.open(120)
            await s.set_and_wait("Seed", 5)               # number_input: int_value
            # selectbox: string_value, the option as the page shows it (its format_func)
            await s.set_and_wait("Architecture", arch_label("gru"))
            await s.set_and_wait("Clip the gradient norm", True)  # checkbox: bool_value
            query = parse_qs(s.query_string)
            assert (query["seed"], query["arch"], query["clip"]) == (["5"], ["gru"], ["1.0"]), s.query_string
            await s.press("Train")
            await s.wait_for(lambda: s.until_at, 240, STATUS)
            run_id = parse_qs(s.query_string)["run"][0]
        finally:
            await s.close()
        return run_id

    run_id = run_sync(scenario())
    config = json.loads((server.runs_dir / run_id / "config.json").read_text())
    assert (config["arch"], config["seed"], config["clip"]) == ("gru", 5, 1.0), config


def test_compare_two_models_in_two_sessions(server, load):
    params = dict(TINY, steps=60)
    params.pop("arch")
    before = server.run_ids()
    sc = Scenario(path="/compare?" + urlencode(params), sessions=2, press="Train together",
                  until=STATUS, set_values=(("Models", "rnn_tanh,lstm"),), finish_timeout=300)
    figures, sessions = run_sync(run(server.url, sc))
    assert figures["failures"] == {} and figures["sessions_done"] == 2, figures["failures"]
    for s in sessions:
        assert s.new_charts_max >= 1 and not (s.errors or s.client_errors or s.disconnects), s.describe()
        assert s.value("Models") == ["rnn_tanh", "lstm"], s.value("Models")
    new = server.run_ids() - before
    archs = sorted(json.loads((server.runs_dir / r / "config.json").read_text())["arch"] for r in new)
    # Both sessions pressed the same pair: trained once (identical runs are shared) or,
    # without that, once per session; either way the two models, and nothing else.
    assert set(archs) == {"lstm", "rnn_tanh"} and len(archs) in (2, 4), archs
    assert {server.run_status(r).get("status") for r in new} == {"finished"}

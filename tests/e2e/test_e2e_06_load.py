"""Load (issue 6): N browser sessions train at once against one server.

N = $RNNLAB_LOAD_SESSIONS (default 4, for CI; the benchmark in BENCHMARKS.md is
``python -m tests.e2e.load --sessions 20``, the same scenario). Each session is its
own browser context on /train with a small configuration and presses Train; with
N above the cap of 2 trainings the others wait in a visible queue, then run.

Checked: every session shows live charts (≥ 4) and finishes, queued sessions show
the queue, no page shows an error, a click on "Log-scale loss" is answered (the
redrawn chart has its log axis) within 2 s, the server + its training processes
stay under 1.5 GB resident; after every tab is closed the server's threads, child
processes and memory return to (near) their values before the load.
"""

from __future__ import annotations

import os

import pytest
from harness import AppServer
from load import (
    CLICK_LIMIT_S,
    LOAD_CONFIG,
    RSS_LIMIT_MB,
    after_close,
    close_sessions,
    format_table,
    run_load,
    settle,
    warm_up,
)

N = int(os.environ.get("RNNLAB_LOAD_SESSIONS", "4"))
GRACE_S = 3.0
MAX_TRAININGS = 2
SPARES = 1
THREADS_SLACK = 8        # asyncio / uvicorn pool threads may start under load and stay
RSS_SLACK_MB = 150.0     # allocator high-water marks; a leak per session would exceed it

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300 + 60 * N)]


@pytest.fixture(scope="module")
def load_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("rnnlab-load")
    srv = AppServer(runs_dir=base / "runs", log_dir=base / "logs", max_trainings=MAX_TRAININGS,
                    env={"RNNLAB_RELEASE_GRACE_S": GRACE_S})
    try:
        srv.start(timeout=90)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield srv
    code = srv.stop()
    print(f"\n[e2e] load server exit code {code}; stderr tail:\n{srv.stderr_tail(30)}")


def test_concurrent_sessions_train_and_resources_return(load_server, browser):
    server = load_server
    warm_up(browser, server, LOAD_CONFIG)
    baseline = settle(server, spares=SPARES)
    sessions = []
    try:
        figures, sessions = run_load(browser, server, N, LOAD_CONFIG, max_click_rounds=2)
    finally:
        close_sessions(sessions)
    figures["baseline"] = baseline
    figures["after_close"] = after = after_close(server, GRACE_S, spares=SPARES)
    table = format_table(figures)
    print(f"\n[e2e] load test, {N} sessions:\n{table}")
    per = figures["per_session"]

    def fail(msg: str) -> str:
        return f"{msg}\n{table}"

    assert server.proc.poll() is None, fail("the server died under load")
    # Every session was answered, trained and drew its live charts; none shows an error.
    assert figures["sessions_unanswered_train"] == 0, fail("Train presses never answered")
    bad = [p for p in per if p["final_status"] != "finished" or p["max_charts"] < 4]
    assert not bad, fail(f"sessions without finished training or live charts: {bad}")
    errors = [(p["session"], p["app_errors"]) for p in per if p["app_errors"]]
    assert not errors, fail(f"error boxes on the pages: {errors}")
    on_disk = server.wait_runs_status([p["run_id"] for p in per], ("finished",), timeout=30)
    assert len(on_disk) == N
    # Trainings beyond the cap waited in a visible queue.
    if N > MAX_TRAININGS:
        assert figures["sessions_saw_queue"] >= 1, fail("no session showed the training queue")
        silent = [p["session"] for p in per if (p["queue_wait_s"] or 0) > 3 and not p["queued_text"]]
        assert not silent, fail(f"sessions waited > 3 s without showing the queue: {silent}")
    # Pages stayed interactive.
    assert figures["click_failures"] == 0, fail("clicks on 'Log-scale loss' never answered: "
                                                + str([p["click_failures"] for p in per]))
    assert figures["click_s"]["max"] <= CLICK_LIMIT_S, fail(
        f"a click took {figures['click_s']['max']} s to be answered (limit {CLICK_LIMIT_S} s)")
    # Memory of the server and its training processes.
    assert figures["peak_tree_rss_mb"] < RSS_LIMIT_MB, fail(
        f"peak RSS of server + training processes {figures['peak_tree_rss_mb']} MB")

    # After all tabs closed: no leaked workers, threads or memory.
    assert len(after["children"]) == len(baseline["children"]) == SPARES, fail(
        f"child processes before {baseline['children']}, after close {after['children']}")
    assert after["threads"] <= baseline["threads"] + THREADS_SLACK, fail(
        f"server threads {baseline['threads']} before, {after['threads']} after close")
    assert after["server_rss_mb"] <= baseline["server_rss_mb"] + RSS_SLACK_MB, fail(
        f"server RSS {baseline['server_rss_mb']:.0f} MB before, {after['server_rss_mb']:.0f} MB after")
    assert after["server_rss_mb_later"] <= after["server_rss_mb"] + 20, fail(
        "server RSS still growing after every tab closed")

"""Faults (issue 6): a tab closed mid-training, a reload mid-training, the server
SIGKILLed mid-run.

Servers run with ``RNNLAB_RELEASE_GRACE_S=3``, so released jobs stop quickly. The
tab-close and reload tests share one server (each first waits until no training
process of an earlier test is left); the SIGKILL test starts its own two. The training
process of a run is identified as the spare child the server had started before
Train was pressed (``core.worker.WorkerPool`` hands its idle spare to the next job).
"""

from __future__ import annotations

import os
import signal
import time

import pandas as pd
import pytest
from harness import (
    VIEWPORT,
    AppServer,
    TINY,
    app_exception,
    click_button,
    open_page,
    step_caption,
    stop_button,
    train_button,
    try_wait_idle,
    wait_charts,
    wait_run_id,
    wait_status,
    wait_until,
)
from load import children, gone

from core.runs import RunStore

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

GRACE_S = 3.0
SPARES = 1  # RNNLAB_SPARE_WORKERS default
# Long enough to still be training when the fault happens (stopped or killed early).
LONG = dict(TINY, steps=20000, seed=3)


def _start_server(base, name: str = "server", runs_dir=None, **env) -> AppServer:
    srv = AppServer(runs_dir=runs_dir or base / "runs", log_dir=base / f"logs-{name}",
                    max_trainings=2, env={"RNNLAB_RELEASE_GRACE_S": GRACE_S, **env})
    try:
        srv.start(timeout=90)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    return srv


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, request):
    srv = _start_server(tmp_path_factory.mktemp("rnnlab-faults"))
    yield srv
    code = srv.stop()
    if request.session.testsfailed:
        print(f"\n[e2e] streamlit (exit code {code}) stderr tail:\n{srv.stderr_tail(60)}")


@pytest.fixture
def server(shared_server):
    """The shared server, alive, once no training process of an earlier test is left."""
    assert shared_server.proc.poll() is None, "the shared server has died"
    _wait(lambda: len(children(shared_server.pid)) <= SPARES, 60,
          "the shared server without training processes from an earlier test")
    return shared_server


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(30_000)
    yield ctx
    try:
        ctx.close()
    except Exception:  # noqa: BLE001 - the test closed it already
        pass


def _wait(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout:.0f} s")
        time.sleep(interval)


def _spare(server) -> int:
    """PID of the server's one idle spare training process (started by app.py)."""
    kids = _wait(lambda: (k := children(server.pid)) and len(k) == SPARES and k, 60,
                 f"the server's {SPARES} spare training process(es)")
    return kids[0]


def _start_long_training(page, server) -> tuple[str, int]:
    """Open /train with a long run, press Train; returns (run id, training process PID)
    once the run is training and status.json has recorded steps."""
    open_page(page, server, "train", LONG, ready=train_button)
    try_wait_idle(page)
    worker = _spare(server)
    click_button(page, train_button(page), "Train")
    run_id = wait_run_id(page)
    wait_status(page, "running", timeout=60)
    assert worker in children(server.pid), (
        f"the spare process {worker} is not among the server's children after Train "
        f"({children(server.pid)})")
    _wait(lambda: server.run_status(run_id).get("step", 0) > 0, 60,
          f"status.json of {run_id} with step > 0")
    return run_id, worker


def _rows(server, run_id, table: str) -> int:
    try:
        return len(pd.read_parquet(server.runs_dir / run_id / f"{table}.parquet"))
    except Exception:  # noqa: BLE001 - not written yet
        return 0


def _metric_rows(server, run_id) -> int:
    return _rows(server, run_id, "metrics")


def test_tab_closed_mid_training_stops_after_grace_and_is_saved(server, context):
    page = context.new_page()
    run_id, worker = _start_long_training(page, server)
    step_at_close = server.run_status(run_id)["step"]
    t_close = time.monotonic()
    context.close()

    final = _wait(lambda: (s := server.run_status(run_id)).get("status") not in ("running", "queued")
                  and s, GRACE_S + 30, f"run {run_id} no longer running after the tab closed")
    waited = time.monotonic() - t_close
    print(f"\n[e2e] tab closed at step {step_at_close}; run saved as {final['status']!r} at "
          f"step {final['step']} {waited:.1f} s later (grace {GRACE_S} s)")
    assert final["status"] == "stopped", f"status.json after the tab closed: {final}"
    assert waited >= GRACE_S - 0.5, (
        f"the job stopped {waited:.1f} s after the tab closed, before the {GRACE_S} s grace period")
    assert final["step"] >= step_at_close, final
    assert RunStore(server.runs_dir).read_status(run_id)["status"] == "stopped"
    assert _metric_rows(server, run_id) == final["step"], (
        f"metrics.parquet has {_metric_rows(server, run_id)} rows, status.json says step "
        f"{final['step']}")

    _wait(lambda: gone(worker), 20, f"training process {worker} exited")
    _wait(lambda: len(children(server.pid)) == SPARES, 30,
          f"the server back to {SPARES} spare child process(es)")
    assert worker not in children(server.pid)
    assert server.proc.poll() is None, "the server died"


def test_reload_mid_training_claims_the_job_back(server, context):
    page = context.new_page()
    run_id, worker = _start_long_training(page, server)
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]',
                           state="attached")
    wait_status(page, "running", timeout=60)
    assert f"run={run_id}" in page.url, page.url
    c1 = wait_until(page, lambda: step_caption(page), 30, "caption 'Step N / M' after reload")

    # Past the grace period of the old (released) session: the job must still be training.
    page.wait_for_timeout((GRACE_S + 2.5) * 1000)
    c2 = wait_until(page, lambda: step_caption(page), 30, "caption 'Step N / M'")
    st = server.run_status(run_id)
    print(f"\n[e2e] after reload: caption {c1} -> {c2} over {GRACE_S + 2.5:.1f} s; "
          f"status.json {st.get('status')} step {st.get('step')}")
    assert st.get("status") == "running", f"status.json {GRACE_S + 2.5:.1f} s after the reload: {st}"
    assert c2[0] > c1[0], f"steps stopped increasing after the reload: {c1} -> {c2}"
    assert not gone(worker), f"the training process {worker} ended after the reload"
    assert app_exception(page) is None

    # The claimed job is this session's again: Stop works on it.
    click_button(page, stop_button(page), "Stop")
    wait_status(page, "stopped", timeout=30)
    server.wait_runs_status([run_id], ("stopped",), timeout=30)
    _wait(lambda: gone(worker), 20, f"training process {worker} exited after Stop")


def test_server_sigkill_mid_run_restart_shows_interrupted(tmp_path, browser, request):
    first = _start_server(tmp_path, "first")
    second = None
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        page = ctx.new_page()
        run_id, worker = _start_long_training(page, first)
        spare = [p for p in children(first.pid) if p != worker]
        # Flushed (every 2 s) metrics and probes on disk.
        _wait(lambda: _metric_rows(first, run_id) > 0 and _rows(first, run_id, "probes") > 0, 30,
              "metrics.parquet and probes.parquet with rows")
        shown = step_caption(page)
        os.kill(first.pid, signal.SIGKILL)
        t_kill, kill_epoch = time.monotonic(), time.time()
        first.proc.wait(timeout=10)
        last = first.run_status(run_id)           # the last flush before the kill

        # The orphaned training process (and the spare) see EOF on stdin / a broken
        # pipe and exit by themselves. (A spare still importing torch reads its stdin
        # only once that is done: it gets longer.)
        _wait(lambda: gone(worker), 15, f"orphaned training process {worker} exited after SIGKILL")
        worker_exit_s = time.monotonic() - t_kill
        for pid in spare:
            _wait(lambda pid=pid: gone(pid), 45, f"orphaned spare process {pid} exited after SIGKILL")
        spare_exit_s = time.monotonic() - t_kill
        # The same visitor comes back after the restart: their browser keeps its owner
        # cookie (a run opens only for the browser that made it, README "Who may touch what").
        visitor = ctx.storage_state()
        ctx.close()

        rows = _metric_rows(first, run_id)
        rate = last.get("steps_per_s") or 0
        print(f"\n[e2e] SIGKILL: page showed step {shown}, last flush step {last.get('step')}, "
              f"metrics rows {rows}, {rate:.0f} steps/s; training process gone "
              f"{worker_exit_s:.1f} s, spare {spare_exit_s:.1f} s after the kill; last flush "
              f"{kill_epoch - last.get('heartbeat', 0):.1f} s before the kill")
        assert last.get("status") == "running", last
        # Flushes come every 2 s: at most that much (plus scheduling slack) is lost.
        assert kill_epoch - last["heartbeat"] <= 2.0 + 3.0, (
            f"the last flush was {kill_epoch - last['heartbeat']:.1f} s before the kill")
        assert rows >= last["step"], (
            f"metrics.parquet has {rows} rows but the last status.json flush says step {last['step']}")
        if shown:
            # At most a few seconds lost: one flush interval (2 s) + one page refresh (1 s) + slack.
            assert rows >= shown[0] - rate * 6, (
                f"metrics.parquet has {rows} rows, the page showed step {shown[0]} before the kill "
                f"({rate:.0f} steps/s): more than a few seconds lost")

        store = RunStore(first.runs_dir)
        assert store.read_status(run_id)["status"] == "interrupted"
        listing = store.list()  # what the Runs page lists
        assert listing.set_index("run_id").loc[run_id, "status"] == "interrupted", listing

        # No spare training process needed to look at runs: less CPU during the checks.
        second = _start_server(tmp_path, "second", runs_dir=first.runs_dir,
                               RNNLAB_SPARE_WORKERS=0)
        ctx = browser.new_context(viewport=VIEWPORT, storage_state=visitor)
        page = ctx.new_page()
        open_page(page, second, "train", {"run": run_id}, ready=train_button)
        wait_status(page, "interrupted", timeout=60)
        wait_charts(page, 4, timeout=60)
        cap = step_caption(page)
        assert cap and cap[0] == last["step"], f"caption {cap}, last flushed step {last['step']}"
        assert app_exception(page) is None
        assert second.proc.poll() is None
    finally:
        try:
            ctx.close()
        except Exception:  # noqa: BLE001
            pass
        first.stop()
        if second is not None:
            code = second.stop()
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(f"\n[e2e] second server (exit {code}) stderr:\n{second.stderr_tail(60)}")

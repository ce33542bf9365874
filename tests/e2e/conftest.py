"""Fixtures for the end-to-end browser tests (headless Debian Chromium via Playwright).

* ``app_server`` (session): ``streamlit run app.py`` on a free 127.0.0.1 port with
  ``RNNLAB_RUNS_DIR`` in a fresh tmp dir and ``RNNLAB_MAX_TRAININGS=2``. It is an
  :class:`harness.AppServer`; ``str(app_server)`` is the base URL, and
  ``health_s`` / ``first_interactive_s`` are the seconds from process start to
  ``/_stcore/health`` answering ``ok`` and to the first interactive page.
* ``browser`` (session) and ``page`` (a new 1400x1000 context per test).

These tests never skip: without Chromium they fail and say why.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    VIEWPORT,
    AppServer,
    check_chromium,
    launch_browser,
)
from harness import wait_idle as _wait_idle


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, request):
    base = tmp_path_factory.mktemp("rnnlab-e2e")
    server = AppServer(runs_dir=base / "runs", log_dir=base / "logs", max_trainings=2)
    try:
        server.start(timeout=60)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    print(f"\n[e2e] streamlit on {server.url}: health ok after {server.health_s:.2f} s "
          f"(runs dir {server.runs_dir})")
    yield server
    died = server.proc is not None and server.proc.poll() is not None
    code = server.stop()
    if died or request.session.testsfailed:
        print(f"\n[e2e] streamlit exit code {code}; stderr tail:\n{server.stderr_tail()}")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    try:
        check_chromium()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    with sync_playwright() as pw:
        b = launch_browser(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser, request, tmp_path):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    console_errors: list[str] = []
    pg.on("pageerror", lambda exc: console_errors.append(str(exc)))
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        shot = tmp_path / "failure.png"
        try:
            pg.screenshot(path=str(shot), full_page=True)
            print(f"\n[e2e] failure screenshot: {shot}  (URL {pg.url})")
        except Exception as e:  # noqa: BLE001
            print(f"\n[e2e] could not take a failure screenshot: {e}")
        if "app_server" in request.fixturenames:
            server = request.getfixturevalue("app_server")
            print(f"[e2e] streamlit stderr tail:\n{server.stderr_tail(60)}")
        if console_errors:
            print("[e2e] page errors:\n  " + "\n  ".join(console_errors[-10:]))
    context.close()


@pytest.fixture
def wait_idle():
    """``wait_idle(page, timeout)`` as a fixture too (also importable from harness)."""
    return _wait_idle

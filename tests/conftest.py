"""Shared fixtures: the repo root on sys.path, and an isolated run store per test."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """RNNLAB_RUNS_DIR → a fresh directory, and the app's cached store forgotten."""
    d = tmp_path / "runs"
    monkeypatch.setenv("RNNLAB_RUNS_DIR", str(d))
    from ui.state import run_store

    run_store.clear()
    yield d
    run_store.clear()


def _end_app_sessions() -> None:
    """What Streamlit does when a browser session ends: its session-scoped caches are
    cleared (and their on_release called). Streamlit's own call, for every session id;
    the global caches (session id None) are left alone."""
    if "streamlit.runtime.caching.cache_resource_api" not in sys.modules:
        return
    from streamlit.runtime.caching import cache_resource_api as api

    for session_id in [s for s in list(api._resource_caches._function_caches) if s is not None]:
        api.clear_session_cache(session_id)


@pytest.fixture(autouse=True)
def _fresh_app_session():
    """Every AppTest in one process runs under the same session id, so a session-scoped
    cache (this session's jobs, ui.state.session_jobs) would carry one test's runs into
    the next page test (seen: Train showed a run of an earlier test instead of "No run
    yet"). Each test starts as a new browser session would."""
    _end_app_sessions()
    yield
    _end_app_sessions()

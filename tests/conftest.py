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

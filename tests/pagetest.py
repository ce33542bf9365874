"""Helpers for the AppTest page tests (importable as `pagetest`; conftest names clash)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def page_path(name: str) -> str:
    """Absolute path of a page script (AppTest resolves relative paths against the caller)."""
    return str(ROOT / "pages" / f"{name}.py")

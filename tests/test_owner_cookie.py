"""Whom a browser session's runs belong to (ui/owner.py, issue 18 §5): the signed-in user,
else the owner cookie's token, else a new token the session uses at once and asks the
browser to keep (the browser side: tests/e2e/test_e2e_09_ownership.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

import ui.owner
from core.owners import owner_id


def _app():
    import streamlit as st

    from ui.state import keep_owner_cookie, session_jobs, session_owner

    keep_owner_cookie()
    st.markdown(f"owner={session_owner()} new={session_jobs().cookie_to_set}")


def run() -> tuple[AppTest, str, str]:
    at = AppTest.from_function(_app, default_timeout=30).run()
    assert not at.exception, at.exception
    owner, new = at.markdown[0].value.split(" ")
    return at, owner.removeprefix("owner="), new.removeprefix("new=")


def scripts(at: AppTest) -> str:
    return " ".join(str(getattr(e, "proto", "")) for e in at.get("html"))


def test_without_a_cookie_the_session_makes_a_token_uses_it_and_asks_the_browser_to_keep_it():
    at, owner, token = run()
    assert token != "None" and owner == owner_id(token)
    assert f"rnnlab_owner={token}; path=/" in scripts(at)
    _, again, _ = run()  # the same session (AppTest: one session id): the same owner
    assert again == owner


def test_with_the_cookie_the_owner_is_its_token_and_nothing_is_set(monkeypatch):
    monkeypatch.setattr(ui.owner, "browser_token", lambda: "kept-by-the-browser-0001")
    at, owner, new = run()
    assert owner == owner_id("kept-by-the-browser-0001") and new == "None"
    assert "rnnlab_owner=" not in scripts(at)


def test_a_signed_in_user_is_the_owner(monkeypatch):
    monkeypatch.setattr(ui.owner, "signed_in_user", lambda: "ada@example.org")
    monkeypatch.setattr(ui.owner, "browser_token", lambda: "kept-by-the-browser-0001")
    _, owner, new = run()
    assert owner == owner_id("user:ada@example.org") and new == "None"


@pytest.mark.parametrize("value,token", [
    ("Xy3_-abcdefghijklmnopqrstuvwxyz01", "Xy3_-abcdefghijklmnopqrstuvwxyz01"),
    ("short", None),
    ("has spaces and; semicolons=1 here", None),
    ("x" * 65, None),
])
def test_only_a_cookie_of_the_tokens_shape_is_taken(monkeypatch, value, token):
    fake = SimpleNamespace(context=SimpleNamespace(cookies={"rnnlab_owner": value}))
    monkeypatch.setattr(ui.owner, "st", fake)
    assert ui.owner.browser_token() == token

"""Who may touch what (issue 18, §5): runs belong to the browser that made them.

Two browser contexts (two visitors, each with its own cookies) on one server: A trains
a tiny run; B neither lists it on the Runs page nor opens it by its link, and cannot
delete it; A, after reloads (new sessions that send the owner cookie the app set on A's
first visit, before the run existed), still lists it as its own and deletes it.
"""

import pytest
from harness import (
    ALERT,
    TINY,
    VIEWPORT,
    app_text,
    click_button,
    dataframe_text,
    open_page,
    select_option,
    selectbox_value,
    train_button,
    try_wait_idle,
    wait_run_id,
    wait_status,
    wait_until,
    widget,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

OWNER_COOKIE = "rnnlab_owner"


@pytest.fixture
def visitors(browser):
    """Two browser contexts: two visitors who share nothing but the server."""
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
    for ctx in contexts:
        ctx.set_default_timeout(30_000)
    yield [ctx.new_page() for ctx in contexts]
    for ctx in contexts:
        ctx.close()


def _runs_page(page, server, params=None):
    open_page(page, server, "runs", params,
              ready=lambda p: widget(p, "stSelectbox", "Open run"))
    try_wait_idle(page)


def _owner_cookie(page) -> str | None:
    return next((c["value"] for c in page.context.cookies() if c["name"] == OWNER_COOKIE), None)


def test_a_visitor_sees_and_deletes_only_their_own_runs_and_a_reload_keeps_them(
        app_server, visitors):
    a, b = visitors
    # A's first visit: no cookie yet; the session makes a token, uses it, and sets it.
    open_page(a, app_server, "train", dict(TINY, steps=30, seed=909), ready=train_button)
    try_wait_idle(a)
    token = wait_until(a, lambda: _owner_cookie(a), 15, f"cookie {OWNER_COOKIE} set in A")
    # The script's container takes no room: neither it nor its layout wrapper (a flex item
    # of the page, which would add the page's gap above the title) is displayed.
    shown = a.evaluate("() => [...document.querySelectorAll('.st-key-rnnlab_owner_cookie')]"
                       ".map(e => [getComputedStyle(e).display, "
                       "getComputedStyle(e.parentElement).display])")
    assert shown == [["none", "none"]], shown
    click_button(a, train_button(a), "Train")
    run_id = wait_run_id(a)
    wait_status(a, "finished", timeout=120)
    assert app_server.run_status(run_id).get("owner", "").startswith("o-")
    assert token not in str(app_server.run_status(run_id))  # only its hash is stored

    # B: its own cookie; A's run is neither listed nor opened by its link.
    _runs_page(b, app_server)
    assert _owner_cookie(b) not in (None, token)
    assert run_id not in dataframe_text(b) + app_text(b)
    _runs_page(b, app_server, {"run": run_id})
    wait_until(b, lambda: "another visitor's" in app_text(b), 20, "B told the run is not theirs")
    assert run_id not in selectbox_value(b, "Open run")
    assert b.get_by_role("button", name="Delete run").count() == 0
    open_page(b, app_server, "train", {"run": run_id}, ready=train_button)
    wait_until(b, lambda: "of another visitor: not shown" in app_text(b), 20,
               "B's Train page refusing A's run")
    assert app_server.run_status(run_id).get("status") == "finished"  # still there

    # A, in new sessions (a reload): the same owner, the run listed as its own.
    _runs_page(a, app_server)
    a.reload()
    a.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')
    wait_until(a, lambda: widget(a, "stSelectbox", "Open run").count() > 0, 60,
               "selectbox 'Open run' after reload")
    assert _owner_cookie(a) == token
    wait_until(a, lambda: run_id in dataframe_text(a), 30, f"run {run_id} listed for A")
    select_option(a, "Open run", run_id)
    wait_status(a, "finished", timeout=60)
    assert "You may not delete" not in app_text(a)
    a.get_by_text("Yes, delete this run").click()
    click_button(a, a.get_by_role("button", name="Delete run"), "Delete run")
    wait_until(a, lambda: f"Deleted run {run_id}" in app_text(a), 30, "A's run deleted")
    assert run_id not in app_server.run_ids()
    assert not a.locator(ALERT).filter(has_text="Could not delete").count()

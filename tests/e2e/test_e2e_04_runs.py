"""A finished run is listed on the Runs page and reopens after a reload."""

import pytest
from harness import (
    CHART,
    DOWNLOAD,
    TINY,
    app_text,
    click_button,
    dataframe_text,
    open_page,
    select_option,
    selectbox_value,
    train_button,
    try_wait_idle,
    wait_charts,
    wait_run_id,
    wait_status,
    wait_until,
    widget,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def _open_run(page, run_id):
    if run_id not in selectbox_value(page, "Open run"):
        select_option(page, "Open run", run_id)
    wait_charts(page, 1, timeout=60)
    wait_status(page, "finished", timeout=30)
    wait_until(page, lambda: page.locator(DOWNLOAD).count() > 0, 30, "download buttons")


def test_run_listed_on_runs_page_and_reopens_after_reload(app_server, page):
    open_page(page, app_server, "train", dict(TINY, steps=60, seed=2), ready=train_button)
    try_wait_idle(page)
    click_button(page, train_button(page), "Train")
    run_id = wait_run_id(page)
    wait_status(page, "finished", timeout=120)
    wait_charts(page, 4, timeout=30)

    open_page(page, app_server, "runs", ready=lambda p: widget(p, "stSelectbox", "Open run"))
    wait_until(page, lambda: run_id in dataframe_text(page) or run_id in selectbox_value(page, "Open run")
               or run_id in app_text(page), 30, f"run id {run_id} listed on /runs")
    _open_run(page, run_id)
    n = page.locator(CHART).count()

    page.reload()
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')
    wait_until(page, lambda: widget(page, "stSelectbox", "Open run").count() > 0, 60,
               "selectbox 'Open run' after reload")
    _open_run(page, run_id)
    assert page.locator(CHART).count() >= 1, f"no charts after reload (before: {n})"

    open_page(page, app_server, "train", {"run": run_id}, ready=train_button)
    wait_status(page, "finished", timeout=30)
    wait_charts(page, 4, timeout=30)
    page.reload()
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')
    wait_status(page, "finished", timeout=60)
    wait_charts(page, 4, timeout=30)

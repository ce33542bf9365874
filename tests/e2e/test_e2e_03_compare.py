"""Compare page: two architectures trained together."""

import json

import pytest
from harness import (
    DATAFRAME,
    TINY,
    click_button,
    dataframe_text,
    multiselect_remove,
    multiselect_values,
    open_page,
    try_wait_idle,
    wait_charts,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def test_compare_trains_two_architectures(app_server, page):
    params = dict(TINY, steps=200)
    params.pop("arch")
    train_together = page.get_by_role("button", name="Train together", exact=True)
    open_page(page, app_server, "compare", params, ready=train_together)
    models = multiselect_values(page, "Models")
    assert models == ["rnn_tanh", "lstm", "gru"], f"default 'Models' selection is {models}"
    multiselect_remove(page, "Models", "gru")
    assert multiselect_values(page, "Models") == ["rnn_tanh", "lstm"]
    try_wait_idle(page)

    before = app_server.run_ids()
    click_button(page, train_together, "Train together")
    wait_until(page, lambda: page.locator(DATAFRAME).count() > 0, 60, "results table (stDataFrame)")
    wait_charts(page, 1, timeout=60)
    new = wait_until(page, lambda: (r := app_server.run_ids() - before) and len(r) >= 2 and r,
                     30, "two new run directories")
    assert len(new) == 2, f"expected 2 runs for 2 models, got {sorted(new)}"
    archs = sorted(json.loads((app_server.runs_dir / r / "config.json").read_text())["arch"]
                   for r in new)
    assert archs == ["lstm", "rnn_tanh"], f"runs trained: {sorted(new)}"
    app_server.wait_runs_status(new, ("finished",), timeout=150)
    # The page notices the end too, and its table names both models.
    wait_until(page, lambda: "finished" in dataframe_text(page) or "finished" in page.inner_text("body"),
               30, "'finished' shown on the Compare page")
    table = wait_until(page, lambda: (t := dataframe_text(page)) and "rnn_tanh" in t and "lstm" in t and t,
                       30, "results table naming rnn_tanh and lstm")
    assert "gru" not in table, f"gru was removed but appears in the results table: {table[:500]}"
    wait_charts(page, 1, timeout=10)


def test_a_link_with_five_models_warns_and_shows_the_first_four(app_server, page):
    """Issue 15: this link crashed the page (StreamlitSelectionCountExceedsMaxError)."""
    params = dict(TINY, models="rnn_tanh,lstm,gru,lstm (CIFG),lstm (forget bias 1)")
    params.pop("arch")
    train_together = page.get_by_role("button", name="Train together", exact=True)
    open_page(page, app_server, "compare", params, ready=train_together)
    assert multiselect_values(page, "Models") == ["rnn_tanh", "lstm", "gru", "lstm (CIFG)"]
    body = page.inner_text("body")
    assert "compares at most 4" in body and "first 4" in body, body[:800]
    assert "This app has encountered an error" not in body

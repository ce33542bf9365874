"""Train page: live charts while training, Stop, bad URL values."""

import os
import time

import pytest
from harness import (
    ALERT,
    TINY,
    app_text,
    chart_count,
    click_button,
    loss_chart,
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

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

LONG_STEPS = 20000


def test_train_shows_live_charts_then_stop(app_server, page, tmp_path):
    # Long enough to keep running while we watch (the app caps steps at
    # RNNLAB_MAX_STEPS, 20000 by default, below the engine's 100000).
    params = dict(TINY, steps=LONG_STEPS, seed=1)
    open_page(page, app_server, "train", params, ready=train_button)
    try_wait_idle(page)
    t_click = time.monotonic()
    click_button(page, train_button(page), "Train")
    wait_charts(page, 1, timeout=60)
    first_chart_s = time.monotonic() - t_click
    n = wait_charts(page, 4, timeout=60)
    all_charts_s = time.monotonic() - t_click
    print(f"\n[e2e] Train click -> first chart {first_chart_s:.2f} s, -> {n} charts "
          f"{all_charts_s:.2f} s")
    run_id = wait_run_id(page)
    wait_status(page, "running", timeout=30)

    cap1 = wait_until(page, lambda: step_caption(page), 30, "caption 'Step N / M'")
    svg1 = loss_chart(page).inner_html()
    page.wait_for_timeout(2000)
    cap2 = wait_until(page, lambda: step_caption(page), 30, "caption 'Step N / M'")
    svg2 = loss_chart(page).inner_html()
    assert cap1[1] == cap2[1] == LONG_STEPS, f"caption total steps: {cap1} then {cap2}"
    assert cap2[0] > cap1[0], f"caption did not advance in 2 s: {cap1} then {cap2}"
    assert svg1 != svg2, "the loss chart's rendering did not change in 2 s of training"

    shot = tmp_path / "train-page.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("RNNLAB_SCREENSHOT"):
        page.screenshot(path=os.environ["RNNLAB_SCREENSHOT"], full_page=True)
        print(f"[e2e] mid-run screenshot saved to {os.environ['RNNLAB_SCREENSHOT']}")

    click_button(page, stop_button(page), "Stop")
    wait_status(page, "stopped", timeout=30)
    assert chart_count(page) >= 4, "charts gone after Stop"
    app_server.wait_runs_status([run_id], ("stopped",), timeout=30)
    # Stopped means stopped: the step caption no longer moves.
    c1 = step_caption(page)
    page.wait_for_timeout(1500)
    assert step_caption(page) == c1, f"step caption still moving after Stop: {c1} -> {step_caption(page)}"


def test_bad_url_value_shows_a_named_warning(app_server, page):
    params = dict(TINY, steps=40)
    params.update(seq_len="99999", hidden_size="abc")
    open_page(page, app_server, "train", params, ready=train_button)
    alerts = page.locator(ALERT)
    wait_until(page, lambda: alerts.count() > 0, 20, "a warning (stAlert) about the bad URL values")
    text = " ".join(alerts.all_inner_texts())
    assert "seq_len" in text, f"warning does not name seq_len: {text!r}"
    assert "hidden_size" in text, f"warning does not name hidden_size: {text!r}"
    # The page still works, with the defaults in place of the bad values.
    try_wait_idle(page)
    click_button(page, train_button(page), "Train")
    run_id = wait_run_id(page)
    wait_status(page, "finished", timeout=120)
    wait_charts(page, 1, timeout=30)
    cfg = (app_server.runs_dir / run_id / "config.json").read_text()
    assert '"seq_len": 100' in cfg and '"hidden_size": 64' in cfg, (
        f"bad URL values did not fall back to the defaults (seq_len 100, hidden_size 64): {cfg}")
    assert '"steps": 40' in cfg, f"the valid URL values were not kept: {cfg}"
    assert "Traceback" not in app_text(page)

"""The landing and the lesson in Chromium: what a learner sees first, at a projector's size.

* the landing at 1280×720: after one click, heatmap A of the three models (one chart, three
  panels), the loss curves and a caption per model are inside the viewport;
* every lesson link (?lesson=1…6) shows its title, and its charts after its button (the
  real settings: the first charts, not solving; each run is stopped once they show);
* a stale result: after a run on Train, picking another preset marks the charts as from
  earlier settings, with the settings that made them.

Timing is measured by tests/e2e/measure_landing.py (BENCHMARKS.md, "Landing"), not here.
"""

import pytest
from harness import (
    APP,
    TINY,
    app_text,
    click_button,
    open_page,
    select_option,
    stop_button,
    try_wait_idle,
    wait_charts,
    wait_status,
    wait_until,
)

from core.lessons import RACE, STEPS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

LANDING_VIEWPORT = {"width": 1280, "height": 720}


def _box(page, selector: str):
    loc = page.locator(selector).first
    return loc.bounding_box() if loc.count() else None


def _inside(box, viewport) -> bool:
    return (box is not None and box["x"] >= 0 and box["y"] >= 0
            and box["x"] + box["width"] <= viewport["width"] + 1
            and box["y"] + box["height"] <= viewport["height"] + 1)


def _stop_if_running(page) -> None:
    stop = stop_button(page)
    if stop.count() and stop.first.is_enabled():
        stop.first.click()


def test_the_landing_shows_the_three_heatmaps_and_the_losses_above_the_fold(app_server, browser):
    context = browser.new_context(viewport=LANDING_VIEWPORT)
    try:
        page = context.new_page()
        race = page.get_by_role("button", name=RACE.button, exact=True)
        open_page(page, app_server, "/", ready=race)
        assert "How do LSTM and GRU keep the gradient alive" in app_text(page)
        assert _inside(race.bounding_box(), LANDING_VIEWPORT), "the button is below the fold"
        try_wait_idle(page)
        click_button(page, race, RACE.button)
        heat = f'{APP} .st-key-landing_heatA [data-testid="stVegaLiteChart"]'
        wait_until(page, lambda: page.locator(heat).count() and all(
            page.locator(heat).first.get_by_text(label, exact=True).count()
            for label in ("RNN tanh", "LSTM", "GRU")), 60,
            "heatmap A with its three panels (RNN tanh, LSTM, GRU)")
        page.wait_for_timeout(500)            # let Vega lay the chart out
        box = _box(page, heat)
        assert _inside(box, LANDING_VIEWPORT), f"heatmap A is not inside 1280×720: {box}"
        assert box["width"] > 500 and box["height"] > 200, box
        for label in ("RNN tanh", "LSTM", "GRU"):  # each panel's title, inside the viewport
            title = page.locator(heat).first.get_by_text(label, exact=True).first
            assert _inside(title.bounding_box(), LANDING_VIEWPORT), label
        loss = _box(page, f'{APP} .st-key-landing_loss [data-testid="stVegaLiteChart"]')
        assert _inside(loss, LANDING_VIEWPORT), f"the loss chart is not inside 1280×720: {loss}"
        assert loss["x"] > box["x"] + box["width"] - 5, "the loss chart is not beside heatmap A"
        for label in ("RNN tanh", "LSTM", "GRU"):  # one caption per model, read off its run
            caption = page.get_by_text(f"{label} — ", exact=False).first
            wait_until(page, lambda c=caption: c.count() and c.is_visible(), 20,
                       f"the caption of {label}")
            top = caption.bounding_box()
            assert top is not None and top["y"] < LANDING_VIEWPORT["height"], (label, top)
        _stop_if_running(page)
    finally:
        context.close()


@pytest.mark.parametrize("n", sorted(STEPS))
def test_each_lesson_link_shows_its_title_and_its_charts_after_its_button(app_server, page, n):
    step = STEPS[n]
    button = page.get_by_role("button", name=step.button, exact=True)
    open_page(page, app_server, "/", {"lesson": n}, ready=button)
    wait_until(page, lambda: step.title in app_text(page), 15, f"the title of step {n}")
    assert f"step {n} of {len(STEPS)}" in app_text(page)
    try_wait_idle(page)
    click_button(page, button, step.button)
    if step.trains:
        wait_charts(page, 1, timeout=90)
        assert "Showing run" in app_text(page)
        _stop_if_running(page)
    else:
        wait_until(page, lambda: app_text(page).count("Verdict:") >= 3, 90,
                   "the three verdicts")


def test_a_result_is_marked_once_the_settings_change(app_server, page):
    from harness import train_button

    open_page(page, app_server, "train", dict(TINY, steps=40, seed=7), ready=train_button)
    try_wait_idle(page)
    click_button(page, train_button(page), "Train")
    wait_status(page, "finished", timeout=120)
    wait_charts(page, 2, timeout=30)
    assert "Showing run " in app_text(page) and "From earlier settings" not in app_text(page)
    select_option(page, "Preset", "Vanilla RNN forgets (adding, T=50)")
    wait_until(page, lambda: "From earlier settings" in app_text(page), 20,
               "the old charts marked 'From earlier settings'")
    text = app_text(page)
    assert "arch: lstm → rnn_tanh" in text and "Showing run " in text

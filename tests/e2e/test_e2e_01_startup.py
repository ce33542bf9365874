"""The app starts and shows the Train page (and how long that takes)."""

import pytest
from harness import NAV_LINK, open_page, train_button

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PAGE_TITLES = ["Train", "Compare", "Runs", "Explain", "Sweep"]


def test_app_starts_and_shows_train_page(app_server, page):
    open_page(page, app_server, "train", ready=train_button)
    to_interactive = app_server.since_start()
    print(f"\n[e2e] server start -> health ok: {app_server.health_s:.2f} s; "
          f"server start -> first interactive page: {app_server.first_interactive_s:.2f} s "
          f"(this page interactive at {to_interactive:.2f} s)")
    links = [t.strip() for t in page.locator(NAV_LINK).all_inner_texts()]
    for title in PAGE_TITLES:
        assert any(title == link or link.endswith(title) for link in links), (
            f"sidebar nav link {title!r} missing; links are {links}")
    assert train_button(page).is_enabled()

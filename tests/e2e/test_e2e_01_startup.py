"""The app starts and shows the Train page (and how long that takes)."""

import pytest
from harness import nav_links, open_page, train_button, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PAGE_TITLES = ["Train", "Compare", "Runs", "Explain", "Sweep"]


def test_app_starts_and_shows_train_page(app_server, page):
    open_page(page, app_server, "train", ready=train_button)
    to_interactive = app_server.since_start()
    print(f"\n[e2e] server start -> health ok: {app_server.health_s:.2f} s; "
          f"server start -> first interactive page: {app_server.first_interactive_s:.2f} s "
          f"(this page interactive at {to_interactive:.2f} s)")
    links = wait_until(page, lambda: (ls := nav_links(page)) and all(t in ls for t in PAGE_TITLES)
                       and ls, 15, f"sidebar navigation links {PAGE_TITLES}")
    assert links == PAGE_TITLES, f"sidebar navigation links are {links}"
    assert train_button(page).is_enabled()

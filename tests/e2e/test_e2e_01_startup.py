"""The app starts and shows the Train page (and how long that takes); a deep link is the
very first visit of a fresh server."""

from urllib.parse import parse_qs, urlparse

import pytest
from harness import APP, VIEWPORT, AppServer, nav_links, open_page, train_button, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PAGE_TITLES = ["Learn", "Train", "Compare", "Runs", "Explain", "Sweep"]


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


def test_a_deep_link_as_a_fresh_servers_first_visit_gets_the_apps_navigation(tmp_path, browser):
    """Streamlit 1.67 runs pages/<page>.py alone (legacy pages/-folder mode) for visits
    before any session has run app.py's st.navigation (ui/bootstrap.py): the first visit
    of a new server to /runs?x=1 must still get the app's navigation, page config (title,
    wide layout), page and query parameters."""
    server = AppServer(runs_dir=tmp_path / "runs", log_dir=tmp_path / "logs",
                       env={"RNNLAB_SPARE_WORKERS": 0})
    try:
        server.start(timeout=60)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        # Ready when the Runs page itself has drawn: a legacy-mode run stops at the page's
        # first line (ui.bootstrap.ensure_app) and hands over to app.py.
        open_page(page, server, "runs", {"x": "1"}, timeout=90,
                  ready=lambda p: p.locator("h1").filter(has_text="Runs"))
        assert nav_links(page) == PAGE_TITLES
        assert page.title() == "RNN Gradient Lab"
        url = urlparse(page.url)
        assert url.path == "/runs" and parse_qs(url.query).get("x") == ["1"], page.url
        width = page.locator(f'{APP} [data-testid="stMainBlockContainer"]').first.bounding_box()["width"]
        assert width > 900, f"main column {width:.0f} px wide: not the app's wide layout"
    finally:
        context.close()
        server.stop()

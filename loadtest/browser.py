"""One real Chromium page alongside the simulated sessions (``--browser-click``).

The simulated sessions say what the server sends; they draw nothing. One real page
says what a person sees: it opens /train with the same configuration (as its own
browser context, through tests/e2e/load.py's observer script), presses Train with the
others, and clicks its "Log-scale loss" toggle every few seconds while the load runs,
each click timed until the redrawn loss chart shows (or drops) its log axis
(``load.click_log_toggle``). Playwright's sync API runs on a thread of its own.
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl, urlsplit

from tests.e2e import harness as h
from tests.e2e import load as browser_load


class BrowserPage:
    def __init__(self, server, path: str, rounds: int = 5, every_s: float = 3.0,
                 open_timeout: float = 180.0):
        split = urlsplit(path)
        if split.path.strip("/") != "train":
            raise SystemExit(f"--browser-click: the page is /train (tests/e2e/load.py), not {split.path}")
        self.server, self.rounds, self.every_s = server, rounds, every_s
        self.config = dict(parse_qsl(split.query))
        self.open_timeout = open_timeout
        self.ready, self.go, self.stop = threading.Event(), threading.Event(), threading.Event()
        self.figures: dict = {}
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="loadtest-browser", daemon=True)

    def start(self) -> BrowserPage:
        self._thread.start()
        return self

    def wait_ready(self) -> None:
        """Block until the page is open and ready to press Train (or failed)."""
        self.ready.wait(self.open_timeout + 60)
        if self.error:
            raise RuntimeError(f"the Chromium page failed: {self.error}")

    def press(self) -> None:
        self.go.set()

    def finish(self, timeout: float = 120.0) -> dict:
        """Stop clicking, let the page reach its run's end (at most ``timeout``), close it."""
        self.stop.set()
        self._thread.join(timeout + 60)
        return self.figures

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as pw:
                browser = h.launch_browser(pw)
                sessions = []
                try:
                    sessions = browser_load.open_sessions(browser, self.server, 1, self.config,
                                                          timeout=self.open_timeout)
                    s = sessions[0]
                    self.ready.set()
                    self.go.wait()
                    browser_load.click_train_all(sessions)
                    clicks = 0
                    while not self.stop.is_set() and clicks < self.rounds:
                        s.poll()
                        if s.last_status in browser_load.TERMINAL:
                            break
                        if browser_load.ready_for_click(s):
                            browser_load.click_log_toggle(s)
                            clicks += 1
                            self.stop.wait(self.every_s)
                        else:
                            self.stop.wait(0.5)
                    self.stop.wait()
                    for _ in range(240):  # up to 120 s more for its own run to end
                        s.poll()
                        if s.last_status in browser_load.TERMINAL:
                            break
                        s.page.wait_for_timeout(500)
                    self.figures = {**s.figures(), "clicks_s": [round(c, 3) for c in s.clicks],
                                    "click_failures": s.click_failures,
                                    "click_server_s": s.server_click_answers()}
                finally:
                    browser_load.close_sessions(sessions)
                    browser.close()
        except Exception as e:  # noqa: BLE001 - reported with the figures, the load goes on
            self.error = f"{type(e).__name__}: {str(e)[:500]}"
            self.ready.set()

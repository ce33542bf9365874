"""A load test without browsers: N simulated visitors speaking Streamlit's own WebSocket
protocol to one server (issue 18, section 3).

* :mod:`loadtest.protocol`: the front end's side of the protocol as data (rerun
  BackMsgs, the message cache, the element tree, widget states); no I/O.
* :mod:`loadtest.client`: one session over a real WebSocket (``websockets``).
* :mod:`loadtest.scenario`: N sessions open, press, wait, close; figures per session
  and over sessions.
* ``python -m loadtest``: the command line (starts its own server by default, samples
  it from /proc, checks its resources after close); :mod:`loadtest.browser` adds one
  real Chromium page alongside.

README.md, "Load testing without browsers", says how to run it and what it reports.
"""

from __future__ import annotations

import asyncio
import threading


def run_sync(coro):
    """``asyncio.run(coro)``, also from a thread whose event loop is already running
    (Playwright's sync API keeps one running in pytest's main thread once a browser
    test has run): then the coroutine runs in a thread of its own, and its result or
    exception comes back here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - handed back to the caller below
            box["error"] = e

    thread = threading.Thread(target=target, name="loadtest-run-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")

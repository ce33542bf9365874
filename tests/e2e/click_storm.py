"""Click storm: do pages keep following their training while people click during it?

    .venv/bin/python -m tests.e2e.click_storm --sessions 14 --max-trainings 2 --seconds 60

Opens ``--sessions`` browser sessions on /train (the load test's small configuration),
presses Train in each, then for ``--seconds`` clicks every visible "Log-scale loss"
toggle in turn (or, with ``--target seed``, the sidebar's Seed step-up: a whole-page
rerun that interrupts the page's run) without waiting for the answers, then waits
until every page says "finished". A page that never does, although its run is saved
as finished, has stopped following its training: that is what this looks for (seen
when "Log-scale loss" was drawn outside the live fragment, so that its clicks
interrupted the page's runs; see BENCHMARKS.md, "Load", session 4).
Prints one line per session and exits 1 if any page is stuck.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__:
    from tests.e2e import harness as h
    from tests.e2e import load as L
else:  # run as a file
    import harness as h  # type: ignore[no-redef]
    import load as L  # type: ignore[no-redef]


def _target(s, what: str):
    """The element clicked: the live view's "Log-scale loss" toggle (a fragment rerun), or
    the sidebar's "Seed" step-up button (a whole-page rerun that interrupts the page's run)."""
    if what == "seed":
        return h.widget(s.page, "stNumberInput", "Seed").locator(
            '[data-testid="stNumberInputStepUp"]').first
    return L.log_toggle(s)


def storm(browser, server, n: int, seconds: float, finish_timeout: float = 300.0,
          target: str = "log") -> list[dict]:
    sessions = L.open_sessions(browser, server, n, dict(L.LOAD_CONFIG))
    try:
        L.click_train_all(sessions)
        clicks, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            for s in sessions:
                try:
                    tog = _target(s, target)
                    if s.run_id is None:
                        s.poll()  # the seed only after Train was answered (not a second run)
                    if (s.run_id or target == "log") and tog.is_visible():
                        tog.click(timeout=2000, no_wait_after=True)
                        clicks += 1
                except Exception:  # noqa: BLE001 - mid re-render: next round
                    pass
            time.sleep(0.2)
        print(f"[storm] {clicks} clicks in {seconds:.0f} s", flush=True)
        deadline = time.monotonic() + finish_timeout
        while time.monotonic() < deadline:
            for s in sessions:
                s.poll()
            if L.all_done(sessions):
                break
            time.sleep(2)
        out = []
        for s in sessions:
            s.poll()
            saved = server.run_status(s.run_id).get("status") if s.run_id else None
            out.append({"session": s.index, "run_id": s.run_id, "page": s.last_status,
                        "saved": saved, "page_errors": s.page_errors[:3]})
        return out
    finally:
        L.close_sessions(sessions)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=14)
    ap.add_argument("--max-trainings", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--target", choices=["log", "seed"], default="log",
                    help="click 'Log-scale loss' (default) or the sidebar's Seed step-up")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="rnnlab-storm-"))
    with sync_playwright() as pw:
        browser = h.launch_browser(pw)
        server = h.AppServer(workdir / "runs", workdir / "logs", max_trainings=a.max_trainings,
                             env={"RNNLAB_RELEASE_GRACE_S": 3})
        try:
            server.start(timeout=120)
            L.warm_up(browser, server)
            rows = storm(browser, server, a.sessions, a.seconds, target=a.target)
        finally:
            server.stop()
            browser.close()
    stuck = [r for r in rows if r["page"] != "finished"]
    for r in rows:
        print(("STUCK " if r in stuck else "      ") + str(r))
    print(f"[storm] {len(rows) - len(stuck)}/{len(rows)} pages followed their run to the end")
    return 1 if stuck else 0


if __name__ == "__main__":
    sys.exit(main())

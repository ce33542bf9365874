"""Measure the landing in a real browser (headless Chromium at 1280×720): one click on
"Race them", then how long until

* ``heatmaps_s``:  heatmap A shows its three panels (RNN tanh, LSTM, GRU);
* ``lstm_solved_s`` / ``gru_solved_s``: the model's caption reads "solved at step N".

    .venv/bin/python -m tests.e2e.measure_landing            # 5 runs, from the repo root
    .venv/bin/python tests/e2e/measure_landing.py --runs 7

Each run gets a server of its own (a fresh run store: a second press of the same race on
one server opens the saved runs instead of training them, core.jobs.train_or_attach),
opened once and left ``--settle`` seconds so that its spare training process has started,
as on a server that has been up a while. Times are taken in the page
(``performance.now()``, polled every 25 ms): from just before the click to the first
frame that shows the heatmaps / the caption. Prints one line per run, the medians, the
load averages, the CPU, and one JSON line. A benchmark: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

try:
    from tests.e2e import harness as h
except ImportError:  # run as a script: tests/e2e is on sys.path
    import harness as h  # type: ignore[no-redef]

VIEWPORT = {"width": 1280, "height": 720}
BUTTON = "Race them: RNN vs LSTM vs GRU"
LABELS = ("RNN tanh", "LSTM", "GRU")

# Notes, in page time, the first frame in which each condition holds.
_OBSERVER_JS = r"""
(labels) => {
  window.__landing = {};
  const note = (k) => { if (!(k in window.__landing)) window.__landing[k] = performance.now(); };
  window.__landingTimer = setInterval(() => {
    const svg = document.querySelector('.st-key-landing_heatA [data-testid="stVegaLiteChart"] svg');
    if (svg && labels.every(l => (svg.textContent || '').includes(l))) note('heatmaps');
    for (const el of document.querySelectorAll('[data-testid="stCaptionContainer"]')) {
      const text = el.textContent || '';
      for (const l of labels) {
        if (text.startsWith(l + ' — solved at step')) note('solved:' + l);
      }
    }
  }, 25);
}
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def one_run(browser, workdir: Path, settle_s: float, timeout_s: float) -> dict:
    server = h.AppServer(runs_dir=workdir / "runs", log_dir=workdir / "logs", max_trainings=2)
    server.start(timeout=90)
    out: dict = {"load_before": os.getloadavg()[0]}
    try:
        warm = browser.new_context(viewport=VIEWPORT)
        page = warm.new_page()
        race = page.get_by_role("button", name=BUTTON, exact=True)
        h.open_page(page, server, "/", ready=race, timeout=120)   # the server's first session
        warm.close()
        time.sleep(settle_s)                  # its spare training process starts meanwhile

        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        race = page.get_by_role("button", name=BUTTON, exact=True)
        h.open_page(page, server, "/", ready=race, timeout=60)
        h.try_wait_idle(page)
        page.evaluate(_OBSERVER_JS, list(LABELS))
        t0 = page.evaluate("performance.now()")
        race.click()
        deadline = time.monotonic() + timeout_s
        seen: dict = {}
        while time.monotonic() < deadline:
            seen = page.evaluate("window.__landing")
            if "heatmaps" in seen and all(f"solved:{x}" in seen for x in ("LSTM", "GRU")):
                break
            time.sleep(0.2)
        out["heatmaps_s"] = (seen["heatmaps"] - t0) / 1000 if "heatmaps" in seen else None
        for label in ("LSTM", "GRU"):
            key = f"solved:{label}"
            out[f"{label.lower()}_solved_s"] = (seen[key] - t0) / 1000 if key in seen else None
        text = h.app_text(page)
        for label in ("LSTM", "GRU"):
            marker = f"{label} — solved at step "
            if marker in text:
                out[f"{label.lower()}_solved_step"] = int(text.split(marker, 1)[1].split()[0])
        out["load_after"] = os.getloadavg()[0]
        context.close()
    finally:
        server.stop()
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--settle", type=float, default=20.0,
                    help="seconds between the server's first page and the measured one")
    ap.add_argument("--timeout", type=float, default=90.0)
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    runs = []
    with sync_playwright() as pw:
        browser = h.launch_browser(pw)
        try:
            for i in range(a.runs):
                with tempfile.TemporaryDirectory(prefix="rnnlab-landing-") as d:
                    r = one_run(browser, Path(d), a.settle, a.timeout)
                runs.append(r)
                print(f"run {i + 1}: heatmaps {_s(r['heatmaps_s'])}, LSTM solved "
                      f"{_s(r['lstm_solved_s'])} (step {r.get('lstm_solved_step', '—')}), GRU "
                      f"solved {_s(r['gru_solved_s'])} (step {r.get('gru_solved_step', '—')}); "
                      f"load {r['load_before']:.1f} → {r['load_after']:.1f}", flush=True)
        finally:
            browser.close()
    summary = {"runs": len(runs), "cpu": cpu_model(), "cores": os.cpu_count(),
               "viewport": f"{VIEWPORT['width']}x{VIEWPORT['height']}"}
    for key in ("heatmaps_s", "lstm_solved_s", "gru_solved_s", "load_before", "load_after"):
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[f"median_{key}"] = round(statistics.median(values), 2) if values else None
        summary[f"max_{key}"] = round(max(values), 2) if values else None
    summary["missing"] = sum(1 for r in runs for k in ("heatmaps_s", "lstm_solved_s",
                                                        "gru_solved_s") if r.get(k) is None)
    print(f"medians over {len(runs)} runs: heatmaps {_s(summary['median_heatmaps_s'])}, "
          f"LSTM solved {_s(summary['median_lstm_solved_s'])}, GRU solved "
          f"{_s(summary['median_gru_solved_s'])}; 1-min load average "
          f"{summary['median_load_before']} before, {summary['median_load_after']} after; "
          f"{summary['cpu']}, {summary['cores']} cores")
    print(json.dumps({"summary": summary, "runs": runs}))
    return summary


def _s(x) -> str:
    return "—" if x is None else f"{x:.2f} s"


if __name__ == "__main__":
    main()

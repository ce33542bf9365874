"""Measure the app in a real browser (headless Debian Chromium).

    .venv/bin/python -m tests.e2e.measure            # from the repo root
    .venv/bin/python tests/e2e/measure.py --steps 400

Prints a small table and one JSON line with:

* ``health_s``         server process start → ``/_stcore/health`` answers ok
* ``interactive_s``    server process start → /train interactive (Train button enabled)
* ``first_chart_s``    Train pressed → first chart on the page
* ``all_charts_s``     Train pressed → loss chart + three heatmaps (≥ 4 charts)
* ``refresh_mean_s``   mean interval between changes of the "Step N / M" caption
                       while training (observed for ``--observe`` seconds)
* ``page_steps_per_s`` training speed with the page open (status.json of the run)
* ``cli_steps_per_s``  the same configuration through ``python -m core train``
* ``load_1m_before_*`` the machine's 1-minute load average before each phase (the
                       numbers mean little on a machine that others load)

The server gets its own runs directory and RNNLAB_MAX_TRAININGS=2; the CLI runs
after the server is stopped, so the two speeds do not compete for the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from tests.e2e import harness as h
except ImportError:  # run as a script: tests/e2e is on sys.path
    import harness as h  # type: ignore[no-redef]

# Records every change of the "Step N / M" caption, timestamped in the page.
_OBSERVER_JS = r"""
() => {
  window.__steps = [];
  const re = /Step\s+([\d,]+)\s*\/\s*([\d,]+)/;
  let last = null;
  window.__stepTimer = setInterval(() => {
    let found = null;
    for (const el of document.querySelectorAll('[data-testid="stCaptionContainer"], [data-testid="stMarkdownContainer"]')) {
      const m = re.exec(el.textContent || "");
      if (m) { found = m[1]; break; }
    }
    if (found !== null && found !== last) {
      last = found;
      window.__steps.push([performance.now() / 1000, parseInt(found.replace(/,/g, ""), 10)]);
    }
  }, 25);
}
"""


def config_from_args(a) -> dict:
    return {
        "task": a.task, "arch": a.arch, "seq_len": a.seq_len, "hidden_size": a.hidden,
        "batch_size": a.batch, "steps": a.steps, "probe_every": a.probe_every,
    }


def measure_browser(config: dict, observe_s: float, workdir: Path, train_path: str = "train",
                    browser_nice: int = 0, browser_cpus: set[int] | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    try:
        from tests.e2e.load import confine_browser, deprioritize_browser
    except ImportError:  # run as a script
        from load import confine_browser, deprioritize_browser  # type: ignore[no-redef]

    out: dict = {}
    with sync_playwright() as pw:
        browser = h.launch_browser(pw)  # before the server: browser start-up is not counted
        server = h.AppServer(runs_dir=workdir / "runs", log_dir=workdir / "logs", max_trainings=2)
        try:
            out["load_1m_before_page"] = os.getloadavg()[0]
            server.start(timeout=60)
            out["health_s"] = server.health_s
            context = browser.new_context(viewport=h.VIEWPORT)
            page = context.new_page()
            out["browser_nice"] = browser_nice
            out["browser_cpus"] = sorted(browser_cpus) if browser_cpus else None
            deprioritize_browser(browser_nice, exclude_root=server.pid)
            confine_browser(browser_cpus, exclude_root=server.pid)
            h.open_page(page, server, train_path, config, ready=h.train_button, timeout=120)
            out["interactive_s"] = server.since_start()
            h.try_wait_idle(page)

            before = server.run_ids()
            page.evaluate(_OBSERVER_JS)
            t0 = time.monotonic()
            h.click_button(page, h.train_button(page), "Train")
            h.wait_charts(page, 1, timeout=120)
            out["first_chart_s"] = time.monotonic() - t0
            h.wait_charts(page, 4, timeout=120)
            out["all_charts_s"] = time.monotonic() - t0
            run_id = h.wait_run_id(page)
            if run_id not in server.run_ids() - before:
                raise h.AppError(f"run {run_id} from the URL is not a new run in {server.runs_dir}")

            # Observe the caption while training (or until it finishes).
            end = time.monotonic() + observe_s
            while time.monotonic() < end:
                if server.run_status(run_id).get("status") not in (None, "queued", "running"):
                    break
                page.wait_for_timeout(250)
            samples = page.evaluate("() => window.__steps.slice()")
            page.evaluate("() => clearInterval(window.__stepTimer)")
            times = [t for t, _ in samples]
            intervals = [b - a for a, b in zip(times, times[1:])]
            out["caption_changes"] = len(samples)
            out["refresh_mean_s"] = statistics.fmean(intervals) if intervals else None
            out["refresh_median_s"] = statistics.median(intervals) if intervals else None

            final = server.wait_runs_status([run_id], ("finished", "stopped", "diverged"),
                                            timeout=1800)
            status = server.run_status(run_id)
            out["page_status"] = final[run_id]
            out["page_steps_per_s"] = status.get("steps_per_s")
            out["page_wall_s"] = status.get("wall_s")
            out["run_id"] = run_id
            context.close()
        finally:
            browser.close()
            server.stop()
    return out


def measure_cli(config: dict, workdir: Path) -> dict:
    load = os.getloadavg()[0]
    cmd = [h._venv_python(), "-m", "core", "train", "--out", str(workdir / "cli-runs"), "--quiet"]
    for k, v in config.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    proc = subprocess.run(cmd, cwd=h.REPO, capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    res = json.loads(lines[-1])
    return {"cli_steps_per_s": res.get("steps_per_s"), "cli_wall_s": res.get("wall_s"),
            "cli_status": res.get("status"), "load_1m_before_cli": load}


def measure_paired(config: dict, workdir: Path, repeats: int, browser_nice: int = 0,
                   browser_cpus: set[int] | None = None) -> dict:
    """``repeats`` rounds of (a training with the page open, then the CLI's), the server
    kept running but idle during the CLI runs: paired, so a noisy minute hits both."""
    from playwright.sync_api import sync_playwright

    try:
        from tests.e2e.load import confine_browser, deprioritize_browser
    except ImportError:  # run as a script
        from load import confine_browser, deprioritize_browser  # type: ignore[no-redef]

    pairs = []
    with sync_playwright() as pw:
        browser = h.launch_browser(pw)
        server = h.AppServer(runs_dir=workdir / "runs", log_dir=workdir / "logs", max_trainings=2)
        try:
            server.start(timeout=60)
            for _ in range(repeats):
                context = browser.new_context(viewport=h.VIEWPORT)
                page = context.new_page()
                deprioritize_browser(browser_nice, exclude_root=server.pid)
                confine_browser(browser_cpus, exclude_root=server.pid)
                h.open_page(page, server, "train", config, ready=h.train_button, timeout=120)
                h.try_wait_idle(page)
                h.click_button(page, h.train_button(page), "Train")
                run_id = h.wait_run_id(page)
                server.wait_runs_status([run_id], ("finished", "stopped", "diverged"), timeout=1800)
                page_rate = server.run_status(run_id).get("steps_per_s")
                context.close()
                time.sleep(2)
                cli = measure_cli(config, workdir)
                pairs.append((page_rate, cli["cli_steps_per_s"]))
                print(f"[measure] page {page_rate:.2f} steps/s, CLI {cli['cli_steps_per_s']:.2f} "
                      f"steps/s, ratio {page_rate / cli['cli_steps_per_s']:.3f}", flush=True)
        finally:
            browser.close()
            server.stop()
    ratios = [p / c for p, c in pairs]
    return {"pairs": pairs, "ratios": ratios, "page_vs_cli_median": statistics.median(ratios),
            "browser_nice": browser_nice, "browser_cpus": sorted(browser_cpus) if browser_cpus else None}


def _fmt(v, unit=""):
    if v is None:
        return "n/a"
    return f"{v:.2f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="adding")
    p.add_argument("--arch", default="lstm")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--probe-every", type=int, default=50)
    p.add_argument("--observe", type=float, default=10.0,
                   help="seconds to watch the step caption while training")
    p.add_argument("--train-path", default="train",
                   help="URL path of the Train page (the contract says 'train'; '' for the root)")
    p.add_argument("--no-cli", action="store_true", help="skip the CLI comparison")
    p.add_argument("--browser-nice", type=int, default=0,
                   help="run Chromium at this nice value: on a deployment the browser runs on "
                        "the visitor's machine, here it shares the server's cores (default 0)")
    p.add_argument("--browser-cpus", default="",
                   help="pin Chromium to these CPUs, e.g. 1 (default: none): as if it ran on "
                        "the visitor's machine, it cannot take the core the training runs on")
    p.add_argument("--paired", type=int, default=0, metavar="N",
                   help="only the throughput figure: N rounds of (page-open run, CLI run) "
                        "against one server, and the median ratio")
    a = p.parse_args(argv)
    config = config_from_args(a)
    try:
        from tests.e2e.load import parse_cpus
    except ImportError:  # run as a script
        from load import parse_cpus  # type: ignore[no-redef]
    cpus = parse_cpus(a.browser_cpus)
    if a.paired:
        with tempfile.TemporaryDirectory(prefix="rnnlab-measure-") as tmp:
            res = measure_paired(config, Path(tmp), a.paired, a.browser_nice, cpus)
        print(f"page / CLI, {a.paired} paired rounds: "
              f"{', '.join(f'{r:.3f}' for r in res['ratios'])}; median "
              f"{res['page_vs_cli_median']:.3f} (Chromium nice {a.browser_nice}, "
              f"CPUs {a.browser_cpus or 'any'})")
        print(json.dumps({"config": config, **res}))
        return 0
    with tempfile.TemporaryDirectory(prefix="rnnlab-measure-") as tmp:
        workdir = Path(tmp)
        res = measure_browser(config, a.observe, workdir, a.train_path, a.browser_nice, cpus)
        if not a.no_cli:
            res.update(measure_cli(config, workdir))
    ratio = None
    if res.get("page_steps_per_s") and res.get("cli_steps_per_s"):
        ratio = res["page_steps_per_s"] / res["cli_steps_per_s"]
    res["page_vs_cli"] = ratio

    cfg = " ".join(f"{k}={v}" for k, v in config.items())
    rows = [
        ("server start -> health ok", _fmt(res.get("health_s"), " s")),
        (f"server start -> interactive /{a.train_path}", _fmt(res.get("interactive_s"), " s")),
        ("Train pressed -> first chart", _fmt(res.get("first_chart_s"), " s")),
        ("Train pressed -> >= 4 charts", _fmt(res.get("all_charts_s"), " s")),
        ("chart refresh interval (mean)", _fmt(res.get("refresh_mean_s"), " s")
         + f"  (median {_fmt(res.get('refresh_median_s'), ' s')}, "
           f"{res.get('caption_changes')} caption changes)"),
        ("steps/s, page open", _fmt(res.get("page_steps_per_s"))
         + f"  ({res.get('page_status')}, {_fmt(res.get('page_wall_s'), ' s')})"),
        ("steps/s, CLI", _fmt(res.get("cli_steps_per_s"))
         + f"  ({res.get('cli_status')}, {_fmt(res.get('cli_wall_s'), ' s')})"),
        ("page / CLI", _fmt(ratio)),
    ]
    rows.append(("Chromium's nice value (same machine)", str(a.browser_nice)))
    rows.append(("Chromium pinned to CPUs", a.browser_cpus or "no (any CPU)"))
    rows.append(("1-min load average before page / CLI",
                 (f"{_fmt(res.get('load_1m_before_page'))} / {_fmt(res.get('load_1m_before_cli'))}"
                 f"  ({os.cpu_count()} cores)")))
    width = max(len(r[0]) for r in rows)
    print(f"config: {cfg}")
    for name, val in rows:
        print(f"  {name:<{width}}  {val}")
    print(json.dumps({"config": config, **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

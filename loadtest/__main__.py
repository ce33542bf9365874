"""Load test without browsers: ``python -m loadtest --sessions 20 --path "/train?..." --press Train --until "Status: finished"``.

By default the tool starts its own server (``streamlit run app.py`` on a free port, its
own runs directory, as the browser tests do: tests/e2e/harness.py), warms it up, takes a
baseline, runs the scenario while sampling the server's process tree from /proc, and
after every session has closed checks that the server's threads, child processes and
memory are back. With ``--url`` it drives a server that is already running (add
``--server-pid`` for the /proc figures when it runs on this machine).

Prints a table, then one JSON line with every figure; exit code 1 when a session did not
open, press, get a chart and reach ``--until``, saw an error or lost its connection,
or the server's resources did not come back. README.md, "Load testing without
browsers", says what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtest import run_sync
from loadtest import scenario as sc_mod
from loadtest.browser import BrowserPage
from loadtest.client import Session
from tests.e2e import harness as h
from tests.e2e import load as browser_load

REPO = Path(__file__).resolve().parents[1]
RSS_SLACK_MB = 300.0     # the server's RSS after close vs. its baseline (allocator high-water marks)


class ExternalServer:
    """A server this tool did not start (``--url``), with its pid when known."""

    def __init__(self, url: str, pid: int | None):
        self.url, self.pid, self.extra_env = url.rstrip("/"), pid, {}
        self.proc = None

    def __str__(self) -> str:
        return self.url


def git_state() -> dict:
    """The commit the server's code is at, and uncommitted changes to the code it runs."""
    def git(*args) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    changed = [ln[3:] for ln in git("status", "--porcelain", "--", "app.py", "core", "ui",
                                    "pages", ".streamlit").splitlines() if ln.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_app_files": changed}


def parse_set(items) -> tuple:
    out = []
    for item in items or ():
        label, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected LABEL=VALUE")
        out.append((label, value))
    return tuple(out)


async def warm_up(url: str, path: str, press: str | None, until: str | None, timeout: float) -> None:
    """One session on ``path``: open, press, wait for ``until``, close. The server has
    then imported the pages and started its spare training process."""
    s = Session(url, path, -1, until=until)
    try:
        await s.open(timeout)
        if press:
            await s.press(press)
            await s.wait_for(lambda: (s.until_at if until else s.first_chart_at) is not None,
                             timeout, "the warm-up's end")
    finally:
        await s.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=5, help="simulated visitors (default 5)")
    ap.add_argument("--path", required=True,
                    help='the page and its query, e.g. "/train?task=adding&steps=150"; {i} becomes '
                         "the session's number (0..N-1): a distinct configuration per visitor")
    ap.add_argument("--press", help="label of the button each session presses (e.g. Train)")
    ap.add_argument("--until", help="a session is done when a text matching this pattern arrives "
                                    "after the press (case-insensitive regex, e.g. 'Status: finished')")
    ap.add_argument("--watch", action="append", default=[],
                    help="another pattern to time from the press (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="LABEL=VALUE",
                    help="set a widget before the press (repeatable; a checkbox takes true/false)")
    ap.add_argument("--ramp", type=float, default=0.0, help="seconds between two sessions' opening")
    ap.add_argument("--open-timeout", type=float, default=180.0)
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds from the press for every session to be done (default 900)")
    ap.add_argument("--click", help="label of a toggle each session clicks while it waits")
    ap.add_argument("--click-chart", help="pattern identifying the chart that answers a click (in its spec)")
    ap.add_argument("--click-answer", help="pattern in that chart's spec exactly when the toggle is on")
    ap.add_argument("--click-rounds", type=int, default=3)
    ap.add_argument("--click-every", type=float, default=3.0)
    ap.add_argument("--browser-click", action="store_true",
                    help="also one real Chromium page on the same /train configuration, pressing "
                         "Train with the others and clicking 'Log-scale loss' (tests/e2e/load.py)")
    ap.add_argument("--browser-click-rounds", type=int, default=5)
    ap.add_argument("--warmup-path", help="before the baseline, one session presses there "
                                          "(default: it only opens --path)")
    ap.add_argument("--url", help="drive this running server instead of starting one")
    ap.add_argument("--server-pid", type=int, help="with --url: the server's pid, for /proc figures")
    ap.add_argument("--max-trainings", type=int, default=2, help="own server: RNNLAB_MAX_TRAININGS")
    ap.add_argument("--grace", type=float, default=3.0, help="own server: RNNLAB_RELEASE_GRACE_S")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds kept open after the last is done")
    ap.add_argument("--per-session", action="store_true", help="print every session's figures")
    ap.add_argument("--json", help="also write the figures (per session included) to this file")
    ap.add_argument("--keep", action="store_true", help="keep the server's runs and logs")
    a = ap.parse_args(argv)
    if a.click and not (a.click_chart and a.click_answer):
        ap.error("--click needs --click-chart and --click-answer")

    sc = sc_mod.Scenario(path=a.path, sessions=a.sessions, press=a.press, until=a.until,
                         watch=tuple(a.watch), set_values=parse_set(a.set),
                         open_timeout=a.open_timeout, finish_timeout=a.timeout, ramp_s=a.ramp,
                         click=a.click, click_chart=a.click_chart, click_answer=a.click_answer,
                         click_rounds=a.click_rounds if a.click else 0, click_every_s=a.click_every,
                         settle_s=a.settle)
    workdir = Path(tempfile.mkdtemp(prefix="rnnlab-loadtest-"))
    trace = workdir / "trace.jsonl"
    if a.url:
        server = ExternalServer(a.url, a.server_pid)
    else:
        server = h.AppServer(workdir / "runs", workdir / "logs", max_trainings=a.max_trainings,
                             env={"RNNLAB_RELEASE_GRACE_S": a.grace, "RNNLAB_TRACE_CLICKS": str(trace)})
    figures: dict = {"started": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
                     "load_before": [round(x, 2) for x in os.getloadavg()], **git_state()}
    code = None
    page = None
    try:
        if not a.url:
            server.start(timeout=120)
            print(f"[loadtest] streamlit pid {server.pid} on {server.url}; runs in {server.runs_dir}")
        t = time.monotonic()
        run_sync(warm_up(server.url, a.warmup_path or sc.path_for(0),
                            a.press if a.warmup_path else None, a.until, a.open_timeout))
        figures["warm_up_s"] = round(time.monotonic() - t, 1)
        baseline = browser_load.settle(server) if server.pid else None
        print(f"[loadtest] warmed up in {figures['warm_up_s']} s; baseline {baseline}")
        if a.browser_click:
            page = BrowserPage(server, sc.path_for(sc.sessions), rounds=a.browser_click_rounds,
                               every_s=a.click_every).start()
        sampler = browser_load.TreeSampler(server.pid).start() if server.pid else None
        try:
            result, sessions = run_sync(sc_mod.run(
                server.url, sc, before_press=page.wait_ready if page else None,
                after_press=page.press if page else None))
        finally:
            if sampler is not None:
                sampler.stop()
        figures.update(result)
        if page is not None:
            figures["browser_page"] = page.finish()
            figures["browser_page_error"] = page.error
        figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
        if sampler is not None:
            figures.update(sampler.figures())
        if server.pid:
            records = browser_load.read_trace(trace)
            since = min((s.press_wall for s in sessions if s.press_wall), default=None)
            figures["click_in_server_s"] = browser_load.server_click_times(records)
            figures["click_phases"] = click_phases(figures["per_session"], records)
            figures["script_runs"] = browser_load.script_run_times(records, since)
            figures["thread_pool_peak"] = browser_load.thread_pool_peaks(records)
            figures["baseline"] = baseline
            figures["after_close"] = browser_load.after_close(server, a.grace)
        figures["server_alive"] = server.proc.poll() is None if server.proc else None
    finally:
        if page is not None and page.figures == {}:
            page.finish(10)
        if not a.url:
            code = server.stop()
    problems = check(figures, sc)
    print(f"\nLoad without browsers: {sc.sessions} sessions on {sc.path} "
          f"({figures['started']}, {figures['cpus']} cores, commit {figures['commit']})")
    if a.per_session:
        for p in figures["per_session"]:
            print("  ", json.dumps({k: v for k, v in p.items() if k != "by_kind"}))
    print(format_table(figures, sc))
    print("criteria: " + ("all met" if not problems else "NOT met: " + "; ".join(problems)))
    figures["problems"] = problems
    if a.json:
        Path(a.json).write_text(json.dumps(figures, default=str, indent=1))
    print(json.dumps({k: v for k, v in figures.items() if k != "per_session"}, default=str))
    if code not in (0, None, -15):
        print(f"[loadtest] streamlit exit code {code}; stderr tail:\n{server.stderr_tail()}")
    if a.keep:
        print(f"[loadtest] kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not problems else 1


CLICK_PHASES = (("to_server", "sent", "received"), ("waiting", "received", "started"),
                ("in_server", "received", "answered"), ("to_socket", "answered", "written"),
                ("to_driver", "written", "arrived"))


def click_phases(per_session: list[dict], records: list[dict]) -> dict:
    """Each protocol click split where its time went, from the driver's clock and the
    server's trace (ui/trace.py; one machine, one clock): sent → the request reaches the
    server's ``handle_backmsg`` (``to_server``: the socket and the server's event loop)
    → the answering script run reaches the toggle (``waiting``: for the session's run
    under way) → the answer built (``in_server``, which includes ``waiting``) → the loss
    chart handed to the session's socket (``to_socket``: the event loop's backlog; it can
    be handed over before ``answered`` is noted, so slightly negative) → its arrival in
    the driver (``to_driver``). A click is matched to the trace record of its session
    received between its sending and its answer's arrival."""
    answers = [r for r in records if r.get("received") and r.get("answered")]
    written: dict[str, list[float]] = {}
    for r in records:
        if r.get("what") == "written":
            written.setdefault(r["session"], []).append(r["written"])
    events, unmatched = [], 0
    for p in per_session:
        sid = p.get("session_id")
        for sent, arrived in p.get("click_walls", []):
            if arrived is None:
                continue
            hit = [r for r in answers if r["session"] == sid and sent - 0.05 <= r["received"] <= arrived + 0.05]
            if len(hit) != 1:
                unmatched += 1
                continue
            r = hit[0]
            after = r.get("started") or r["received"]
            w = next((t for t in sorted(written.get(sid, [])) if t >= after), None)
            events.append({"sent": sent, "received": r["received"], "started": r.get("started"),
                           "answered": r["answered"], "written": w, "arrived": arrived})
    out = {name: sc_mod.spread(e[b] - e[a] for e in events if e.get(a) and e.get(b))
           for name, a, b in CLICK_PHASES}
    out["matched"], out["unmatched"] = len(events), unmatched
    return out


def check(f: dict, sc: sc_mod.Scenario) -> list[str]:
    """What was not as it should be (empty: all met). Behaviour only; times are figures."""
    n, p = f["sessions_n"], []
    if f.get("sessions_open", 0) != n:
        p.append(f"{f.get('sessions_open', 0)}/{n} sessions opened")
    if sc.press:
        if f.get("sessions_pressed", 0) != n:
            p.append(f"{f.get('sessions_pressed', 0)}/{n} sessions pressed {sc.press!r}")
        if f.get("sessions_with_chart", 0) != n:
            p.append(f"{f.get('sessions_with_chart', 0)}/{n} sessions got a chart after the press")
        if f.get("sessions_done", 0) != n:
            p.append(f"{f.get('sessions_done', 0)}/{n} sessions reached {sc.until or 'a chart'!r}")
    for key in ("errors", "client_errors", "disconnects"):
        if f.get(key):
            p.append(f"{f[key]} {key.replace('_', ' ')}")
    if f.get("clicks_unanswered"):
        p.append(f"{f['clicks_unanswered']} clicks unanswered")
    if f.get("server_alive") is False:
        p.append("the server died")
    if f.get("browser_page_error"):
        p.append(f"the Chromium page: {f['browser_page_error']}")
    b, a = f.get("baseline"), f.get("after_close")
    if b and a:
        if b.get("thread_kinds") and a.get("thread_kinds"):
            p += browser_load.thread_problems(b["thread_kinds"], a["thread_kinds"],
                                              f.get("thread_pool_peak"))
        if len(a["children"]) > len(b["children"]):
            p.append(f"child processes {len(b['children'])} → {len(a['children'])} after close")
        if a["server_rss_mb"] > b["server_rss_mb"] + RSS_SLACK_MB:
            p.append(f"server RSS {b['server_rss_mb']:.0f} → {a['server_rss_mb']:.0f} MB after close")
        if a["server_rss_mb_later"] > a["server_rss_mb"] + 30:
            p.append(f"server RSS still growing after close: {a['server_rss_mb']:.0f} → "
                     f"{a['server_rss_mb_later']:.0f} MB")
    return p


def _s(d: dict | None, unit: str = "s") -> str:
    if not d or not d.get("n"):
        return "—"
    return f"{d['median']} / {d['p95']} / {d['max']} {unit} (n={d['n']})"


def format_table(f: dict, sc: sc_mod.Scenario) -> str:
    n = f["sessions_n"]
    rows = [
        ("load average 1/5/15 min, before → after", f"{f['load_before']} → {f.get('load_after')}"),
        ("sessions open / pressed / with a chart / done", (
            f"{f.get('sessions_open')} / {f.get('sessions_pressed')} / {f.get('sessions_with_chart')} / "
            f"{f.get('sessions_done')} of {n}")),
        ("open all sessions", f"{f.get('open_all_s')} s; each, median / p95 / max: {_s(f.get('open_s'))}"),
        (f"press {sc.press!r} in all", f"{f.get('press_all_s')} s"),
        ("press → its run starts (new_session), median / p95 / max", _s(f.get("run_start_s"))),
        ("press → first element drawn, median / p95 / max", _s(f.get("first_delta_s"))),
        ("press → first chart, median / p95 / max", _s(f.get("first_chart_s"))),
        (f"press → {sc.until!r}, median / p95 / max", _s(f.get("until_s"))),
        *[(f"press → {w!r} (seen in {f['sessions_watch_seen'][w]})", _s(v))
          for w, v in (f.get("watch_s") or {}).items()],
        ("press → all done", f"{f.get('press_to_all_done_s')} s"),
        ("new charts per session (max in the page), median / p95 / max", _s(f.get("new_charts_max"), "")),
        ("clicks answered (protocol), median / p95 / max", _s(f.get("clicks_s"))
         + f", unanswered {f.get('clicks_unanswered', 0)}"),
        ("errors / client errors / disconnects",
         f"{f.get('errors')} / {f.get('client_errors')} / {f.get('disconnects')}"),
        ("messages per session, median / p95 / max", _s(f.get("msgs_per_session"), "")),
        ("kB per session, median / p95 / max", _s(f.get("kb_per_session"), "kB")),
        ("received in all", (f"{f.get('msgs_total')} messages, {f.get('mb_total')} MB; "
                             f"{f.get('reruns_sent')} rerun requests sent")),
        ("driver: CPU (cores) / per session / per message", (
            f"{f.get('driver_cpu_cores')} / {f.get('driver_cpu_ms_per_session')} ms / "
            f"{f.get('driver_cpu_us_per_msg')} µs")),
        ("driver: RSS before → peak (per session)", (
            f"{f.get('driver_rss_mb_before')} → {f.get('driver_rss_mb_peak')} MB "
            f"({f.get('driver_mb_per_session')} MB)")),
    ]
    if "peak_server_rss_mb" in f:
        rows += [
            ("server: CPU server / trainings / tree (cores)", (
                f"{f['cpu_server_cores']:.2f} / {f['cpu_children_cores']:.2f} / {f['cpu_tree_cores']:.2f} "
                f"over {f['cpu_wall_s']} s; machine busy {f['cpu_machine_busy_pct']:.0f} %")),
            ("server: peak RSS alone / PSS with trainings",
             f"{f['peak_server_rss_mb']:.0f} / {f['peak_tree_pss_mb']:.0f} MB"),
            ("server: peak threads / child processes", f"{f['peak_threads']} / {f['peak_children']}"),
        ]
    srv = f.get("click_in_server_s") or {}
    if srv.get("n"):
        rows.append(("clicks in the server (trace): received → answered, median / max",
                     f"{srv['median']} / {srv['max']} s (n={srv['n']})"))
    ph = f.get("click_phases") or {}
    if ph.get("matched"):
        rows.append(("click phases, median/max s: " + " | ".join(n for n, _, _ in CLICK_PHASES),
                     " | ".join(f"{(ph.get(n) or {}).get('median')}/{(ph.get(n) or {}).get('max')}"
                                for n, _, _ in CLICK_PHASES) + f" (n={ph['matched']})"))
    for kind, r in (f.get("script_runs") or {}).items():
        if r["wall"]["n"]:
            rows.append((f"server: {kind} runs from the press on, wall / CPU median (n)",
                         f"{r['wall']['median']} / {r['cpu']['median']} s (n={r['wall']['n']})"))
    b, a = f.get("baseline"), f.get("after_close")
    if b and a:
        rows += [
            ("server threads baseline → after close", f"{b['threads']} → {a['threads']}"),
            ("server children baseline → after close", f"{len(b['children'])} → {len(a['children'])}"),
            ("server RSS baseline → after close → +3 s", (
                f"{b['server_rss_mb']:.0f} → {a['server_rss_mb']:.0f} → {a['server_rss_mb_later']:.0f} MB")),
        ]
    bp = f.get("browser_page")
    if bp:
        rows.append(("Chromium page: Train → first chart drawn / finished",
                     f"{bp.get('first_chart_s')} / {bp.get('finish_s')} s"))
        rows.append(("Chromium page: clicks drawn, median / p95 / max",
                     _s(sc_mod.spread(bp.get("clicks_s", []))) +
                     f", failed {len(bp.get('click_failures', []))}"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)

if __name__ == "__main__":
    sys.exit(main())

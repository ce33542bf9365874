"""Load test: many browser sessions train at once against one ``streamlit run`` server.

    .venv/bin/python -m tests.e2e.load --sessions 20          # from the repo root
    .venv/bin/python -m tests.e2e.load --sessions 4 --steps 100

One headless Chromium, one browser context (a separate session, like a separate
visitor) per session. Every session opens ``/train?<small config>`` and presses
**Train** at (nearly) the same moment; at most ``--max-trainings`` train at once,
the others wait in the queue the page shows. While they train, each page's
"Log-scale loss" toggle is clicked in turn and the time until the redrawn loss
chart shows its log axis is taken (a click answered by the server, not just by
the browser). When every session has finished, all contexts are closed and the
server is watched until its released resources are back.

Figures (a table, then one JSON line):

* ``train_ack_s``     Train pressed → the server's answer (``run=<id>`` in the URL)
* ``server_chart_s``  Train pressed → the first message with the loss chart arrives
                      in the page (the server's part of the next figure)
* ``first_chart_s``   Train pressed → first chart drawn on the page (min / median / max)
* ``live_charts_s``   Train pressed → loss chart + heatmaps (≥ 4 charts; needs the first probe)
* ``queue_wait_s``    Train pressed → the page says "Status: running"
* ``finish_s``        Train pressed → the page says "Status: finished"
* ``click_s``         toggle clicked → redrawn chart in the DOM (a few clicks per page)
* ``click_server_s``  toggle clicked → the redrawn loss chart's message arrives
                      (server + network; ``click_s`` adds the browser's drawing)
* click phases        each click split where its time went (:func:`click_phases`):
                      to the page's click event, the page's request, the server's
                      event loop, the script run, back to the socket, to the page,
                      drawn; the slowest clicks are printed phase by phase
* script runs         wall and CPU time of the server's whole-page and fragment runs
                      from the Train presses on (wall ≫ CPU: waiting for a core or
                      the GIL, not working)
* peak RSS of the server alone and of the server + its training processes
  (``tree``: the sum of RSS, which counts shared library pages once per process;
  and the sum of PSS, which splits them, i.e. what the tree really holds; the
  1.5 GB criterion is checked on the server's RSS and the tree's PSS), from /proc
  every 0.25 s
* CPU share: CPU seconds / wall seconds of the server, of its child processes,
  and of both, in cores and in % of the machine's cores (/proc/<pid>/stat); also
  of the browser (which here shares the server's cores) and how busy the whole
  machine was (/proc/stat)
* after all tabs closed: server threads, child processes and RSS against the
  baseline taken before the load (after one warm-up training). Threads are told
  apart by name, from the thread census in the server's trace (ui/trace.py): the
  threads the app and its sessions start (``rnnlab-*`` relays, timers and pipes,
  ``ScriptRunner.scriptThread``, Streamlit's own) must be back to their baseline
  counts; the server's thread pools, whose idle threads are kept for reuse (AnyIO's
  worker threads, which run Starlette's sync endpoints and are pruned only lazily,
  when a later call finds them idle for 10 s; asyncio's default executor), may keep
  threads but never more than the cap each has by construction
  (:func:`thread_pool_caps`)

Times come from an observer script in each page (``Date.now()`` every 100 ms, and a
timestamp on each WebSocket message), so one slow Playwright round trip does not
blur them; the status line itself is redrawn once a second, so status times are
±1 s.

The machine's load average is printed before and after: on a shared machine
the times mean little without it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__:
    from tests.e2e import harness as h
else:  # imported by the tests (tests/e2e on sys.path) or run as a file
    import harness as h  # type: ignore[no-redef]

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
NCPU = os.cpu_count() or 1

CLICK_LIMIT_S = 2.0          # "a click answered within 2 s"
RSS_LIMIT_MB = 1536.0        # "resident memory stays under 1.5 GB"
TERMINAL = ("finished", "stopped", "diverged", "interrupted")

# A small training: a few seconds each on a shared 2-core machine, with probes early
# enough that the heatmaps (charts 2..6) appear soon after the training starts.
LOAD_CONFIG = dict(h.TINY, steps=150, seq_len=10, hidden_size=8, probe_every=5,
                   eval_every=50, eval_size=64)

# --------------------------------------------------------------------------- /proc


def proc_stat(pid: int) -> dict | None:
    """Fields of /proc/<pid>/stat we use, or None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    rest = raw.rsplit(")", 1)[1].split()  # rest[k] is field k + 3 of proc(5)
    return {
        "state": rest[0], "ppid": int(rest[1]),
        "utime": int(rest[11]), "stime": int(rest[12]),
        "cutime": int(rest[13]), "cstime": int(rest[14]),
        "threads": int(rest[17]), "rss_kb": int(rest[21]) * PAGE_KB,
    }


def proc_table() -> dict[int, dict]:
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st is not None:
                table[int(entry.name)] = st
    return table


def descendants(pid: int, table: dict[int, dict] | None = None) -> list[int]:
    """Every live (non-zombie) process below ``pid``."""
    table = proc_table() if table is None else table
    kids: dict[int, list[int]] = {}
    for p, st in table.items():
        kids.setdefault(st["ppid"], []).append(p)
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        if table[p]["state"] not in "ZX":
            out.append(p)
        todo.extend(kids.get(p, []))
    return sorted(out)


def children(pid: int, table: dict[int, dict] | None = None) -> list[int]:
    table = proc_table() if table is None else table
    return sorted(p for p, st in table.items() if st["ppid"] == pid and st["state"] not in "ZX")


def gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting to be reaped counts as exited)."""
    st = proc_stat(pid)
    return st is None or st["state"] in "ZX"


def status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM, ...)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_cpu_ticks(pid: int, table: dict[int, dict]) -> tuple[int, int]:
    """(server's own CPU ticks, ticks of the whole tree).

    The tree = the server + children it has reaped (cutime/cstime) + every live
    descendant (with what they reaped). A child's ticks move from "live" to the
    server's cutime when it is reaped, so the sum only grows.
    """
    st = table.get(pid)
    if st is None:
        return 0, 0
    own = st["utime"] + st["stime"]
    total = own + st["cutime"] + st["cstime"]
    for p in descendants(pid, table):
        d = table[p]
        total += d["utime"] + d["stime"] + d["cutime"] + d["cstime"]
    return own, total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v[:8]) - idle, sum(v[:8])


def tree_snapshot(pid: int) -> dict:
    """Server threads, RSS, and its child processes, now."""
    table = proc_table()
    st = table.get(pid) or {}
    desc = descendants(pid, table)
    return {
        "threads": st.get("threads"),
        "server_rss_mb": (status_kb(pid, "VmRSS") or 0) / 1024,
        "tree_rss_mb": ((status_kb(pid, "VmRSS") or 0) + sum(table[p]["rss_kb"] for p in desc)) / 1024,
        "children": children(pid, table),
    }


def deprioritize(pids, nice: int) -> int:
    """Lower the CPU priority of ``pids`` (nice value, and the nice value of their
    scheduler autogroup: Playwright starts Chromium in its own session, and with
    autogroups a session's processes share one CPU weight). Returns how many
    processes were changed; failures are ignored (the figures then say so)."""
    def group(pid):
        try:
            return Path(f"/proc/{pid}/autogroup").read_text().split()[0]
        except (OSError, IndexError):
            return None

    mine = {group(os.getpid()), None}  # never touch the group this process (and the server) is in
    changed = 0
    for pid in pids:
        try:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
            changed += 1
        except OSError:
            continue
        if group(pid) not in mine:
            try:
                Path(f"/proc/{pid}/autogroup").write_text(str(nice))
            except OSError:
                pass
    return changed


def deprioritize_browser(nice: int, exclude_root: int | None = None) -> int:
    """Deprioritize every process below this one (Playwright's driver and Chromium)
    except the server's tree rooted at ``exclude_root``.

    On a real deployment the browsers run on the visitors' machines; here 20
    Chromium renderers redrawing charts share the server's two cores, so they run
    at a lower priority to leave the cores to the server and its trainings first.
    Renderers started later are forked from Chromium's zygote and inherit it."""
    if nice <= 0:
        return 0
    return deprioritize(browser_pids(exclude_root), nice)


def browser_pids(exclude_root: int | None = None) -> list[int]:
    """Every process below this one (Playwright's driver and Chromium) except the
    server's tree rooted at ``exclude_root``."""
    table = proc_table()
    skip = set()
    if exclude_root is not None:
        skip = set(descendants(exclude_root, table)) | {exclude_root}
    return [p for p in descendants(os.getpid(), table) if p not in skip]


def confine_browser(cpus: set[int] | None, exclude_root: int | None = None) -> int:
    """Pin every process below this one (Playwright's driver and Chromium) except the
    server's tree to ``cpus`` (e.g. {1}); None changes nothing. Returns how many
    processes were pinned.

    On a deployment the browser runs on the visitor's machine; here it shares the
    server's two cores. Confined to one of them it can no longer take CPU from the
    core the training runs on, while the server and the training stay free to use
    both: what is left is the cost of the server itself. Renderers started later
    are forked from Chromium's zygote and inherit the mask; call again after new
    pages to be sure."""
    if not cpus:
        return 0
    pinned = 0
    for pid in browser_pids(exclude_root):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):  # every thread: the mask is per thread
                os.sched_setaffinity(int(tid), cpus)
            pinned += 1
        except OSError:
            continue
    return pinned


def parse_cpus(text: str | None) -> set[int] | None:
    """"1" or "0,1" → {1} / {0, 1}; empty → None. Refuses CPUs this machine lacks."""
    if not text:
        return None
    cpus = {int(c) for c in text.split(",") if c.strip()}
    have = os.sched_getaffinity(0)
    if not cpus <= have:
        raise SystemExit(f"--browser-cpus {text}: this machine has CPUs {sorted(have)}")
    return cpus


class TreeSampler:
    """Samples the server's process tree every ``interval`` s on a thread (/proc only)."""

    def __init__(self, pid: int, interval: float = 0.25, pss_every: int = 4,
                 browser_root: int | None = None):
        self.pid, self.interval, self.pss_every = pid, interval, pss_every
        # Processes below browser_root (default: this process) other than the server's
        # tree are the browser (Playwright's driver and Chromium): their CPU is reported
        # too, since here they share the server's cores.
        self.browser_root = os.getpid() if browser_root is None else browser_root
        self._browser_ticks: dict[int, int] = {}
        self.peak_server_rss_kb = self.peak_tree_rss_kb = self.peak_tree_pss_kb = 0
        self.peak_children = self.peak_threads = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self.t0 = self.t1 = None
        self.cpu0 = self.cpu1 = (0, 0)
        self.machine0 = self.machine1 = (0, 0)
        self.browser0 = self.browser1 = 0

    def _browser_cpu(self, table: dict[int, dict]) -> int:
        """CPU ticks of the browser processes, including those that have exited
        (the largest value seen for each pid is kept)."""
        server_tree = set(descendants(self.pid, table)) | {self.pid}
        for p in descendants(self.browser_root, table):
            if p not in server_tree:
                st = table[p]
                self._browser_ticks[p] = max(self._browser_ticks.get(p, 0),
                                             st["utime"] + st["stime"])
        return sum(self._browser_ticks.values())

    def start(self) -> TreeSampler:
        self.t0 = time.monotonic()
        table = proc_table()
        self.cpu0, self.machine0 = tree_cpu_ticks(self.pid, table), machine_ticks()
        self.browser0 = self._browser_cpu(table)
        self._thread.start()
        return self

    def stop(self) -> TreeSampler:
        self._stop.set()
        self._thread.join(5)
        self.t1 = time.monotonic()
        table = proc_table()
        self.cpu1, self.machine1 = tree_cpu_ticks(self.pid, table), machine_ticks()
        self.browser1 = self._browser_cpu(table)
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            table = proc_table()
            st = table.get(self.pid)
            if st is None:
                return
            desc = descendants(self.pid, table)
            server_kb = st["rss_kb"]
            self.peak_server_rss_kb = max(self.peak_server_rss_kb, server_kb)
            self.peak_tree_rss_kb = max(self.peak_tree_rss_kb,
                                        server_kb + sum(table[p]["rss_kb"] for p in desc))
            if self.samples % self.pss_every == 0:
                self.peak_tree_pss_kb = max(self.peak_tree_pss_kb,
                                            pss_kb(self.pid) + sum(pss_kb(p) for p in desc))
            self.peak_children = max(self.peak_children, len(children(self.pid, table)))
            self.peak_threads = max(self.peak_threads, st["threads"])
            if self.samples % self.pss_every == 0:
                self._browser_cpu(table)
            self.samples += 1
            self._stop.wait(self.interval)

    def figures(self) -> dict:
        wall = max(1e-9, (self.t1 or time.monotonic()) - self.t0)
        own = (self.cpu1[0] - self.cpu0[0]) / CLK_TCK
        total = (self.cpu1[1] - self.cpu0[1]) / CLK_TCK
        hwm = status_kb(self.pid, "VmHWM") or 0
        busy = self.machine1[0] - self.machine0[0]
        machine_pct = 100 * busy / max(1, self.machine1[1] - self.machine0[1])
        browser = (self.browser1 - self.browser0) / CLK_TCK
        return {
            "peak_server_rss_mb": round(max(self.peak_server_rss_kb, hwm) / 1024, 1),
            "peak_tree_rss_mb": round(self.peak_tree_rss_kb / 1024, 1),
            "peak_tree_pss_mb": round(self.peak_tree_pss_kb / 1024, 1),
            "peak_children": self.peak_children,
            "peak_threads": self.peak_threads,
            "cpu_wall_s": round(wall, 1),
            "cpu_server_cores": round(own / wall, 2),
            "cpu_children_cores": round((total - own) / wall, 2),
            "cpu_tree_cores": round(total / wall, 2),
            "cpu_tree_share_pct": round(100 * total / wall / NCPU, 1),
            "cpu_browser_cores": round(browser / wall, 2),
            "cpu_machine_busy_pct": round(machine_pct, 1),
        }


# --------------------------------------------------------------------------- browser side

# Runs in every page of a context (add_init_script), before the app's own scripts:
# timestamps (ms since the epoch) of chart counts, status lines, queue text, errors.
OBSERVER_JS = r"""
(() => {
  if (window.__obs) return;
  const re = /Status:\s*(queued|running|finished|stopped|diverged|interrupted)/;
  const o = window.__obs = {charts: [], status: [], queue: null, queuePosMax: 0,
                            errors: [], conn: [], lastCharts: -1, lastStatus: null, lastConn: null,
                            wsMsgs: 0, wsLoss: [], domClicks: [], wsSends: []};
  // When did a click reach the page, and when did the page send its rerun request?
  // (With the click's server-side trace, this splits a slow click into its parts.)
  document.addEventListener("click", () => {
    if (o.domClicks.length < 1000) o.domClicks.push(Date.now());
  }, true);
  // When did the server's messages arrive (as opposed to when the page drew them)?
  // Messages with the loss chart's spec are timestamped, with whether its axis is log.
  const Orig = window.WebSocket;
  if (Orig) {
    const dec = new TextDecoder("latin1");
    class ObservedWebSocket extends Orig {
      send(data) {
        if (o.wsSends.length < 5000) o.wsSends.push(Date.now());
        return super.send(data);
      }
      constructor(...args) {
        super(...args);
        this.addEventListener("message", (ev) => {
          o.wsMsgs += 1;
          if (!(ev.data instanceof ArrayBuffer) || o.wsLoss.length >= 5000) return;
          const t = dec.decode(ev.data);
          if (t.includes("train (smoothed)")) o.wsLoss.push([Date.now(), t.includes("loss (log)")]);
        });
      }
    }
    window.WebSocket = ObservedWebSocket;
  }
  setInterval(() => {
    const now = Date.now();
    const n = document.querySelectorAll('[data-testid="stVegaLiteChart"]:not(.st-key-task_example *)').length;
    if (n !== o.lastCharts) { o.charts.push([now, n]); o.lastCharts = n; }
    for (const el of document.querySelectorAll('[data-testid="stMarkdownContainer"]')) {
      const t = el.textContent || "";
      const m = re.exec(t);
      if (!m) continue;
      if (m[1] !== o.lastStatus) { o.status.push([now, m[1]]); o.lastStatus = m[1]; }
      if (t.includes("waiting for a free training slot")) {
        if (!o.queue) o.queue = [now, t.slice(0, 200)];
        const q = /#(\d+) in the queue/.exec(t);
        if (q) o.queuePosMax = Math.max(o.queuePosMax, parseInt(q[1], 10));
      }
      break;
    }
    const bad = document.querySelectorAll('[data-testid="stException"], [data-testid="stAlertContentError"]');
    for (const el of bad) {
      const t = (el.textContent || "").slice(0, 500);
      if (!o.errors.some(e => e[1] === t)) o.errors.push([now, t]);
    }
    if (!o.runAt && /[?&]run=/.test(location.search)) o.runAt = now;
    const app = document.querySelector('[data-testid="stApp"]');
    const c = app ? app.getAttribute("data-test-connection-state") : null;
    if (c && c !== o.lastConn) { o.conn.push([now, c]); o.lastConn = c; }
  }, 100);
})();
"""

LOG_AXIS_JS = """(on) => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .some(e => (e.textContent || '').includes('loss (log)')) === on"""


@dataclass
class Session:
    index: int
    context: object
    page: object
    t_click: float | None = None            # time.time() just before Train was clicked
    run_id: str | None = None
    clicks: list[float] = field(default_factory=list)      # answered clicks, seconds
    click_times: list[tuple[float, bool]] = field(default_factory=list)  # (time.time(), log on?)
    click_failures: list[str] = field(default_factory=list)
    click_drawn: list[float | None] = field(default_factory=list)  # time.time(), per click
    page_errors: list[str] = field(default_factory=list)   # JavaScript errors
    obs: dict = field(default_factory=dict)
    log_on: bool = False

    def poll(self) -> dict:
        try:
            self.obs = self.page.evaluate("() => window.__obs") or self.obs
        except Exception:  # noqa: BLE001 - page mid-navigation; keep the last copy
            pass
        if self.run_id is None:
            self.run_id = h.run_id_from_url(self.page.url)
        return self.obs

    @property
    def last_status(self) -> str | None:
        return self.obs.get("lastStatus")

    def _first(self, series: str, pred) -> float | None:
        """Seconds from the Train click to the first observation matching ``pred``."""
        if self.t_click is None:
            return None
        for t_ms, v in self.obs.get(series, []):
            if t_ms >= self.t_click * 1000 - 50 and pred(v):
                return round(t_ms / 1000 - self.t_click, 2)
        return None

    def disconnects(self) -> list[str]:
        """Connection states other than CONNECTED after the first CONNECTED (the
        states before it are the page's normal start-up)."""
        out, connected = [], False
        for _, c in self.obs.get("conn", []):
            if c == "CONNECTED":
                connected = True
            elif connected:
                out.append(c)
        return out

    def server_click_answers(self) -> list[float]:
        """Seconds from each click to the first server message with the loss chart
        redrawn accordingly (arrival in the page, before drawing)."""
        out = []
        for t_click, want in self.click_times:
            for t_ms, is_log in self.obs.get("wsLoss", []):
                if t_ms >= t_click * 1000 and is_log == want:
                    out.append(round(t_ms / 1000 - t_click, 2))
                    break
        return out

    def click_events(self) -> list[dict]:
        """Each click's moments (``time.time()``): ``asked`` (Playwright's click called),
        ``page`` (the click event reached the page), ``sent`` (the page's next WebSocket
        send: its rerun request), ``arrived`` (the redrawn loss chart's message reached
        the page), ``drawn`` (the chart shows the new axis); None when not seen."""
        def first(series, after, pred=lambda v: True):
            for item in self.obs.get(series, []):
                t_ms, v = (item if isinstance(item, list) else (item, None))
                if after is not None and t_ms >= after * 1000 - 1 and pred(v):
                    return t_ms / 1000
            return None
        out = []
        for (asked, want), drawn in zip(self.click_times, self.click_drawn):
            page = first("domClicks", asked)
            sent = first("wsSends", page)
            arrived = first("wsLoss", asked, lambda is_log, want=want: is_log == want)
            out.append({"session": self.index, "asked": asked, "page": page, "sent": sent,
                        "arrived": arrived, "drawn": drawn})
        return out

    def figures(self) -> dict:
        queue = self.obs.get("queue")
        server_clicks = self.server_click_answers()
        return {
            "session": self.index,
            "run_id": self.run_id,
            "train_ack_s": (round(self.obs["runAt"] / 1000 - self.t_click, 2)
                            if self.obs.get("runAt") and self.t_click else None),
            "server_chart_s": self._first("wsLoss", lambda _: True),
            "first_chart_s": self._first("charts", lambda n: n >= 1),
            "live_charts_s": self._first("charts", lambda n: n >= 4),
            "max_charts": max((n for _, n in self.obs.get("charts", [])), default=0),
            # no "running" seen (a very short run between two redraws): its end instead
            "queue_wait_s": self._first("status", lambda s: s == "running")
            or self._first("status", lambda s: s in TERMINAL),
            "finish_s": self._first("status", lambda s: s == "finished"),
            "final_status": self.last_status,
            "queued_text": queue[1] if queue else None,
            "queue_pos_max": self.obs.get("queuePosMax", 0),
            "click_s_max": round(max(self.clicks), 2) if self.clicks else None,
            "click_server_s_max": max(server_clicks) if server_clicks else None,
            "click_failures": self.click_failures,
            "app_errors": [e[1] for e in self.obs.get("errors", [])],
            "disconnects": self.disconnects()[:5],
            "page_errors": self.page_errors[:5],
        }


def open_sessions(browser, server, n: int, config: dict, timeout: float = 120.0) -> list[Session]:
    """``n`` contexts on /train?<config> (session i with seed + i: n distinct trainings),
    each ready to press Train."""
    sessions = []
    for i in range(n):
        ctx = browser.new_context(viewport=h.VIEWPORT)
        ctx.set_default_timeout(30_000)
        ctx.add_init_script(OBSERVER_JS)
        pg = ctx.new_page()
        s = Session(i, ctx, pg)
        pg.on("pageerror", lambda exc, s=s: s.page_errors.append(str(exc)))
        sessions.append(s)
        # A seed of its own per session: identical configs now share one training (issue
        # 18), and this test is about N trainings, the slots and their queue.
        pg.goto(h.url_for(server, "train", dict(config, seed=config.get("seed", 0) + i)),
                wait_until="domcontentloaded",
                timeout=timeout * 1000)
    for s in sessions:  # all pages load in parallel; wait for each in turn
        btn = h.train_button(s.page)
        h.wait_until(s.page, lambda btn=btn: btn.count() > 0 and btn.first.is_visible()
                     and btn.first.is_enabled(), timeout, f"session {s.index}: Train button")
        h.check_navigation(s.page, "train")
        h.try_wait_idle(s.page, 10)
    return sessions


def click_train_all(sessions: list[Session]) -> None:
    """Press Train in every session, one right after the other (the server's answer,
    ``run=<id>`` in the URL, is picked up later by :meth:`Session.poll`)."""
    for s in sessions:
        s.t_click = time.time()
        # Not waiting for the navigation the click starts (run=<id> in the URL): with
        # twenty pages drawing on two cores, that wait alone can exceed Playwright's
        # timeout although the server has answered.
        h.train_button(s.page).first.click(no_wait_after=True)


def log_toggle(s: Session):
    return h.widget(s.page, "stCheckbox", "Log-scale loss").first


def ready_for_click(s: Session) -> bool:
    """The page has drawn its run (toggle and loss chart) at least once."""
    try:
        return bool(s.run_id) and log_toggle(s).is_visible() and s.page.locator(h.CHART).first.is_visible()
    except Exception:  # noqa: BLE001 - mid re-render
        return False


def click_log_toggle(s: Session, timeout: float = 20.0) -> float | None:
    """Click "Log-scale loss"; seconds until the redrawn loss chart shows (or drops) its
    log axis, i.e. until the server has answered the click. None if not answered."""
    tog = log_toggle(s)
    want = not s.log_on
    try:
        t0 = time.monotonic()
        s.click_times.append((time.time(), want))
        tog.click(timeout=timeout * 1000)
        s.page.wait_for_function(LOG_AXIS_JS, arg=want, polling=50, timeout=timeout * 1000)
    except Exception as e:  # noqa: BLE001 - recorded as a failure, reported by the caller
        s.click_failures.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        s.click_drawn.append(None)
        try:  # answered late or not at all: follow the toggle's own state
            s.log_on = tog.locator("input").is_checked(timeout=5000)
        except Exception:  # noqa: BLE001
            pass
        return None
    dt = time.monotonic() - t0
    s.click_drawn.append(time.time())
    s.log_on = want
    s.clicks.append(dt)
    return dt


def read_trace(path: Path) -> list[dict]:
    """The records of the server's trace file (ui/trace.py); [] if there is none."""
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except (OSError, ValueError):
        return []


def trace_figures(sessions: list[Session], path: Path) -> dict:
    """The figures taken from the server's trace, read once: the server's part of each
    click, each click's phases, the script runs from the first Train press on, and the
    most threads each of the server's thread pools had (:func:`thread_pool_peaks`)."""
    trace = read_trace(path)
    since = min((s.t_click for s in sessions if s.t_click), default=None)
    return {"click_in_server_s": server_click_times(trace),
            "click_phases": click_phases(sessions, trace),
            "script_runs": script_run_times(trace, since),
            "thread_pool_peak": thread_pool_peaks(trace)}


def server_click_times(trace: list[dict]) -> dict:
    """The server's own part of each click (ui/trace.py): request received → answer
    built, from the server's trace records; the browsers' work is not in it."""
    times, slow = [], []
    for rec in trace:
        if rec.get("received"):
            times.append(rec["answered"] - rec["received"])
            if rec.get("started"):
                slow.append((round(rec["answered"] - rec["received"], 2),
                             round(rec["started"] - rec["received"], 2)))
    out = _spread(times)
    out["over_limit"] = sum(1 for t in times if t > CLICK_LIMIT_S)
    out["slowest"] = sorted(slow, reverse=True)[:5]  # (total, waiting to start) of the slowest
    return out


def script_run_times(trace: list[dict], since: float | None = None) -> dict:
    """Wall and CPU time of the server's script runs from ``since`` on (ui/trace.py), for
    whole-page runs and fragment runs apart: a run that needs 60 ms of CPU and takes
    3 s of wall time waited for the GIL or a core, not for its own work."""
    out = {}
    runs = [r for r in trace if r.get("what") == "run" and (since is None or r["started"] >= since)]
    for kind in ("full", "fragment"):
        rs = [r for r in runs if r["kind"] == kind]
        out[kind] = {"wall": _spread([r["wall"] for r in rs]), "cpu": _spread([r["cpu"] for r in rs]),
                     "cpu_total_s": round(sum(r["cpu"] for r in rs), 2)}
    return out


PHASES = (("to_page", "asked", "page"), ("page_to_send", "page", "sent"),
          ("send_to_server", "sent", "received"), ("in_server", "received", "answered"),
          ("to_socket", "answered", "written"), ("socket_to_page", "written", "arrived"),
          ("arrived_to_drawn", "arrived", "drawn"))


def click_phases(sessions: list[Session], trace: list[dict]) -> dict:
    """Where the time of each click went: Playwright → the page's click event
    (``to_page``: the browser's actionability checks and input dispatch), → the page's
    rerun request sent (``page_to_send``), → the server's ``handle_backmsg``
    (``send_to_server``: the socket and the server's event loop), → the answer built
    (``in_server``), → the redrawn chart handed to the session's WebSocket on the server's
    event loop (``to_socket``), → its message in the page (``socket_to_page``: the socket
    and the page's own main thread), → drawn.

    The load test clicks one page at a time and waits for the answer, so the server's
    trace record of a click is the one received between the page's send and the
    answer's arrival; its answer is the first loss chart the server hands to that
    session's socket after the answering run reached the toggle. Same machine, so
    browser and server clocks agree."""
    written = sorted((r for r in trace if r.get("written")), key=lambda r: r["written"])
    trace = sorted((r for r in trace if r.get("received")), key=lambda r: r["received"])
    events = sorted((e for s in sessions for e in s.click_events()), key=lambda e: e["asked"])
    for e in events:
        if e["sent"] and e["arrived"]:
            hit = [r for r in trace if e["sent"] - 0.05 <= r["received"] <= e["arrived"] + 0.05]
            if len(hit) == 1:
                e["received"], e["answered"] = hit[0]["received"], hit[0]["answered"]
                e["written"] = next((w["written"] for w in written
                                     if w["session"] == hit[0]["session"]
                                     and w["written"] >= (hit[0].get("started")
                                                          or hit[0]["received"])), None)
    out: dict = {}
    for name, a, b in PHASES:
        out[name] = _spread([e[b] - e[a] for e in events if e.get(a) and e.get(b)])
    total = [e for e in events if e.get("drawn")]
    slowest = sorted(total, key=lambda e: e["drawn"] - e["asked"], reverse=True)[:3]
    out["slowest"] = [
        {"session": e["session"], "total": round(e["drawn"] - e["asked"], 2),
         **{name: (round(e[b] - e[a], 2) if e.get(a) and e.get(b) else None)
            for name, a, b in PHASES}}
        for e in slowest]
    return out


def all_done(sessions: list[Session]) -> bool:
    """Every session has ended its training and drawn what it ends with: the status
    line is drawn before the charts below it, so a page that has just said
    "finished" gets up to ``SETTLE_CHARTS_S`` to draw its final charts."""
    now = time.time() * 1000
    for s in sessions:
        if s.last_status not in TERMINAL:
            return False
        charts = s.obs.get("charts") or [[0, 0]]
        ended_at = (s.obs.get("status") or [[now]])[-1][0]
        if charts[-1][1] < 4 and now - ended_at < SETTLE_CHARTS_S * 1000:
            return False
    return True


SETTLE_CHARTS_S = 15.0


def run_load(browser, server, n: int, config: dict | None = None, *,
             finish_timeout: float | None = None, max_click_rounds: int = 3,
             browser_nice: int = 0, browser_cpus: set[int] | None = None,
             log=print) -> tuple[dict, list[Session]]:
    """Open ``n`` sessions, press Train in all, click toggles while they train, wait
    until every session has finished. Returns (figures, sessions); the caller closes
    the sessions' contexts (see :func:`close_sessions`)."""
    config = dict(config or LOAD_CONFIG)
    finish_timeout = finish_timeout or 120 + 20 * n
    figures: dict = {"sessions_n": n, "steps": config["steps"], "max_trainings": server.max_trainings,
                     "load_1m_before": os.getloadavg()[0], "browser_nice": browser_nice,
                     "browser_cpus": sorted(browser_cpus) if browser_cpus else None}
    deprioritize_browser(browser_nice, exclude_root=server.pid)
    confine_browser(browser_cpus, exclude_root=server.pid)
    sampler = TreeSampler(server.pid).start()
    sessions: list[Session] = []
    try:
        t0 = time.monotonic()
        sessions = open_sessions(browser, server, n, config)
        figures["open_all_s"] = round(time.monotonic() - t0, 1)
        deprioritize_browser(browser_nice, exclude_root=server.pid)  # the new renderers
        confine_browser(browser_cpus, exclude_root=server.pid)
        log(f"[load] {n} sessions open in {figures['open_all_s']} s; pressing Train in each")
        t_click0 = time.monotonic()
        click_train_all(sessions)
        log(f"[load] Train pressed in all {n} sessions in {time.monotonic() - t_click0:.1f} s")
        rounds = 0
        deadline = time.monotonic() + finish_timeout
        while time.monotonic() < deadline:
            for s in sessions:
                s.poll()
            if all_done(sessions):
                break
            if rounds < max_click_rounds:
                # One click per session while trainings run and others wait in the queue
                # (in the sessions whose page has drawn its run; the others next round).
                ready = [s for s in sessions if ready_for_click(s)]
                if not ready:
                    time.sleep(1.0)
                    continue
                lat = [click_log_toggle(s) for s in ready]
                rounds += 1
                ok = [x for x in lat if x is not None]
                log(f"[load] click round {rounds}: {len(ready)} pages, max "
                    f"{max(ok, default=float('nan')):.2f} s, {len(lat) - len(ok)} unanswered; "
                    f"statuses {_count([s.last_status for s in sessions])}")
            else:
                time.sleep(1.0)
        for s in sessions:
            s.poll()
        figures["train_all_s"] = round(time.monotonic() - t_click0, 1)
    finally:
        sampler.stop()
    figures.update(sampler.figures())
    figures["load_1m_after"] = os.getloadavg()[0]
    per = [s.figures() for s in sessions]
    figures["per_session"] = per
    figures["sessions_unanswered_train"] = sum(1 for s in sessions if not s.run_id)
    for key in ("train_ack_s", "server_chart_s", "first_chart_s", "live_charts_s",
                "queue_wait_s", "finish_s"):
        figures[key] = _spread([p[key] for p in per])
    clicks = [c for s in sessions for c in s.clicks]
    figures["click_s"] = _spread(clicks)
    figures["click_server_s"] = _spread([c for s in sessions for c in s.server_click_answers()])
    figures["clicks"] = len(clicks)
    figures["click_failures"] = sum(len(s.click_failures) for s in sessions)
    figures["sessions_saw_queue"] = sum(1 for p in per if p["queued_text"])
    figures["queue_pos_max"] = max((p["queue_pos_max"] for p in per), default=0)
    figures["sessions_finished"] = sum(1 for p in per if p["final_status"] == "finished")
    figures["sessions_live_charts"] = sum(1 for p in per if p["max_charts"] >= 4)
    figures["app_errors"] = sum(len(p["app_errors"]) for p in per)
    figures["page_errors"] = sum(len(s.page_errors) for s in sessions)
    figures["disconnects"] = sum(len(p["disconnects"]) for p in per)
    return figures, sessions


def close_sessions(sessions: list[Session]) -> None:
    for s in sessions:
        try:
            s.context.close()
        except Exception:  # noqa: BLE001 - already closed
            pass


def warm_up(browser, server, config: dict | None = None, timeout: float = 180.0) -> None:
    """One short training in one session, then close it: the server has imported
    everything and started its spare training process before the baseline is taken."""
    ctx = browser.new_context(viewport=h.VIEWPORT)
    try:
        pg = ctx.new_page()
        h.open_page(pg, server, "train", dict(config or LOAD_CONFIG, steps=20), ready=h.train_button,
                    timeout=timeout)
        h.try_wait_idle(pg)
        h.click_button(pg, h.train_button(pg), "Train")
        h.wait_status(pg, "finished", timeout=timeout)
        h.wait_charts(pg, 1, timeout=60)
    finally:
        ctx.close()


def settle(server, spares: int = 1, timeout: float = 60.0, quiet_s: float = 2.0) -> dict:
    """Wait until the server has only its spare child processes left and its thread
    count has stopped changing for ``quiet_s``; returns :func:`tree_snapshot` with
    ``thread_kinds``, the server's threads by kind then (:func:`thread_census`; None
    when the server is not traced)."""
    deadline = time.monotonic() + timeout
    last, stable_since = None, time.monotonic()
    snap = tree_snapshot(server.pid)
    while time.monotonic() < deadline:
        snap = tree_snapshot(server.pid)
        key = (snap["threads"], len(snap["children"]))
        if key != last:
            last, stable_since = key, time.monotonic()
        elif len(snap["children"]) <= spares and time.monotonic() - stable_since >= quiet_s:
            break
        time.sleep(0.25)
    snap["settle_s"] = round(timeout - max(0.0, deadline - time.monotonic()), 1)
    trace = getattr(server, "extra_env", {}).get("RNNLAB_TRACE_CLICKS")
    snap["thread_kinds"] = thread_census(read_trace(Path(trace)), time.time()) if trace else None
    return snap


# --------------------------------------------------------------------------- threads


def thread_pool_caps() -> dict[str, int]:
    """The server's thread pools whose idle threads are kept for reuse, so that how many
    are left after a load depends on timing, by thread kind (:func:`thread_kind`), and
    the most threads each can have, by construction:

    * AnyIO's worker threads run Starlette's sync endpoints and file responses; a
      thread is started only when no idle one is left, and at most as many run at
      once as the default limiter has tokens (Streamlit sets them to
      ANYIO_STATIC_FILE_THREAD_TOKENS, 28 in 1.67; anyio's own default is 40); idle
      ones are pruned only when a later call finds them idle for 10 s;
    * asyncio's default executor (``asyncio.to_thread``): ThreadPoolExecutor's default
      of min(32, cores + 4) threads, idle ones kept.
    """
    try:
        from streamlit.web.server.starlette.starlette_server_config import (
            ANYIO_STATIC_FILE_THREAD_TOKENS as anyio_tokens,
        )
    except ImportError:  # another Streamlit: anyio's default limiter
        anyio_tokens = 40
    return {"AnyIO worker thread": int(anyio_tokens), "asyncio_N": min(32, NCPU + 4)}


def thread_kind(name: str) -> str:
    """A thread's name without its numbers: "ThreadPoolExecutor-3_1" → "ThreadPoolExecutor-N_N"."""
    return re.sub(r"\d+", "N", name)


def thread_census(trace: list[dict], at: float | None = None) -> dict[str, int] | None:
    """The server's threads by kind at ``at`` (``time.time()``; default: the latest),
    from the census in its trace (ui/trace.py writes the names of its threads whenever
    they change); None if the trace has none by then."""
    census = [r for r in trace if r.get("what") == "threads" and (at is None or r["time"] <= at)]
    if not census:
        return None
    kinds: dict[str, int] = {}
    for name in census[-1]["names"]:
        kinds[thread_kind(name)] = kinds.get(thread_kind(name), 0) + 1
    return dict(sorted(kinds.items()))


def thread_pool_peaks(trace: list[dict]) -> dict[str, int]:
    """The most threads each pool of :func:`thread_pool_caps` had in any census."""
    caps, peaks = thread_pool_caps(), {}
    for r in trace:
        if r.get("what") == "threads":
            for kind in caps:
                n = sum(thread_kind(name) == kind for name in r["names"])
                peaks[kind] = max(peaks.get(kind, 0), n)
    return peaks


def thread_problems(before: dict[str, int], after: dict[str, int],
                    peaks: dict[str, int] | None = None) -> list[str]:
    """What is wrong with the server's threads after the tabs closed: a kind outside the
    pools with more threads than at the baseline (the app or a session left one
    running), or a pool above its cap (during the load or after)."""
    caps = thread_pool_caps()
    out = []
    grown = {k: f"{before.get(k, 0)} → {n}" for k, n in after.items()
             if k not in caps and n > before.get(k, 0)}
    if grown:
        out.append(f"threads not back to their baseline after close: {grown}")
    for kind, cap in caps.items():
        n = max((peaks or {}).get(kind, 0), after.get(kind, 0))
        if n > cap:
            out.append(f"{n} threads '{kind}', above the pool's cap of {cap}")
    return out


def after_close(server, grace_s: float, spares: int = 1, timeout: float = 90.0,
                recheck_s: float = 3.0) -> dict:
    """After every tab closed: wait out the release grace period, then until only the
    spare children are left; measure, and measure the RSS once more ``recheck_s`` later
    (it must not keep growing)."""
    time.sleep(grace_s)
    snap = settle(server, spares=spares, timeout=timeout)
    time.sleep(recheck_s)
    snap["server_rss_mb_later"] = tree_snapshot(server.pid)["server_rss_mb"]
    return snap


def _spread(values) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": round(min(v), 2), "median": round(statistics.median(v), 2),
            "max": round(max(v), 2), "n": len(v)}


def _count(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


# --------------------------------------------------------------------------- report


def format_table(f: dict) -> str:
    ph = f.get("click_phases") or {}

    def spread(key, unit="s"):
        s = f.get(key) or {"n": 0}
        if not s["n"]:
            return "—"
        return f"{s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f} {unit} (n={s['n']})"

    b, a = f.get("baseline", {}), f.get("after_close", {})
    rows = [
        ("sessions / steps each / training cap", f"{f['sessions_n']} / {f['steps']} / {f['max_trainings']}"),
        ("Chromium's nice value (same machine as the server)", str(f.get("browser_nice", 0))),
        ("Chromium pinned to CPUs", str(f.get("browser_cpus") or "no (any CPU)")),
        ("load average (1 min) before → after", f"{f['load_1m_before']:.2f} → {f['load_1m_after']:.2f}"),
        ("open all sessions", f"{f['open_all_s']} s"),
        ("Train pressed → all finished", f"{f['train_all_s']} s"),
        ("Train answered, run=<id> in URL (min/median/max)", spread("train_ack_s")),
        ("loss chart message arrived (min / median / max)", spread("server_chart_s")),
        ("first chart drawn (min / median / max)", spread("first_chart_s")),
        ("live charts ≥ 4 (min / median / max)", spread("live_charts_s")),
        ("queue wait → running (min / median / max)", spread("queue_wait_s")),
        ("Train → finished (min / median / max)", spread("finish_s")),
        ("sessions that showed the queue / max #k", f"{f['sessions_saw_queue']} / {f['queue_pos_max']}"),
        ("sessions finished / with ≥ 4 charts", f"{f['sessions_finished']} / {f['sessions_live_charts']}"),
        ("click answered, chart redrawn (min / median / max)", spread("click_s")),
        ("click answered, message arrived (min/median/max)", spread("click_server_s")),
        ("click in the server: received → answered (min/med/max)", spread("click_in_server_s")
         + f", {(f.get('click_in_server_s') or {}).get('over_limit', 0)} over {CLICK_LIMIT_S} s"),
        ("click phases, median/max s: to page|send|to server|in server|to socket|to page|draw",
         " | ".join(f"{(ph.get(n) or {}).get('median')}/{(ph.get(n) or {}).get('max')}"
                    for n, _, _ in PHASES)),
        ("clicks / unanswered", f"{f['clicks']} / {f['click_failures']}"),
        *[(f"server's {kind} runs from Train on: wall / CPU (median, max), CPU total",
           (f"{r['wall']['median']}, {r['wall']['max']} / {r['cpu']['median']}, {r['cpu']['max']} s, "
           f"{r['cpu_total_s']} s (n={r['wall']['n']})"))
          for kind, r in (f.get("script_runs") or {}).items()],
        ("app errors / JS errors / disconnects", f"{f['app_errors']} / {f['page_errors']} / {f['disconnects']}"),
        ("peak RSS server alone (VmHWM)", f"{f['peak_server_rss_mb']:.0f} MB"),
        ("peak RSS server + children (sum)", f"{f['peak_tree_rss_mb']:.0f} MB"),
        ("peak PSS server + children (sum)", f"{f['peak_tree_pss_mb']:.0f} MB"),
        ("peak child processes / server threads", f"{f['peak_children']} / {f['peak_threads']}"),
        ("CPU server / children / tree (cores)",
         (f"{f['cpu_server_cores']:.2f} / {f['cpu_children_cores']:.2f} / {f['cpu_tree_cores']:.2f} "
         f"({f['cpu_tree_share_pct']:.0f} % of {NCPU} cores, over {f['cpu_wall_s']} s)")),
        ("CPU browser (Chromium + driver) / machine busy",
         f"{f['cpu_browser_cores']:.2f} cores / {f['cpu_machine_busy_pct']:.0f} %"),
    ]
    if b and a:
        rows += [
            ("threads baseline → after close", f"{b['threads']} → {a['threads']}"),
            ("  by kind, where they differ",
             ", ".join(f"{k} {(b.get('thread_kinds') or {}).get(k, 0)} → {n}"
                       for k, n in _kind_changes(b, a)) or "none"),
            ("  thread pools: peak / cap",
             ", ".join(f"{k} {(f.get('thread_pool_peak') or {}).get(k, 0)} / {cap}"
                       for k, cap in thread_pool_caps().items())),
            ("children baseline → after close", f"{len(b['children'])} → {len(a['children'])}"),
            ("server RSS baseline → after close → +3 s",
             f"{b['server_rss_mb']:.0f} → {a['server_rss_mb']:.0f} → {a['server_rss_mb_later']:.0f} MB"),
            ("tree RSS baseline → after close", f"{b['tree_rss_mb']:.0f} → {a['tree_rss_mb']:.0f} MB"),
        ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--steps", type=int, default=LOAD_CONFIG["steps"])
    ap.add_argument("--max-trainings", type=int, default=2)
    ap.add_argument("--grace", type=float, default=3.0,
                    help="RNNLAB_RELEASE_GRACE_S of the server (default 3)")
    ap.add_argument("--click-rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds to wait for every session to finish (default 900)")
    ap.add_argument("--browser-nice", type=int, default=0,
                    help="run Chromium at this nice value (default 0: as the server)")
    ap.add_argument("--browser-cpus", default="",
                    help="pin Chromium to these CPUs, e.g. 1 (default: none): as if the "
                         "browsers ran on other machines, they cannot take the core a "
                         "training runs on")
    ap.add_argument("--per-session", action="store_true", help="print every session's figures")
    ap.add_argument("--keep", action="store_true", help="keep the runs/logs directory")
    a = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="rnnlab-load-"))
    config = dict(LOAD_CONFIG, steps=a.steps)
    sessions: list[Session] = []
    with sync_playwright() as pw:
        browser = h.launch_browser(pw)
        server = h.AppServer(workdir / "runs", workdir / "logs", max_trainings=a.max_trainings,
                             env={"RNNLAB_RELEASE_GRACE_S": a.grace,
                                  "RNNLAB_TRACE_CLICKS": str(workdir / "clicks.jsonl")})
        try:
            server.start(timeout=120)
            print(f"[load] streamlit pid {server.pid} on {server.url} (health {server.health_s:.1f} s), "
                  f"runs in {server.runs_dir}; load average {os.getloadavg()}")
            warm_up(browser, server, config)
            baseline = settle(server)
            print(f"[load] baseline after warm-up: {baseline}")
            figures, sessions = run_load(browser, server, a.sessions, config,
                                         max_click_rounds=a.click_rounds,
                                         finish_timeout=a.timeout, browser_nice=a.browser_nice,
                                         browser_cpus=parse_cpus(a.browser_cpus))
            close_sessions(sessions)
            figures.update(trace_figures(sessions, workdir / "clicks.jsonl"))
            figures["baseline"] = baseline
            figures["after_close"] = after_close(server, a.grace)
            figures["server_alive"] = server.proc.poll() is None
        finally:
            close_sessions(sessions)
            code = server.stop()
            browser.close()
    if a.per_session:
        for p in figures["per_session"]:
            print("  ", json.dumps(p))
    print(f"\nLoad test: {a.sessions} browser sessions against one server "
          f"(machine: {NCPU} cores; {time.strftime('%Y-%m-%d %H:%M')})")
    print(format_table(figures))
    for e in (figures.get("click_phases") or {}).get("slowest", []):
        print(f"  slow click: {e}")
    problems = check(figures)
    print("criteria: " + ("all met" if not problems else "NOT met: " + "; ".join(problems)))
    out = {k: v for k, v in figures.items() if k != "per_session"}
    print(json.dumps(out, default=str))
    if code not in (0, None, -15):
        print(f"[load] streamlit exit code {code}; stderr tail:\n{server.stderr_tail()}")
    if a.keep:
        print(f"[load] kept {workdir}")
    else:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not problems else 1


def _kind_changes(b: dict, a: dict) -> list[tuple[str, int]]:
    """(kind, count after close) of the thread kinds whose count changed."""
    kb, ka = b.get("thread_kinds") or {}, a.get("thread_kinds") or {}
    return [(k, ka.get(k, 0)) for k in sorted(set(kb) | set(ka)) if kb.get(k, 0) != ka.get(k, 0)]


def check(f: dict, rss_slack_mb: float = 300.0) -> list[str]:
    """The issue's criteria; returns what was not met (empty: all met)."""
    n = f["sessions_n"]
    p = []
    if f["sessions_unanswered_train"]:
        p.append(f"{f['sessions_unanswered_train']}/{n} sessions: Train press never answered")
    if f["sessions_finished"] != n:
        p.append(f"{f['sessions_finished']}/{n} sessions finished")
    if f["sessions_live_charts"] != n:
        p.append(f"{f['sessions_live_charts']}/{n} sessions showed ≥ 4 charts")
    if n > f["max_trainings"] and not f["sessions_saw_queue"]:
        p.append("no session showed the queue")
    if f["app_errors"]:
        p.append(f"{f['app_errors']} error boxes on the pages")
    if not f["clicks"]:
        p.append("no click could be made (no page drew its run in time)")
    elif f["click_failures"] or (f["click_s"]["max"] or 0) > CLICK_LIMIT_S:
        p.append(f"clicks in the browser: max {f['click_s']['max']} s, {f['click_failures']} "
                 f"unanswered (limit {CLICK_LIMIT_S} s)")
    srv = f.get("click_in_server_s") or {}
    if srv.get("over_limit"):
        p.append(f"clicks in the server: {srv['over_limit']} of {srv['n']} over {CLICK_LIMIT_S} s "
                 f"(max {srv['max']} s)")
    if f["peak_server_rss_mb"] >= RSS_LIMIT_MB:
        p.append(f"peak RSS of the server {f['peak_server_rss_mb']:.0f} MB ≥ {RSS_LIMIT_MB:.0f} MB")
    if f["peak_tree_pss_mb"] >= RSS_LIMIT_MB:
        p.append(f"peak PSS of server + children {f['peak_tree_pss_mb']:.0f} MB ≥ {RSS_LIMIT_MB:.0f} MB")
    b, a = f.get("baseline"), f.get("after_close")
    if b and a:
        if not (b.get("thread_kinds") and a.get("thread_kinds")):
            p.append("no thread census in the server's trace (ui/trace.py)")
        else:
            p += thread_problems(b["thread_kinds"], a["thread_kinds"], f.get("thread_pool_peak"))
        if len(a["children"]) > len(b["children"]):
            p.append(f"child processes {len(b['children'])} → {len(a['children'])} after close")
        if a["server_rss_mb"] > b["server_rss_mb"] + rss_slack_mb:
            p.append(f"server RSS {b['server_rss_mb']:.0f} → {a['server_rss_mb']:.0f} MB after close")
        if a["server_rss_mb_later"] > a["server_rss_mb"] + 30:
            p.append(f"server RSS still growing after close: {a['server_rss_mb']:.0f} → "
                     f"{a['server_rss_mb_later']:.0f} MB")
    return p


if __name__ == "__main__":
    sys.exit(main())

"""Shared machinery for the browser tests and ``measure.py``.

* :class:`AppServer` starts ``streamlit run app.py`` on a free 127.0.0.1 port with
  its own runs directory, waits for ``/_stcore/health`` and stops it again.
* :func:`launch_browser` starts Debian's Chromium through Playwright
  (``playwright install`` cannot work here, so the executable is given).
* The page helpers wait for what the UI contract promises (text, charts,
  buttons) and fail with the app's own exception text when a page crashes.

Nothing here skips: a missing Chromium or a server that does not come up is an
error with a message that says so.

Environment variables of the test harness only (the app's own ``RNNLAB_*`` settings
are in ``core/settings.py`` and README.md, "Settings"; servers started here get
``RNNLAB_RUNS_DIR``, ``RNNLAB_MAX_TRAININGS`` and whatever a test passes as ``env``):

* ``RNNLAB_CHROMIUM``: the Chromium executable (default ``/usr/bin/chromium``);
* ``RNNLAB_SCREENSHOT``: a file the Train test saves a mid-run screenshot to
  (test_e2e_02_train.py; README's picture);
* ``RNNLAB_LOAD_SESSIONS``: browser sessions of the CI load test (default 4,
  test_e2e_06_load.py);
* ``RNNLAB_CLICK_LIMIT_S``: the load test's bound on answering a click (default 10 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("RNNLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 1000}

# Selectors from the UI contract (Streamlit 1.67 test ids).
APP = '[data-testid="stApp"]'
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# A run's charts: the Train page's example input sequence (.st-key-task_example) is not one.
CHART = '[data-testid="stVegaLiteChart"]:not(.st-key-task_example *)'
ALERT = '[data-testid="stAlertContainer"], [data-testid="stAlert"]'
DATAFRAME = '[data-testid="stDataFrame"]'
DOWNLOAD = '[data-testid="stDownloadButton"]'
EXCEPTION = '[data-testid="stException"]'
NAV_LINK = '[data-testid="stSidebarNavLink"]'

STEP_RE = re.compile(r"Step\s+([\d,]+)\s*/\s*([\d,]+)")
STATUS_RE = re.compile(r"Status:\s*\**\s*(queued|running|finished|stopped|diverged|interrupted)")

# A tiny configuration: a few seconds of training on a shared 2-core machine.
TINY = {
    "task": "adding",
    "arch": "lstm",
    "seq_len": 10,
    "hidden_size": 8,
    "batch_size": 16,
    "probe_every": 5,
    "eval_every": 20,
    "eval_size": 64,
}


class AppError(AssertionError):
    """The app did not do what the UI contract says (message says what differed)."""


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.read().decode(errors="replace").strip()
    except (urllib.error.URLError, OSError, ValueError):
        return None


class AppServer:
    """One ``streamlit run app.py`` process on 127.0.0.1 with its own runs directory.

    Attributes for reporting: ``health_s`` (process start → health ``ok``) and
    ``first_interactive_s`` (process start → first page interactive in a browser,
    set by :func:`open_page`).
    """

    def __init__(self, runs_dir: Path, log_dir: Path, max_trainings: int = 2,
                 python: str | None = None, env: dict | None = None):
        self.runs_dir = Path(runs_dir)
        self.extra_env = {k: str(v) for k, v in (env or {}).items()}  # e.g. RNNLAB_RELEASE_GRACE_S
        self.log_dir = Path(log_dir)
        self.max_trainings = max_trainings
        self.python = python or _venv_python()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None  # time.monotonic() at process start
        self.health_s: float | None = None
        self.first_interactive_s: float | None = None
        self.stderr_path = self.log_dir / "streamlit.stderr.log"
        self.stdout_path = self.log_dir / "streamlit.stdout.log"

    def __str__(self) -> str:
        return self.url

    @property
    def pid(self) -> int | None:
        """PID of the streamlit server process (None before start)."""
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 60.0) -> AppServer:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            RNNLAB_RUNS_DIR=str(self.runs_dir),
            RNNLAB_MAX_TRAININGS=str(self.max_trainings),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        cmd = [
            self.python, "-m", "streamlit", "run", "app.py",
            "--server.headless", "true",
            "--server.address", "127.0.0.1",
            "--server.port", str(self.port),
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ]
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._out,
                                     stderr=self._err, stdin=subprocess.DEVNULL)
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with code {self.proc.returncode} before answering "
                    f"/_stcore/health.\n--- stderr tail ---\n{self.stderr_tail()}")
            if _health(self.url) == "ok":
                self.health_s = time.monotonic() - self.started_at
                return self
            time.sleep(0.2)
        tail = self.stderr_tail()
        self.stop()
        raise RuntimeError(f"streamlit did not answer 'ok' on {self.url}/_stcore/health "
                           f"within {timeout:.0f} s.\n--- stderr tail ---\n{tail}")

    def since_start(self) -> float:
        return time.monotonic() - (self.started_at or time.monotonic())

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(no stderr log)"
        # Skip the per-request access log lines; keep warnings, errors and tracebacks.
        keep = [ln for ln in text.splitlines()
                if not re.search(r'"(GET|POST|HEAD) /|"WebSocket /|connection (open|closed)', ln)]
        return "\n".join(keep[-lines:]) or "(stderr empty)"

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for fh in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if fh is not None:
                fh.close()
        return self.proc.returncode

    # runs directory ----------------------------------------------------------

    def run_ids(self) -> set[str]:
        if not self.runs_dir.is_dir():
            return set()
        return {p.name for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}

    def run_status(self, run_id: str) -> dict:
        try:
            return json.loads((self.runs_dir / run_id / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def wait_runs_status(self, run_ids, statuses=("finished",), timeout: float = 120.0) -> dict:
        """Poll status.json of each run until all have a status in ``statuses``."""
        deadline = time.monotonic() + timeout
        last = {}
        while time.monotonic() < deadline:
            last = {r: self.run_status(r).get("status") for r in run_ids}
            if all(s in statuses for s in last.values()):
                return last
            time.sleep(0.5)
        raise AppError(f"runs did not reach {statuses} within {timeout:.0f} s: {last}")


def _venv_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# --------------------------------------------------------------------------- browser


def check_chromium() -> str:
    """The Chromium executable; raises (never skips) when it is missing."""
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if not path:
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium "
            "(`apt-get install chromium`, or `make browser`); `playwright install` cannot "
            "download browsers here.")
    return path


def launch_browser(playwright):
    exe = check_chromium()
    return playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)


def new_user_data_dir() -> str:
    """For persistent contexts only: a fresh profile directory."""
    return tempfile.mkdtemp(prefix="rnnlab-chromium-")


# --------------------------------------------------------------------------- page helpers


def url_for(server, path: str, params: dict | None = None) -> str:
    base = str(server).rstrip("/")
    q = ("?" + urlencode(params)) if params else ""
    return f"{base}/{path.lstrip('/')}{q}"


def app_exception(page) -> str | None:
    """Text of a Streamlit exception box on the page, if any."""
    exc = page.locator(EXCEPTION)
    if exc.count():
        try:
            return exc.first.inner_text(timeout=2000)
        except Exception:  # noqa: BLE001 - element went away
            return "(exception box present)"
    return None


def app_text(page) -> str:
    try:
        return page.locator(APP).inner_text(timeout=5000)
    except Exception:  # noqa: BLE001 - mid re-render
        return ""


def wait_until(page, predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll ``predicate()`` (truthy result returned) and fail with ``what``, the page's
    exception text if the app crashed, and the page's visible text."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        exc = app_exception(page)
        if exc:
            raise AppError(f"{what}: the page shows an exception (details are redacted in the "
                           f"browser; the streamlit stderr tail printed at teardown has the "
                           f"traceback):\n{exc[:2000]}")
        if time.monotonic() > deadline:
            raise AppError(f"{what}: not seen within {timeout:.0f} s.\n"
                           f"URL: {page.url}\nPage text (first 1500 chars):\n{app_text(page)[:1500]}")
        page.wait_for_timeout(interval * 1000)


def wait_idle(page, timeout: float = 30.0) -> None:
    """Wait until no script run is in progress.

    While an ``st.fragment(run_every=...)`` ticks, the state flips between
    running and notRunning; prefer waiting for specific elements or text then.
    """
    page.wait_for_selector(IDLE, state="attached", timeout=timeout * 1000)


def try_wait_idle(page, timeout: float = 5.0) -> bool:
    try:
        wait_idle(page, timeout)
        return True
    except Exception:  # noqa: BLE001 - best effort only
        return False


def nav_links(page) -> list[str]:
    """Titles of the sidebar navigation links (icons dropped)."""
    return [t.split("\n")[-1].strip() for t in page.locator(NAV_LINK).all_inner_texts()]


def check_navigation(page, path: str) -> None:
    """Fail clearly on the two ways Streamlit 1.67 can serve something else than the
    st.navigation page the contract names: legacy pages/-folder navigation, and the
    'Page not found' dialog (after which the default page runs instead)."""
    links = wait_until(page, lambda: nav_links(page), 15, "sidebar navigation links")
    if "app" in links:
        raise AppError(
            f"Opening /{path.lstrip('/')} ran Streamlit's legacy pages/-folder navigation, not "
            f"app.py's st.navigation: sidebar links are {links}. Streamlit 1.67 uses the "
            "pages/ directory next to app.py (PagesManager.uses_pages_directory) until some "
            "session has run app.py's st.navigation, so a first visit to /<page> runs "
            "pages/<page>.py directly (no set_page_config, titles = file names).")
    dialog = page.locator('[data-testid="stDialog"]').filter(has_text="Page not found")
    if dialog.count():
        raise AppError(
            f"Opening /{path.lstrip('/')} shows Streamlit's 'Page not found' dialog (URL now "
            f"{page.url}). In Streamlit 1.67 the page with default=True is served only at '/', "
            "never at its url_path, so the contract's `/train` does not resolve to it.")


def open_page(page, server, path: str, params: dict | None = None, *,
              ready=None, timeout: float = 60.0) -> float:
    """Go to ``path`` and wait until it is interactive; returns seconds it took.

    ``ready`` is a locator (or a function of the page returning one) that must be
    visible and enabled; by default the first sidebar navigation link.
    Records ``server.first_interactive_s`` the first time a page becomes interactive.
    """
    t0 = time.monotonic()
    page.goto(url_for(server, path, params), wait_until="domcontentloaded",
              timeout=timeout * 1000)
    page.wait_for_selector(f'{APP}[data-test-connection-state="CONNECTED"]',
                           state="attached", timeout=timeout * 1000)
    if ready is None:
        loc = page.locator(NAV_LINK).first
    elif callable(ready):
        loc = ready(page)
    else:
        loc = ready

    def is_ready():
        try:
            return loc.is_visible() and loc.is_enabled()
        except Exception:  # noqa: BLE001
            return False

    wait_until(page, is_ready, timeout, f"/{path}: page interactive ({loc})")
    elapsed = time.monotonic() - t0
    if getattr(server, "first_interactive_s", "missing") is None:
        server.first_interactive_s = server.since_start()
    page.wait_for_timeout(300)  # let a 'Page not found' dialog, if any, arrive
    check_navigation(page, path)
    return elapsed


def train_button(page):
    return page.get_by_role("button", name="Train", exact=True)


def stop_button(page):
    return page.get_by_role("button", name="Stop", exact=True)


def click_button(page, locator, what: str, timeout: float = 30.0) -> None:
    wait_until(page, lambda: locator.count() > 0 and locator.first.is_visible()
               and locator.first.is_enabled(), timeout, f"button {what!r} visible and enabled")
    locator.first.click(timeout=timeout * 1000)


def chart_count(page) -> int:
    return page.locator(CHART).count()


def wait_charts(page, n: int, timeout: float = 60.0) -> int:
    return wait_until(page, lambda: (c := chart_count(page)) >= n and c, timeout,
                      f"at least {n} charts ({CHART})")


def step_caption(page) -> tuple[int, int] | None:
    m = STEP_RE.search(app_text(page))
    if not m:
        return None
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def status(page) -> str | None:
    m = STATUS_RE.search(app_text(page))
    return m.group(1) if m else None


def wait_status(page, wanted, timeout: float = 60.0) -> str:
    wanted = (wanted,) if isinstance(wanted, str) else tuple(wanted)
    return wait_until(page, lambda: (s := status(page)) in wanted and s, timeout,
                      f"status line 'Status: {'|'.join(wanted)}'")


def run_id_from_url(url: str) -> str | None:
    vals = parse_qs(urlparse(url).query).get("run")
    return vals[0] if vals else None


def wait_run_id(page, timeout: float = 30.0) -> str:
    return wait_until(page, lambda: run_id_from_url(page.url), timeout,
                      "URL query parameter run=<run_id>")


def loss_chart(page):
    """The chart whose rendered text mentions 'loss' (else the first chart)."""
    charts = page.locator(CHART)
    with_loss = charts.filter(has_text=re.compile("loss", re.I))
    return with_loss.first if with_loss.count() else charts.first


def widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="{testid}"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=label))


def select_option(page, label: str, option: str, timeout: float = 20.0) -> None:
    """Choose ``option`` in the st.selectbox labelled ``label``."""
    box = widget(page, "stSelectbox", label)
    wait_until(page, lambda: box.count() > 0, timeout, f"selectbox {label!r}")
    combo = box.first.get_by_role("combobox")
    combo.click()
    combo.fill(option)
    opt = page.get_by_role("option").filter(has_text=option)
    wait_until(page, lambda: opt.count() > 0, timeout,
               f"option {option!r} in selectbox {label!r}")
    opt.first.click()
    wait_until(page, lambda: option in (combo.input_value() or ""), timeout,
               f"selectbox {label!r} showing {option!r}")


def selectbox_value(page, label: str) -> str:
    box = widget(page, "stSelectbox", label)
    if not box.count():
        return ""
    return box.first.get_by_role("combobox").input_value()


def multiselect_values(page, label: str) -> list[str]:
    box = widget(page, "stMultiSelect", label)
    tags = box.first.locator("[data-tag]")
    return [t.get_attribute("aria-label") or t.inner_text() for t in tags.all()]


def multiselect_remove(page, label: str, value: str, timeout: float = 20.0) -> None:
    box = widget(page, "stMultiSelect", label)
    box.first.get_by_role("button", name=f"Remove {value}", exact=True).click()
    wait_until(page, lambda: value not in multiselect_values(page, label), timeout,
               f"{value!r} removed from multiselect {label!r}")


def dataframe_text(page) -> str:
    """Text of every st.dataframe's accessible table (the grid itself is a canvas)."""
    out = []
    for df in page.locator(DATAFRAME).all():
        try:
            out.append(df.inner_text(timeout=2000))
        except Exception:  # noqa: BLE001
            pass
        tables = df.locator("table")
        for i in range(tables.count()):
            try:
                out.append(tables.nth(i).text_content(timeout=2000) or "")
            except Exception:  # noqa: BLE001
                pass
    return "\n".join(out)

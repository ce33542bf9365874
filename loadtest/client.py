"""One simulated visitor: a Streamlit session over its WebSocket, with no browser.

:class:`Session` does what the browser's front end does on the wire, in the same
order (Streamlit 1.67, App.tsx and WebsocketConnection.tsx):

1. ``GET /_stcore/health`` and ``/_stcore/host-config`` (the front end's first
   pings); the health answer sets the ``_streamlit_xsrf`` cookie.
2. Opens ``ws(s)://host/_stcore/stream`` with the subprotocols ``["streamlit",
   <xsrf cookie value>]`` (plus the session id when reconnecting), the cookie, and
   the page's Origin, as a browser's ``new WebSocket(uri, [...])`` does.
3. Sends the first ``rerun_script`` (the URL's query string and its path as the page
   name), then answers the server: keeps the element tree and the widget state,
   follows the query string (``page_info_changed``) and the page's script hash
   (``new_session``, ``navigation``), runs each fragment's timer (``auto_rerun``:
   a fragment rerun, ``is_auto_rerun``, every ``interval`` seconds until a whole
   run or ``stop_auto_rerun`` ends it), keeps the message cache and lists it in
   each request.
4. Widgets are set and buttons pressed by label (:meth:`Session.set`,
   :meth:`Session.press`): each sends a rerun with the *whole* widget state, in
   the fragment the widget is drawn in, as the front end does.

Each message's arrival time, type and size is kept (compact arrays), and what a
load test asks about is noted as it arrives: charts after a press, texts matching
patterns, error boxes, disconnects. No rendering, no JavaScript: a few hundred kB and
a fraction of a millisecond of CPU per message.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from array import array
from collections import Counter
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from loadtest import protocol as p

#: Message types by a one-byte code, for the compact per-message log.
KINDS = ("other", "new_session", "delta", "script_finished", "session_status_changed",
         "page_info_changed", "navigation", "auto_rerun", "stop_auto_rerun",
         "page_config_changed", "ref_hash", "page_not_found", "session_event")
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
XSRF_COOKIE = "_streamlit_xsrf"
MAX_MESSAGE_BYTES = 2 ** 27  # the server may send up to server.maxMessageSize (50 MB here)
RECONNECT_TRIES = 5
RENDER_DELAY_S = 0.016  # one frame: when a browser has rendered what arrived (see _schedule_remove_inactive)


class SessionError(AssertionError):
    """The session did not see what it waited for (the message says what it saw)."""


def _http_get(url: str, timeout: float) -> tuple[int, list[str]]:
    """(status, Set-Cookie headers) of a GET; status 0 when it failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            r.read()
            return r.status, r.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as e:
        return e.code, []
    except (urllib.error.URLError, OSError, ValueError):
        return 0, []


def _cookie(headers: list[str], name: str) -> str | None:
    for h in headers:
        first = h.split(";", 1)[0]
        if first.startswith(name + "="):
            return first.split("=", 1)[1]
    return None


class Session:
    """A visitor's session on ``base_url`` + ``path`` (e.g. ``"/train?seed=3"``).

    ``until``: a regular expression (case-insensitive) on the page's texts; the first
    text matching it that arrives after a press is noted (:attr:`until_at`).
    ``watch``: more patterns, noted the same way (:attr:`watch_at`).
    ``click_chart`` / ``click_answer``: for :meth:`click`, which chart answers a
    click (its spec matches ``click_chart``) and how (``click_answer`` matches its
    spec exactly when the clicked toggle is on).
    """

    def __init__(self, base_url: str, path: str, index: int = 0, *, until: str | None = None,
                 watch=(), click_chart: str | None = None, click_answer: str | None = None,
                 http_timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.path = path if path.startswith("/") else "/" + path
        self.index = index
        self.query_string = urlsplit(self.path).query
        self.page_name = p.page_name_of(self.path)
        self.http_timeout = http_timeout
        self.tree = p.AppTree()
        self.widgets = p.Widgets()
        self.cache = p.ForwardMsgCache()
        self.session_id: str | None = None
        self.page_script_hash = ""
        self.main_script_hash = ""
        self.script_run_id = ""
        self.max_cached_age = 2
        self.running = False
        self.full_runs = 0                 # whole-page runs finished
        self.finished = 0                  # runs finished (whole page or fragment)
        self._had_new_session = False      # a new_session since our last request
        self._remove_pending = False       # a drop of inactive widget states is scheduled
        self._auto: dict[str, tuple[float, asyncio.Task]] = {}
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._closing = False
        self._changed = asyncio.Event()
        self._clock = time.monotonic
        # what arrived
        self.t0 = self._clock()
        self.msg_t = array("d")            # seconds since t0
        self.msg_size = array("I")
        self.msg_kind = bytearray()
        self.by_kind: Counter = Counter()
        self.sent: Counter = Counter()
        self.errors: list[str] = []        # error boxes on the page (exception, st.error)
        self.client_errors: list[str] = []  # what the front end would refuse
        self.disconnects: list[tuple[float, str]] = []
        self.connected_at: float | None = None
        self.ready_at: float | None = None  # first whole run finished
        # after a press
        self.until = re.compile(until, re.I) if until else None
        self.watch = [re.compile(w, re.I) for w in watch]
        self.press_at: float | None = None
        self.press_wall: float | None = None
        self._charts_before: set = set()
        self.first_chart_at: float | None = None
        self.run_started_at: float | None = None   # the press's run began (its new_session)
        self.first_delta_at: float | None = None   # the first element drawn after the press
        self.new_charts_max = 0
        self.chart_msgs = 0
        self.chart_bytes = 0
        self.until_at: float | None = None
        self.until_text: str | None = None
        self.watch_at: dict[str, float] = {}
        self.click_chart = re.compile(click_chart) if click_chart else None
        self.click_answer = re.compile(click_answer) if click_answer else None
        self._answers: list[tuple[float, bool]] = []  # (arrival, answer regex matched)
        self.clicks: list[float | None] = []          # seconds to answer (None: not answered)
        self.click_walls: list[tuple[float, float | None]] = []  # time.time() sent, answered

    # ------------------------------------------------------------------ connection

    @property
    def url(self) -> str:
        return self.base_url + self.path

    async def open(self, timeout: float = 60.0) -> None:
        """Ping, connect, ask for the first run, wait until the page is drawn."""
        self.t0 = self._clock()
        await self._connect()
        await self.wait_for(lambda: self.full_runs > 0, timeout, "the page's first whole run")
        self.ready_at = self._clock()

    async def _connect(self, session_id: str | None = None) -> None:
        health, cookies = await asyncio.to_thread(
            _http_get, self.base_url + "/_stcore/health", self.http_timeout)
        await asyncio.to_thread(_http_get, self.base_url + "/_stcore/host-config", self.http_timeout)
        if health != 200:
            raise SessionError(f"session {self.index}: /_stcore/health answered {health}")
        xsrf = _cookie(cookies, XSRF_COOKIE)
        split = urlsplit(self.base_url)
        scheme = "wss" if split.scheme == "https" else "ws"
        protocols = ["streamlit", xsrf or "PLACEHOLDER_AUTH_TOKEN"] + ([session_id] if session_id else [])
        headers = {"Cookie": f"{XSRF_COOKIE}={xsrf}"} if xsrf else {}
        self._ws = await connect(
            f"{scheme}://{split.netloc}{split.path.rstrip('/')}/_stcore/stream",
            subprotocols=protocols, additional_headers=headers,
            origin=f"{split.scheme}://{split.netloc}", max_size=MAX_MESSAGE_BYTES,
            ping_interval=None,  # a browser sends no pings: none here either
            open_timeout=self.http_timeout)
        self.connected_at = self.connected_at or self._clock()
        self._reader = asyncio.create_task(self._read(self._ws), name=f"session-{self.index}-reader")
        await self._send_rerun()

    async def close(self) -> None:
        """Close the socket, as a browser tab closing does."""
        self._closing = True
        self._stop_auto()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()

    async def _read(self, ws) -> None:
        try:
            async for data in ws:
                try:
                    self.handle(data if isinstance(data, bytes) else data.encode())
                except Exception as e:  # noqa: BLE001 - a driver bug shows in the figures, the reader goes on
                    self.client_errors.append(f"driver error: {type(e).__name__}: {e}")
        except ConnectionClosed:
            pass
        if self._closing or ws is not self._ws:
            return
        self.disconnects.append((round(self._clock() - self.t0, 3),
                                 f"closed by the server: code {ws.close_code} {ws.close_reason or ''}".strip()))
        self._notify()
        await self._reconnect()

    async def _reconnect(self) -> None:
        """Reconnect to the same session, as the front end does (with a back-off), and
        ask for a run if one was under way or a fragment was ticking."""
        for k in range(RECONNECT_TRIES):
            await asyncio.sleep(0.5 * 2 ** k)
            if self._closing:
                return
            try:
                await self._connect(self.session_id)
                return
            except (OSError, asyncio.TimeoutError, SessionError) as e:
                self.disconnects.append((round(self._clock() - self.t0, 3), f"reconnect failed: {e}"))
        self.disconnects.append((round(self._clock() - self.t0, 3), "gave up reconnecting"))
        self._notify()

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.close_code is None

    # ------------------------------------------------------------------ sending

    async def _send_rerun(self, fragment_id: str = "", auto: bool = False) -> None:
        if not self.connected:
            return  # the front end logs "Cannot send rerun backMessage when disconnected"
        data = p.rerun_msg(
            query_string=self.query_string, widget_states=self.widgets.message(),
            page_script_hash=self.page_script_hash,
            page_name="" if self.page_script_hash else self.page_name,
            fragment_id=fragment_id, is_auto_rerun=auto,
            cached_message_hashes=self.cache.hashes(),
            context=p.context_info(self.base_url + urlsplit(self.path).path
                                   + (f"?{self.query_string}" if self.query_string else "")))
        self._had_new_session = False
        self.sent["auto_rerun" if auto else ("fragment_rerun" if fragment_id else "rerun")] += 1
        try:
            await self._ws.send(data)
        except ConnectionClosed:
            pass  # the reader notes the disconnect

    def find(self, label: str, kinds=None) -> p.ElementNode | None:
        """The first widget on the page (page order) labelled exactly ``label``."""
        for _, node in self.tree.elements(kinds or p.VALUE_TYPES.keys()):
            w = p.widget_proto(node)
            if w is not None and w.label == label:
                return node
        return None

    def _widget(self, label: str, kinds) -> p.ElementNode:
        node = self.find(label, kinds)
        if node is None:
            labels = sorted({p.widget_proto(n).label for _, n in self.tree.elements(p.VALUE_TYPES.keys())})
            raise SessionError(f"session {self.index}: no widget labelled {label!r} on the page "
                               f"(widgets: {labels}). {self.describe()}")
        if p.widget_proto(node).disabled:
            raise SessionError(f"session {self.index}: {node.kind} {label!r} is disabled")
        return node

    async def press(self, label: str) -> None:
        """Press the button labelled ``label``: one rerun with the whole widget state and
        the button's ``trigger_value``, which is then dropped (WidgetStateManager's
        ``setTriggerValue``). Charts and texts are timed from here."""
        node = self._widget(label, p.TRIGGERS)
        self.press_at, self.press_wall = self._clock(), time.time()
        self._charts_before = {path for path, _ in self.tree.elements(p.CHART_KINDS)}
        state = p.make_state(node, True)
        self.widgets.set(state)
        await self._send_rerun(node.fragment_id)
        self.widgets.drop(state.id)

    async def set(self, label: str, value) -> None:
        """Set the widget labelled ``label`` to ``value`` as a person would: one rerun
        (in the widget's fragment, if it is drawn in one)."""
        node = self._widget(label, set(p.VALUE_TYPES) - p.TRIGGERS)
        self.widgets.set(p.make_state(node, value))
        await self._send_rerun(node.fragment_id)

    async def set_and_wait(self, label: str, value, timeout: float = 60.0) -> None:
        """:meth:`set`, then wait for a run to finish after it (a whole run, or for a
        widget drawn in a fragment, a run of any kind)."""
        node = self._widget(label, set(p.VALUE_TYPES) - p.TRIGGERS)
        count = (lambda: self.finished) if node.fragment_id else (lambda: self.full_runs)
        before = count()
        await self.set(label, value)
        await self.wait_for(lambda: count() > before, timeout, f"a run after setting {label!r}")

    def value(self, label: str):
        """The value the session holds for the widget labelled ``label`` (None: none)."""
        node = self.find(label)
        if node is None:
            return None
        state = self.widgets.states.get(p.widget_proto(node).id)
        if state is None:
            return None
        field = state.WhichOneof("value")
        if field is None:
            return None
        v = getattr(state, field)
        return list(v.data) if hasattr(v, "data") else v

    async def click(self, label: str, timeout: float = 30.0) -> float | None:
        """Flip the toggle or checkbox ``label`` and wait for its answer: a chart matching
        ``click_chart`` that arrives afterwards with ``click_answer`` matching its spec
        exactly when the toggle is now on. Returns the seconds it took (None: not
        answered within ``timeout``) and keeps them in :attr:`clicks`."""
        if self.click_chart is None or self.click_answer is None:
            raise ValueError("click() needs click_chart and click_answer")
        want = not bool(self.value(label))
        t, wall = self._clock(), time.time()
        await self.set(label, want)
        try:
            await self.wait_for(lambda: any(at >= t and on == want for at, on in self._answers),
                                timeout, f"the answer to a click on {label!r}")
            at = next(at for at, on in self._answers if at >= t and on == want)
            self.clicks.append(round(at - t, 3))
            self.click_walls.append((wall, wall + (at - t)))
        except SessionError:
            self.clicks.append(None)
            self.click_walls.append((wall, None))
        return self.clicks[-1]

    # ------------------------------------------------------------------ fragments' timers

    def _start_auto(self, fragment_id: str, interval: float) -> None:
        old = self._auto.get(fragment_id)
        if old is not None and old[0] == interval:
            return
        self._stop_auto([fragment_id])
        task = asyncio.get_running_loop().create_task(self._auto_loop(fragment_id, interval))
        self._auto[fragment_id] = (interval, task)

    async def _auto_loop(self, fragment_id: str, interval: float) -> None:
        """``setInterval(() => sendUpdateWidgetsMessage(fragmentId, true), interval)``."""
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due + interval, loop.time())  # late: no burst to catch up
            await self._send_rerun(fragment_id, auto=True)

    def _stop_auto(self, fragment_ids=None) -> None:
        for fid in list(self._auto if fragment_ids is None else fragment_ids):
            entry = self._auto.pop(fid, None)
            if entry is not None:
                entry[1].cancel()

    # ------------------------------------------------------------------ receiving

    def handle(self, data: bytes) -> None:
        """One ForwardMsg from the server, as the front end handles it."""
        now = self._clock()
        msg = p.parse_forward(data)
        kind = msg.WhichOneof("type") or "other"
        self.msg_t.append(now - self.t0)
        self.msg_size.append(len(data))
        self.msg_kind.append(_KIND_CODE.get(kind, 0))
        self.by_kind[kind] += 1
        try:
            msg = self.cache.process(msg, data)
        except p.ProtocolError as e:
            self.client_errors.append(str(e))
            self._notify()
            return
        kind = msg.WhichOneof("type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(msg, now)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _on_new_session(self, msg, now) -> None:
        ns = msg.new_session
        run = p.run_identity(msg)
        self.session_id = ns.initialize.session_id or self.session_id
        self.max_cached_age = ns.config.max_cached_message_age or self.max_cached_age
        self._had_new_session = True
        fragments = run[1] if run else ()
        if not fragments:
            self._stop_auto()  # a whole run: the fragments' timers stop (cleanupAutoReruns)
            if self.page_script_hash and ns.page_script_hash != self.page_script_hash:
                self.tree.keep_only_script(ns.main_script_hash)  # another page
            self.page_script_hash = ns.page_script_hash
            self.main_script_hash = ns.main_script_hash
        if run:
            self.script_run_id = run[0]
        if self.press_at is not None and self.run_started_at is None and not fragments:
            self.run_started_at = now

    def _on_session_status_changed(self, msg, now) -> None:
        self.running = msg.session_status_changed.script_is_running

    def _on_navigation(self, msg, now) -> None:
        self.page_script_hash = msg.navigation.page_script_hash or self.page_script_hash

    def _on_page_info_changed(self, msg, now) -> None:
        self.query_string = msg.page_info_changed.query_string

    def _on_page_not_found(self, msg, now) -> None:
        self.client_errors.append(f"page not found: {msg.page_not_found.page_name!r}")

    def _on_auto_rerun(self, msg, now) -> None:
        if msg.auto_rerun.fragment_id:
            self._start_auto(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)

    def _on_stop_auto_rerun(self, msg, now) -> None:
        self._stop_auto(list(msg.stop_auto_rerun.fragment_ids))

    def _on_script_finished(self, msg, now) -> None:
        status = msg.script_finished
        run = p.run_identity(msg)
        if run and status in p.SUCCESS:
            run_id, fragments = run
            if fragments or run_id == self.script_run_id:
                self.tree.clear_stale(run_id, fragments)
                self._schedule_remove_inactive()
            self.finished += 1
            if not fragments:
                self.full_runs += 1
        if run and status != p.FINISHED_EARLY_FOR_RERUN and self._had_new_session:
            self.cache.increment_run_count(self.max_cached_age, run[1])

    def _schedule_remove_inactive(self) -> None:
        """Drop the states of widgets no longer on the page, one frame later, with the
        page as it is *then*. The front end does it in the callback of the React update
        that cleared the stale nodes (``removeInactiveWidgetState``), i.e. after React has
        rendered, by which time the messages that arrived with the run's end have been
        applied. It matters when a whole run ends without having redrawn a fragment (a
        fragment rerun requested during it preempts it) and the fragment's own run follows
        at once: the fragment's widgets are back on the page by then, and keep their
        states. Done at once, a toggle clicked during a whole rerun would lose its state
        and come back at its default, out of step with the server."""
        if self._remove_pending:
            return
        self._remove_pending = True

        def remove() -> None:
            self._remove_pending = False
            active = {p.widget_proto(n).id for _, n in self.tree.elements(p.VALUE_TYPES.keys())}
            self.widgets.remove_inactive(active)
        try:
            asyncio.get_running_loop().call_later(RENDER_DELAY_S, remove)
        except RuntimeError:  # no event loop (messages fed by hand): at once
            remove()

    def _on_delta(self, msg, now) -> None:
        delta = msg.delta
        try:
            node = self.tree.apply(delta, msg.metadata.delta_path, self.script_run_id,
                                   msg.metadata.active_script_hash, now)
        except p.ProtocolError as e:
            self.client_errors.append(str(e))
            return
        if not isinstance(node, p.ElementNode):
            return
        self.widgets.on_element(node)
        if p.is_error(node):
            text = p.element_text(node) or node.kind
            if text not in self.errors:
                self.errors.append(text[:500])
        if self.press_at is None:
            return
        if self.first_delta_at is None and self.run_started_at is not None:
            self.first_delta_at = now
        if node.kind in p.CHART_KINDS:
            self._on_chart(node, tuple(msg.metadata.delta_path), now)
        text = p.element_text(node)
        if text:
            if self.until is not None and self.until_at is None and self.until.search(text):
                self.until_at, self.until_text = now, text[:200]
            for w in self.watch:
                if w.pattern not in self.watch_at and w.search(text):
                    self.watch_at[w.pattern] = now

    def _on_chart(self, node: p.ElementNode, path: tuple, now: float) -> None:
        self.chart_msgs += 1
        self.chart_bytes += p.chart_data_bytes(node)
        if path not in self._charts_before:
            if self.first_chart_at is None:
                self.first_chart_at = now
            new = sum(1 for q, _ in self.tree.elements(p.CHART_KINDS) if q not in self._charts_before)
            self.new_charts_max = max(self.new_charts_max, new)
        if self.click_chart is not None:
            spec = p.chart_spec(node)
            if self.click_chart.search(spec):
                self._answers.append((now, bool(self.click_answer.search(spec))))

    # ------------------------------------------------------------------ waiting and reading

    async def wait_for(self, predicate, timeout: float, what: str):
        """Wait until ``predicate()`` is truthy (checked after each message); returns it.
        Raises SessionError naming ``what`` and what the page shows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            left = deadline - loop.time()
            if left <= 0:
                raise SessionError(f"session {self.index}: {what}: not seen within {timeout:.0f} s. "
                                   f"{self.describe()}")
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), left)
            except asyncio.TimeoutError:
                pass

    def texts(self) -> list[str]:
        """The page's texts now, in page order."""
        return [t for _, n in self.tree.elements() if (t := p.element_text(n))]

    def charts(self) -> list[tuple[tuple[int, ...], p.ElementNode]]:
        return list(self.tree.elements(p.CHART_KINDS))

    def describe(self, chars: int = 600) -> str:
        text = " | ".join(self.texts())
        return (f"Connected: {self.connected}; script running: {self.running}; "
                f"{len(self.charts())} charts; errors {self.errors[:3]}; client errors "
                f"{self.client_errors[:3]}; disconnects {self.disconnects[:3]}; "
                f"texts: {text[:chars]}")

    def since_press(self, t: float | None) -> float | None:
        return None if t is None or self.press_at is None else round(t - self.press_at, 3)

    def figures(self) -> dict:
        """This session's figures (seconds from the press unless said otherwise)."""
        after = self.press_at - self.t0 if self.press_at is not None else None
        sizes_after = [s for t, s in zip(self.msg_t, self.msg_size) if after is not None and t >= after]
        return {
            "session": self.index,
            "path": self.path,
            "open_s": round(self.ready_at - self.t0, 3) if self.ready_at else None,
            "run_start_s": self.since_press(self.run_started_at),
            "first_delta_s": self.since_press(self.first_delta_at),
            "first_chart_s": self.since_press(self.first_chart_at),
            "until_s": self.since_press(self.until_at),
            "until_text": self.until_text,
            "watch_s": {k: self.since_press(v) for k, v in self.watch_at.items()},
            "new_charts_max": self.new_charts_max,
            "chart_msgs": self.chart_msgs,
            "chart_data_bytes": self.chart_bytes,
            "msgs": len(self.msg_size),
            "bytes": sum(self.msg_size),
            "msgs_after_press": len(sizes_after),
            "bytes_after_press": sum(sizes_after),
            "by_kind": dict(self.by_kind),
            "sent": dict(self.sent),
            "cache_hits": self.cache.hits,
            "clicks_s": list(self.clicks),
            "click_walls": list(self.click_walls),
            "session_id": self.session_id,
            "errors": self.errors[:5],
            "client_errors": self.client_errors[:5],
            "disconnects": self.disconnects[:5],
            "press_wall": self.press_wall,
        }

    def message_log(self) -> list[tuple[float, str, int]]:
        """(seconds since open, type, bytes) of every message received."""
        return [(round(t, 4), KINDS[k], s) for t, k, s in zip(self.msg_t, self.msg_kind, self.msg_size)]

    def dump(self) -> str:
        return json.dumps({"figures": self.figures(), "texts": self.texts()[:50]}, default=str)

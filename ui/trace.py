"""How long the *server* takes to answer a click, for the load test (off by default).

A browser test times a click from the browser: that includes the browser's own
work (dispatching the click, drawing the answer), and in the load test twenty
headless browsers share the server's two cores. To tell the server's part, set
``RNNLAB_TRACE_CLICKS=<file>``: the server then notes when each rerun request
carrying a changed "Log-scale loss" toggle reaches it (Streamlit's
``AppSession.handle_backmsg``, wrapped once), and a page
that has just redrawn in answer to a traced widget change appends one JSON line:
``{"session", "what", "received", "answered"}`` (``time.time()`` of both; the
difference is queueing, the script run and building the answer, not the network
or the browser). Each time a loss chart's message is handed to a session's
WebSocket (Streamlit's ``Runtime._send_message``, on the server's event loop), one
more line says when: ``{"session", "what": "written", "written"}``. The first one
after the answer's run reached the toggle carries the answer (it can be handed over
before ``answered`` is noted: the event loop sends while the script goes on); from
``answered`` to it is the event loop's backlog.

Every script run (a whole page or a fragment) also appends its wall and CPU time
(``{"what": "run", "kind", "started", "wall", "cpu"}``, CPU from
``time.thread_time``): a run whose wall time is many times its CPU time spent it
waiting, for the GIL or for a core.

A census of the server's threads (``{"what": "threads", "time", "names"}``, the names
of ``threading.enumerate()``) is appended whenever they change (checked every
``CENSUS_EVERY_S`` on a thread of its own, ``rnnlab-trace-census``): the load test
tells apart the threads the app starts, which must end, from the server's thread
pools, which keep idle threads (tests/e2e/load.py, ``thread_problems``).

None of this is in the product's code path: :func:`install` wraps Streamlit's and
the app's functions from outside, and app.py calls it only when
``RNNLAB_TRACE_CLICKS`` is set (the load test, tests/e2e/load.py).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from core import settings

#: Widget keys whose changes are traced: the pages' "Log-scale loss" toggles.
TRACED_SUFFIX = "_log"
_received: dict[str, float] = {}
_values: dict[tuple[str, str], bool] = {}
_shown: dict[tuple[str, str], bool] = {}  # (session, chart) → the log scale it last showed
_lock = threading.Lock()
_patches: list[tuple[object, str, object]] = []  # (owner, attribute, original): to undo
_census_stop = threading.Event()
CENSUS_EVERY_S = 0.25


def enabled() -> Path | None:
    """The trace file ($RNNLAB_TRACE_CLICKS), or None: not tracing."""
    return settings.get("RNNLAB_TRACE_CLICKS")


def install() -> None:
    """Wrap, from outside, where the trace looks (once; only with $RNNLAB_TRACE_CLICKS
    set, app.py calls it only then): Streamlit's AppSession.handle_backmsg (a rerun
    request arrives), Runtime._send_message (a message goes to a socket) and
    ScriptRunner._run_script (a script run's wall and CPU time), and the app's
    ui.live.templated_chart (a page has drawn its loss chart); and start the thread
    census. The product's code has no trace in it. :func:`uninstall` undoes it (tests)."""
    if _patches or not enabled():
        return
    from streamlit.runtime.app_session import AppSession
    from streamlit.runtime.runtime import Runtime
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    from ui import live

    _patch(AppSession, "handle_backmsg", _traced_backmsg)
    _patch(Runtime, "_send_message", _traced_send)
    _patch(ScriptRunner, "_run_script", _traced_run)
    _patch(live, "templated_chart", _traced_chart)
    _census_stop.clear()
    threading.Thread(target=_census, args=(_census_stop,), name="rnnlab-trace-census",
                     daemon=True).start()


def uninstall() -> None:
    """Put back what :func:`install` wrapped, and stop the thread census."""
    _census_stop.set()
    while _patches:
        owner, name, original = _patches.pop()
        setattr(owner, name, original)


def _census(stop: threading.Event) -> None:
    """Append the names of the server's threads whenever they change (checked every
    ``CENSUS_EVERY_S``): the load test tells the threads the app started, which must
    end, from the server's bounded thread pools, whose idle threads may stay."""
    last = None
    while not stop.wait(CENSUS_EVERY_S):
        names = sorted(t.name for t in threading.enumerate())
        if names != last:
            _append({"what": "threads", "time": time.time(), "names": names})
            last = names


def _patch(owner, name: str, wrap) -> None:
    original = getattr(owner, name)
    _patches.append((owner, name, original))
    setattr(owner, name, wrap(original))


def _traced_backmsg(original):
    def handle_backmsg(self, msg):
        if msg.WhichOneof("type") == "rerun_script":
            _note_changes(self.id, msg.rerun_script.widget_states.widgets, time.time())
        return original(self, msg)
    return handle_backmsg


def _traced_send(original):
    def _send_message(self, session_info, msg):
        if _is_loss_chart(msg):
            _written(session_info.session.id, time.time())
        return original(self, session_info, msg)
    return _send_message


def _traced_run(original):
    def _run_script(self, rerun_data):
        kind = "fragment" if rerun_data.fragment_id_queue else "full"
        wall, cpu = time.time(), time.thread_time()
        try:
            return original(self, rerun_data)
        finally:
            _append({"session": self._session_id, "what": "run", "kind": kind, "started": wall,
                     "wall": round(time.time() - wall, 4),
                     "cpu": round(time.thread_time() - cpu, 4)})
    return _run_script


def _traced_chart(original):
    def templated_chart(cache_key, widget_key, structure, frames, build):
        started = time.time()  # the page's script has just read its "Log-scale loss" toggle
        out = original(cache_key, widget_key, structure, frames, build)
        if structure[:1] == ("loss",):  # ui.live.run_charts' loss chart: ("loss", log scale)
            _loss_drawn(widget_key, bool(structure[1]), started)
        return out
    return templated_chart


def _loss_drawn(widget_key: str, log: bool, started: float) -> None:
    """A page has drawn its loss chart with the log scale ``log``: if this session's chart
    last showed the other scale, the page has answered a click of its toggle."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    key = (ctx.session_id if ctx else "?", widget_key)
    with _lock:
        before = _shown.get(key, log)
        _shown[key] = log
    if before != log:
        answered("log toggle", started=started)


def _append(record: dict) -> None:
    with _lock, open(enabled(), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _is_loss_chart(msg) -> bool:
    """Whether a ForwardMsg draws the loss chart (its spec names the training curve)."""
    if msg.WhichOneof("type") != "delta" or msg.delta.WhichOneof("type") != "new_element":
        return False
    el = msg.delta.new_element
    return el.WhichOneof("type") == "vega_lite_chart" and "train (smoothed)" in el.vega_lite_chart.spec


def _written(session: str, now: float) -> None:
    _append({"session": session, "what": "written", "written": now})


def _note_changes(session: str, widgets, now: float) -> None:
    """Note when a request first carries a new value of a traced toggle. (Not simply
    the latest request: pages also ask for a rerun every second, and one of those
    arriving between the click and its answer would shorten the figure.)"""
    with _lock:
        for w in widgets:
            if not w.id.endswith(TRACED_SUFFIX) or w.WhichOneof("value") != "bool_value":
                continue
            key = (session, w.id)
            if _values.get(key) != w.bool_value:
                _values[key] = w.bool_value
                _received[session] = now


def answered(what: str, started: float | None = None) -> None:
    """Note that this session's page has built its answer to ``what`` (``started``: when
    the script run that built it reached the traced widget, to tell queueing from work)."""
    if not enabled():
        return
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    sid = ctx.session_id if ctx else "?"
    with _lock:
        received = _received.get(sid)
    _append({"session": sid, "what": what, "received": received, "started": started,
             "answered": time.time()})

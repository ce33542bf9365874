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
_lock = threading.Lock()
_installed = False


def enabled() -> Path | None:
    """The trace file ($RNNLAB_TRACE_CLICKS), or None: not tracing."""
    return settings.get("RNNLAB_TRACE_CLICKS")


def install() -> None:
    """Wrap Streamlit where the trace looks (once): AppSession.handle_backmsg (a rerun
    request arrives), Runtime._send_message (a message goes to a socket) and
    ScriptRunner._run_script (a script run's wall and CPU time)."""
    global _installed
    if _installed or not enabled():
        return
    from streamlit.runtime.app_session import AppSession

    original = AppSession.handle_backmsg

    def handle_backmsg(self, msg):
        if msg.WhichOneof("type") == "rerun_script":
            _note_changes(self.id, msg.rerun_script.widget_states.widgets, time.time())
        return original(self, msg)

    AppSession.handle_backmsg = handle_backmsg

    from streamlit.runtime.runtime import Runtime

    send = Runtime._send_message

    def _send_message(self, session_info, msg):
        if _is_loss_chart(msg):
            _written(session_info.session.id, time.time())
        return send(self, session_info, msg)

    Runtime._send_message = _send_message

    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    run_script = ScriptRunner._run_script

    def _run_script(self, rerun_data):
        kind = "fragment" if rerun_data.fragment_id_queue else "full"
        wall, cpu = time.time(), time.thread_time()
        try:
            return run_script(self, rerun_data)
        finally:
            _append({"session": self._session_id, "what": "run", "kind": kind, "started": wall,
                     "wall": round(time.time() - wall, 4),
                     "cpu": round(time.thread_time() - cpu, 4)})

    ScriptRunner._run_script = _run_script
    _installed = True


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

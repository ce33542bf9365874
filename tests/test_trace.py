"""ui/trace.py: which request a click's timing starts from (the load test's server-side figure)."""

from streamlit.proto.WidgetStates_pb2 import WidgetState

from ui import trace


def _toggle(widget_id: str, value: bool) -> WidgetState:
    w = WidgetState(id=widget_id)
    w.bool_value = value
    return w


def test_timing_starts_at_the_request_that_carries_the_change(monkeypatch):
    monkeypatch.setattr(trace, "_received", {})
    monkeypatch.setattr(trace, "_values", {})
    log_id = "$$ID-abc123-train_log"
    trace._note_changes("s1", [_toggle(log_id, False)], 1.0)  # first render
    trace._note_changes("s1", [_toggle(log_id, True)], 2.0)  # the click
    trace._note_changes("s1", [_toggle(log_id, True)], 2.5)  # a fragment's own rerun
    assert trace._received["s1"] == 2.0
    trace._note_changes("s1", [_toggle("$$ID-def-train_follow", False)], 3.0)  # not traced
    assert trace._received["s1"] == 2.0
    trace._note_changes("s2", [_toggle(log_id, False)], 4.0)  # sessions are apart
    assert trace._received == {"s1": 2.0, "s2": 4.0}


def test_each_loss_chart_handed_to_the_socket_is_noted(monkeypatch, tmp_path):
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    path = tmp_path / "clicks.jsonl"
    monkeypatch.setenv("RNNLAB_TRACE_CLICKS", str(path))

    def chart(spec: str) -> ForwardMsg:
        msg = ForwardMsg()
        msg.delta.new_element.vega_lite_chart.spec = spec
        return msg

    loss, heatmap = chart('{"x": "train (smoothed)"}'), chart('{"x": "time step t"}')
    assert trace._is_loss_chart(loss) and not trace._is_loss_chart(heatmap)
    assert not trace._is_loss_chart(ForwardMsg())
    trace._written("s1", 2.0)
    assert path.read_text().splitlines() == ['{"session": "s1", "what": "written", "written": 2.0}']


def test_a_redraw_in_the_other_scale_is_noted_as_an_answered_click(monkeypatch, tmp_path):
    import json

    path = tmp_path / "clicks.jsonl"
    monkeypatch.setenv("RNNLAB_TRACE_CLICKS", str(path))
    monkeypatch.setattr(trace, "_shown", {})
    trace._loss_drawn("train_loss", False, 1.0)   # first drawing: remembered, nothing noted
    trace._loss_drawn("train_loss", False, 2.0)   # a refresh in the same scale
    assert not path.exists()
    trace._loss_drawn("train_loss", True, 3.0)    # the toggle's answer
    (line,) = [json.loads(x) for x in path.read_text().splitlines()]
    assert line["what"] == "log toggle" and line["started"] == 3.0


def test_the_trace_wraps_from_outside_only_when_asked(monkeypatch, tmp_path):
    """The product's code has no trace in it: install() wraps Streamlit's and ui.live's
    functions (only with RNNLAB_TRACE_CLICKS set), uninstall() puts them back."""
    import ast
    from pathlib import Path

    from streamlit.runtime.app_session import AppSession
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    from ui import live

    def current():
        return AppSession.handle_backmsg, ScriptRunner._run_script, live.templated_chart

    before = current()
    monkeypatch.delenv("RNNLAB_TRACE_CLICKS", raising=False)
    trace.install()
    assert current() == before
    monkeypatch.setenv("RNNLAB_TRACE_CLICKS", str(tmp_path / "clicks.jsonl"))
    trace.install()
    try:
        wrapped = current()
        assert all(w is not b for w, b in zip(wrapped, before))
        trace.install()                                  # once only
        assert current() == wrapped
    finally:
        trace.uninstall()
    assert current() == before
    root = Path(__file__).resolve().parents[1]
    for path in [*(root / "ui").glob("*.py"), *(root / "pages").glob("*.py"),
                 *(root / "core").rglob("*.py")]:
        if path.name in ("trace.py", "runtime.py"):  # runtime.start_once installs it when asked
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    for a in n.names} | {(a.name, "") for n in ast.walk(tree)
                                         if isinstance(n, ast.Import) for a in n.names}
        assert not {("ui", "trace"), ("ui.trace", "")} & imported and not any(
            m == "ui.trace" for m, _ in imported), f"{path.relative_to(root)} uses the trace"

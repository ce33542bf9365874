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

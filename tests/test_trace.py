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

"""The browser-less load driver's protocol parts (loadtest/protocol.py, loadtest/client.py),
on messages built here: what it sends, how it reads what the server sends. Against the
real server: tests/e2e/test_e2e_08_loadtest.py."""

from __future__ import annotations

import asyncio

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider

from loadtest import run_sync
from loadtest import protocol as p
from loadtest.client import Session, _cookie
from loadtest.scenario import spread

# --------------------------------------------------------------------------- helpers


def element(kind: str, **fields):
    """A ForwardMsg delta with a new element of ``kind`` (fields set on its proto)."""
    msg = ForwardMsg()
    proto = getattr(msg.delta.new_element, kind)
    for k, v in fields.items():
        if isinstance(v, list):
            getattr(proto, k).extend(v)
        else:
            setattr(proto, k, v)
    if not fields:
        proto.SetInParent()
    return msg


def at(msg: ForwardMsg, *path, fragment: str = "") -> ForwardMsg:
    msg.metadata.delta_path.extend(path)
    if fragment:
        msg.delta.fragment_id = fragment
    return msg


def block(kind: str = "vertical") -> ForwardMsg:
    msg = ForwardMsg()
    getattr(msg.delta.add_block, kind).SetInParent()
    return msg


def node_of(msg: ForwardMsg) -> p.ElementNode:
    el = msg.delta.new_element
    return p.ElementNode(el, el.WhichOneof("type"), "r", "", "", 0.0)


def new_session(run_id: str, page: str = "pagehash", fragments=(), main: str = "mainhash") -> ForwardMsg:
    msg = ForwardMsg()
    msg.new_session.page_script_hash = page
    msg.new_session.main_script_hash = main
    msg.new_session.initialize.session_id = "sid-1"
    msg.new_session.config.max_cached_message_age = 2
    msg.metadata.run.script_run_id = run_id
    msg.metadata.run.fragment_ids.extend(fragments)
    return msg


def finished(run_id: str, fragments=(), status=p.FINISHED_SUCCESSFULLY) -> ForwardMsg:
    msg = ForwardMsg()
    msg.script_finished = status
    msg.metadata.run.script_run_id = run_id
    msg.metadata.run.fragment_ids.extend(fragments)
    return msg


def texts(tree: p.AppTree) -> list[str]:
    return [p.element_text(n) for _, n in tree.elements() if p.element_text(n)]


def apply(tree: p.AppTree, msg: ForwardMsg, run: str):
    return tree.apply(msg.delta, msg.metadata.delta_path, run, "", 0.0)


# --------------------------------------------------------------------------- back messages


def test_rerun_msg_carries_the_client_state():
    states = p.Widgets()
    states.set(p.make_state(node_of(element("checkbox", id="cb", label="Log")), True))
    data = p.rerun_msg(query_string="a=1&b=2", widget_states=states.message(), page_script_hash="h",
                       page_name="", fragment_id="f", is_auto_rerun=True,
                       cached_message_hashes=["x", "y"], context=p.context_info("http://h/train"))
    msg = BackMsg()
    msg.ParseFromString(data)
    cs = msg.rerun_script
    assert msg.WhichOneof("type") == "rerun_script"
    assert (cs.query_string, cs.page_script_hash, cs.page_name, cs.fragment_id, cs.is_auto_rerun) == \
        ("a=1&b=2", "h", "", "f", True)
    assert list(cs.cached_message_hashes) == ["x", "y"]
    assert [(w.id, w.bool_value) for w in cs.widget_states.widgets] == [("cb", True)]
    assert cs.context_info.url == "http://h/train" and cs.context_info.timezone == "UTC"


def test_page_name_is_the_url_path():
    assert p.page_name_of("/train?x=1") == "train"
    assert p.page_name_of("/") == ""
    assert p.page_name_of("/compare") == "compare"


def test_xsrf_cookie_is_read_from_set_cookie():
    headers = ["other=1; Path=/", "_streamlit_xsrf=2|ab|cd|123; Path=/; SameSite=Lax"]
    assert _cookie(headers, "_streamlit_xsrf") == "2|ab|cd|123"
    assert _cookie([], "_streamlit_xsrf") is None


# --------------------------------------------------------------------------- widget states


def test_initial_states_follow_the_widgets_protos():
    cases = [
        (element("checkbox", id="a", default=True), "bool_value", True),
        (element("checkbox", id="a", default=True, value=False, set_value=True), "bool_value", False),
        (element("selectbox", id="a", options=["x", "y"], default=1), "string_value", "y"),
        (element("selectbox", id="a", options=["x", "y"], default=0, raw_value="y", set_value=True),
         "string_value", "y"),
        (element("radio", id="a", options=["x", "y"], default=0), "string_value", "x"),
        (element("multiselect", id="a", options=["x", "y", "z"], default=[0, 2]),
         "string_array_value", ["x", "z"]),
        (element("number_input", id="a", default=3.0, data_type=NumberInput.INT), "int_value", 3),
        (element("number_input", id="a", default=0.5, data_type=NumberInput.FLOAT), "double_value", 0.5),
        (element("number_input", id="a", default=1.0, value=7.0, set_value=True,
                 data_type=NumberInput.INT),
         "int_value", 7),
        (element("slider", id="a", default=[2.0, 5.0]), "double_array_value", [2.0, 5.0]),
        (element("slider", id="a", type=Slider.SELECT_SLIDER, options=["lo", "mid", "hi"], default=[1.0]),
         "string_array_value", ["mid"]),
        (element("text_input", id="a", default="hi"), "string_value", "hi"),
    ]
    for msg, field, want in cases:
        state = p.initial_state(node_of(msg))
        assert state is not None and state.WhichOneof("value") == field, (msg, state)
        got = getattr(state, field)
        assert (list(got.data) if hasattr(got, "data") else got) == want, (msg, state)


def test_widgets_without_a_value_have_no_state():
    assert p.initial_state(node_of(element("button", id="b", label="Train"))) is None
    assert p.initial_state(node_of(element("selectbox", id="s", options=["x"]))) is None
    assert p.initial_state(node_of(element("markdown", body="hi"))) is None


def test_make_state_encodes_what_a_person_sets():
    assert p.make_state(node_of(element("button", id="b")), None).trigger_value is True
    assert p.make_state(node_of(element("checkbox", id="c")), "false").bool_value is False
    assert p.make_state(node_of(element("number_input", id="n", data_type=NumberInput.INT)), "5").int_value == 5
    assert list(p.make_state(node_of(element("multiselect", id="m", options=["a", "b"])), "a, b")
                .string_array_value.data) == ["a", "b"]
    with pytest.raises(ValueError, match="not an option"):
        p.make_state(node_of(element("selectbox", id="s", options=["a", "b"])), "c")
    with pytest.raises(ValueError, match="not a boolean"):
        p.make_state(node_of(element("checkbox", id="c")), "maybe")


def test_widget_state_keeps_a_changed_value_until_the_script_sets_one():
    w = p.Widgets()
    w.on_element(node_of(element("checkbox", id="c", default=False)))
    w.set(p.make_state(node_of(element("checkbox", id="c")), True))
    w.on_element(node_of(element("checkbox", id="c", default=False)))  # redrawn: keeps the user's value
    assert w.states["c"].bool_value is True
    w.on_element(node_of(element("checkbox", id="c", default=False, value=False, set_value=True)))
    assert w.states["c"].bool_value is False  # the script set it
    w.on_element(node_of(element("button", id="b")))
    assert "b" not in w.states
    w.remove_inactive({"other"})
    assert w.states == {}


# --------------------------------------------------------------------------- the tree


def test_deltas_build_the_tree_by_path():
    tree = p.AppTree()
    apply(tree, at(element("markdown", body="**Status: running**"), 0, 0), "r1")
    apply(tree, at(block("expandable"), 0, 1), "r1")
    apply(tree, at(element("text", body="inside"), 0, 1, 0), "r1")
    apply(tree, at(element("heading", body="side"), 1, 0), "r1")
    assert texts(tree) == ["Status: running", "inside", "side"]
    assert [path for path, _ in tree.elements()] == [(0, 0), (0, 1, 0), (1, 0)]
    # the same kind of block again keeps its children; another kind drops them
    apply(tree, at(block("expandable"), 0, 1), "r1")
    assert texts(tree) == ["Status: running", "inside", "side"]
    apply(tree, at(block("vertical"), 0, 1), "r1")
    assert texts(tree) == ["Status: running", "side"]


def test_a_delta_path_the_front_end_would_refuse_is_an_error():
    tree = p.AppTree()
    with pytest.raises(p.ProtocolError, match="Bad 'setIn' index 2"):
        apply(tree, at(element("text", body="x"), 0, 2), "r1")
    apply(tree, at(element("text", body="x"), 0, 0), "r1")
    with pytest.raises(p.ProtocolError, match="through an element"):
        apply(tree, at(element("text", body="y"), 0, 0, 0), "r1")


def test_a_finished_run_clears_what_it_did_not_draw():
    tree = p.AppTree()
    for i, body in enumerate(["a", "b", "c"]):
        apply(tree, at(element("text", body=body), 0, i), "r1")
    apply(tree, at(element("text", body="side"), 1, 0), "r1")
    tree.clear_stale("r1")
    assert texts(tree) == ["a", "b", "c", "side"]
    apply(tree, at(element("text", body="A"), 0, 0), "r2")  # the next run draws one element
    tree.clear_stale("r2")
    assert texts(tree) == ["A"]  # the rest of main, and the untouched sidebar, are stale


def test_a_fragment_run_clears_only_inside_its_fragment():
    tree = p.AppTree()
    apply(tree, at(element("text", body="title"), 0, 0), "r1")
    apply(tree, at(block("vertical"), 0, 1, fragment="F"), "r1")
    apply(tree, at(element("text", body="old 1", ), 0, 1, 0, fragment="F"), "r1")
    apply(tree, at(element("text", body="old 2"), 0, 1, 1, fragment="F"), "r1")
    tree.clear_stale("r1")
    # a fragment run (run id r2) redraws its block with one element
    apply(tree, at(block("vertical"), 0, 1, fragment="F"), "r2")
    apply(tree, at(element("text", body="new 1"), 0, 1, 0, fragment="F"), "r2")
    tree.clear_stale("r2", ("F",))
    assert texts(tree) == ["title", "new 1"]


def test_a_page_change_keeps_only_the_main_scripts_elements():
    tree = p.AppTree()
    tree.apply(at(element("text", body="nav"), 1, 0).delta, [1, 0], "r1", "main", 0.0)
    tree.apply(at(element("text", body="page"), 0, 0).delta, [0, 0], "r1", "page1", 0.0)
    tree.keep_only_script("main")
    assert texts(tree) == ["nav"]


def test_texts_errors_and_charts_are_read_from_elements():
    metric = node_of(element("metric", label="Solved", body="at step 800"))
    assert p.element_text(metric) == "Solved: at step 800"
    assert p.element_text(node_of(element("markdown", body="**Status:** `queued`"))) == "Status: queued"
    exc = node_of(element("exception", type="ValueError", message="bad"))
    assert p.is_error(exc) and p.element_text(exc) == "ValueError: bad"
    err = element("alert", body="no")
    err.delta.new_element.alert.format = err.delta.new_element.alert.ERROR
    info = element("alert", body="fine")
    info.delta.new_element.alert.format = info.delta.new_element.alert.INFO
    assert p.is_error(node_of(err)) and not p.is_error(node_of(info))
    chart = element("vega_lite_chart", spec='{"title": "loss (log)"}')
    ds = chart.delta.new_element.vega_lite_chart.datasets.add()
    ds.name, ds.data.data = "d1", b"x" * 100
    node = node_of(chart)
    assert node.kind in p.CHART_KINDS and p.chart_data_bytes(node) == 100
    assert "loss (log)" in p.chart_spec(node)


# --------------------------------------------------------------------------- the message cache


def cacheable(body: str, h: str) -> ForwardMsg:
    msg = at(element("text", body=body), 0, 0)
    msg.hash, msg.metadata.cacheable = h, True
    return msg


def test_cache_resolves_references_and_expires_entries():
    cache = p.ForwardMsgCache()
    msg = cacheable("big", "h1")
    cache.process(msg, msg.SerializeToString())
    ref = ForwardMsg(ref_hash="h1")
    ref.metadata.delta_path.extend([0, 5])
    out = cache.process(ref, ref.SerializeToString())
    assert out.delta.new_element.text.body == "big" and list(out.metadata.delta_path) == [0, 5]
    assert cache.hashes() == ["h1"] and cache.hits == 1
    for _ in range(3):  # unused for more than max_age runs: gone
        cache.increment_run_count(2)
    assert cache.hashes() == []
    with pytest.raises(p.ProtocolError, match="miss"):
        cache.process(ref, ref.SerializeToString())


def test_cache_expiry_in_a_fragment_run_spares_other_entries():
    cache = p.ForwardMsgCache()
    a, b = cacheable("a", "ha"), cacheable("b", "hb")
    b.delta.fragment_id = "F"
    for m in (a, b):
        cache.process(m, m.SerializeToString())
    for _ in range(3):
        cache.increment_run_count(2, ("F",))
    assert cache.hashes() == ["ha"]


# --------------------------------------------------------------------------- a session, without a socket


class FakeSocket:
    """Collects what the session sends."""

    def __init__(self):
        self.sent: list[BackMsg] = []
        self.close_code = None

    async def send(self, data: bytes) -> None:
        msg = BackMsg()
        msg.ParseFromString(data)
        self.sent.append(msg)

    async def close(self) -> None:
        self.close_code = 1000


def feed(s: Session, *msgs: ForwardMsg) -> None:
    for m in msgs:
        s.handle(m.SerializeToString())


def page_messages(run: str) -> list[ForwardMsg]:
    return [
        new_session(run),
        at(element("heading", body="Train"), 0, 0),
        at(element("number_input", id="seed", label="Seed", default=0.0, data_type=NumberInput.INT), 1, 0),
        at(element("checkbox", id="log", label="Log-scale loss", default=False), 0, 1, fragment="F"),
        at(element("button", id="train", label="Train"), 0, 2),
        at(element("vega_lite_chart", spec="{}"), 0, 3),
        finished(run),
    ]


def test_session_presses_a_button_with_the_whole_widget_state():
    async def scenario():
        s = Session("http://127.0.0.1:1", "/train?seed=0", until="status: finished")
        s._ws = ws = FakeSocket()
        feed(s, *page_messages("r1"))
        info = ForwardMsg()
        info.page_info_changed.query_string = "seed=0&steps=60"
        feed(s, info)
        assert s.full_runs == 1 and s.find("Train").kind == "button"
        await s.set("Seed", 7)
        await s.press("Train")
        seed_msg, press_msg = (m.rerun_script for m in ws.sent)
        assert s.value("Seed") == 7
        assert seed_msg.query_string == "seed=0&steps=60" and seed_msg.page_script_hash == "pagehash"
        assert seed_msg.page_name == ""  # the page is named by its hash once known
        states = {w.id: w for w in press_msg.widget_states.widgets}
        assert states["train"].trigger_value and states["seed"].int_value == 7
        assert states["log"].bool_value is False
        assert "train" not in s.widgets.states  # a trigger is sent once
        # after the press: a chart at a new path, then the status text
        feed(s, new_session("r2"), at(element("vega_lite_chart", spec="{}"), 0, 3),
             at(element("vega_lite_chart", spec="{}"), 0, 4),
             at(element("markdown", body="**Status: finished**"), 0, 5), finished("r2"))
        f = s.figures()
        assert f["first_chart_s"] is not None and f["new_charts_max"] == 1  # (0, 3) was there before
        assert f["until_s"] is not None and f["until_text"] == "Status: finished"
        assert f["msgs"] == 8 + 5 and f["sent"] == {"rerun": 2}
    run_sync(scenario())


def test_first_rerun_names_the_page_by_its_path():
    async def scenario():
        s = Session("http://127.0.0.1:1", "/compare?x=1")
        s._ws = ws = FakeSocket()
        await s._send_rerun()
        cs = ws.sent[0].rerun_script
        assert (cs.page_name, cs.page_script_hash, cs.query_string) == ("compare", "", "x=1")
    run_sync(scenario())


def test_fragment_timers_send_auto_reruns_until_a_whole_run():
    async def scenario():
        s = Session("http://127.0.0.1:1", "/train")
        s._ws = ws = FakeSocket()
        feed(s, *page_messages("r1"))
        auto = ForwardMsg()
        auto.auto_rerun.interval, auto.auto_rerun.fragment_id = 0.05, "F"
        feed(s, auto)
        await asyncio.sleep(0.18)
        ticks = [m.rerun_script for m in ws.sent]
        assert len(ticks) >= 2 and all(t.is_auto_rerun and t.fragment_id == "F" for t in ticks)
        feed(s, new_session("r2"))  # a whole run stops the fragments' timers
        n = len(ws.sent)
        await asyncio.sleep(0.12)
        assert len(ws.sent) == n
        await s.close()
    run_sync(scenario())


def test_click_waits_for_the_answering_chart():
    async def scenario():
        s = Session("http://127.0.0.1:1", "/train", click_chart="smoothed", click_answer=r"\(log\)")
        s._ws = ws = FakeSocket()
        feed(s, *page_messages("r1"))
        await s.press("Train")

        async def answer():
            await asyncio.sleep(0.05)
            feed(s, at(element("vega_lite_chart", spec="smoothed, loss"), 0, 4, fragment="F"))  # not yet
            await asyncio.sleep(0.05)
            feed(s, at(element("vega_lite_chart", spec="smoothed, loss (log)"), 0, 4, fragment="F"))
        task = asyncio.create_task(answer())
        took = await s.click("Log-scale loss", timeout=5)
        await task
        assert took is not None and 0.05 <= took < 5
        assert ws.sent[-1].rerun_script.fragment_id == "F"  # the toggle is in the fragment
        assert s.value("Log-scale loss") is True
    run_sync(scenario())


def test_errors_and_refused_deltas_are_counted():
    s = Session("http://127.0.0.1:1", "/train")
    feed(s, new_session("r1"), at(element("exception", type="RuntimeError", message="boom"), 0, 0),
         at(element("text", body="x"), 0, 7))
    ref = ForwardMsg(ref_hash="nope")
    feed(s, ref)
    assert s.errors == ["RuntimeError: boom"]
    assert any("setIn" in e for e in s.client_errors) and any("miss" in e for e in s.client_errors)


def test_spread_has_a_nearest_rank_p95():
    assert spread([]) == {"n": 0, "min": None, "median": None, "p95": None, "max": None}
    s = spread(list(range(1, 21)) + [None])
    assert (s["n"], s["min"], s["median"], s["p95"], s["max"]) == (20, 1, 10.5, 19, 20)


def test_click_phases_split_a_click_by_the_servers_trace():
    from loadtest.__main__ import click_phases

    per = [{"session_id": "S", "click_walls": [(100.0, 101.0), (200.0, None)]},
           {"session_id": "T", "click_walls": [(100.0, 100.5)]}]
    records = [{"session": "S", "what": "log toggle", "received": 100.2, "started": 100.5, "answered": 100.6},
               {"session": "S", "what": "written", "written": 100.45},  # before the run reached the toggle
               {"session": "S", "what": "written", "written": 100.7},
               {"session": "X", "what": "log toggle", "received": 100.1, "started": 100.1, "answered": 100.2}]
    ph = click_phases(per, records)
    assert (ph["matched"], ph["unmatched"]) == (1, 1)  # T has no trace record
    got = {name: ph[name]["median"] for name in ("to_server", "waiting", "in_server", "to_socket", "to_driver")}
    assert got == {"to_server": 0.2, "waiting": 0.3, "in_server": 0.4, "to_socket": 0.1, "to_driver": 0.3}


def test_widget_states_are_dropped_a_frame_after_a_run_with_the_page_as_it_is_then():
    """A whole run that ends without redrawing a fragment, followed at once by the
    fragment's own run: the fragment's toggle keeps its state (the front end drops
    inactive widget states after rendering). A widget gone for good is dropped."""
    async def scenario():
        s = Session("http://127.0.0.1:1", "/train")
        s._ws = FakeSocket()
        feed(s, *page_messages("r1"))
        await s.set("Log-scale loss", True)
        # a whole run redraws everything but the fragment's toggle, then the fragment runs
        feed(s, new_session("r2"), at(element("heading", body="Train"), 0, 0),
             at(element("number_input", id="seed", label="Seed", default=0.0,
                        data_type=NumberInput.INT), 1, 0),
             finished("r2"),
             new_session("r3", fragments=("F",)),
             at(element("checkbox", id="log", label="Log-scale loss", default=False), 0, 1, fragment="F"),
             finished("r3", ("F",), status=p.FINISHED_FRAGMENT))
        await asyncio.sleep(0.05)
        assert s.value("Log-scale loss") is True
        feed(s, new_session("r4"), at(element("heading", body="Train"), 0, 0), finished("r4"))
        await asyncio.sleep(0.05)
        assert "log" not in s.widgets.states and "seed" not in s.widgets.states
    run_sync(scenario())


def test_run_sync_works_inside_a_running_event_loop():
    """Once a Playwright test has run, pytest's main thread has a running event loop, where
    asyncio.run() refuses: run_sync then runs the coroutine in a thread of its own."""
    async def answer():
        return 42

    async def boom():
        raise ValueError("from the coroutine")

    async def outer():
        assert run_sync(answer()) == 42
        with pytest.raises(ValueError, match="from the coroutine"):
            run_sync(boom())
        return True

    assert run_sync(outer()) is True  # inside outer() a loop is running, whatever ran before
    assert run_sync(answer()) == 42

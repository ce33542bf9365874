"""The load test's split of a click into its phases (tests/e2e/load.py: click_phases).

A click's figure mixes the browser's work and the server's; the split is what tells
them apart, so it is checked here on timestamps whose phases are known.
"""

import json

from tests.e2e.load import PHASES, Session, click_phases, read_trace


def _session(index: int, clicks: list[dict]) -> Session:
    """A session whose page observed ``clicks`` (each: asked, page, sent, arrived, drawn,
    want), with unrelated WebSocket sends and loss-chart messages around them."""
    s = Session(index, context=None, page=None)
    obs = {"domClicks": [], "wsSends": [], "wsLoss": []}
    for c in clicks:
        s.click_times.append((c["asked"], c["want"]))
        s.click_drawn.append(c["drawn"])
        obs["domClicks"].append(c["page"] * 1000)
        obs["wsSends"] += [(c["asked"] - 0.5) * 1000, c["sent"] * 1000]  # a refresh before
        # the page's once-a-second refresh: a message without the new axis comes first
        obs["wsLoss"] += [[(c["sent"] + 0.01) * 1000, not c["want"]],
                          [c["arrived"] * 1000, c["want"]]]
    s.obs = obs
    return s


def test_each_phase_is_the_time_between_its_two_moments(tmp_path):
    a = dict(asked=100.0, page=100.2, sent=100.25, arrived=101.5, drawn=102.0, want=True)
    b = dict(asked=110.0, page=110.1, sent=110.12, arrived=110.6, drawn=113.6, want=False)
    trace = tmp_path / "clicks.jsonl"
    trace.write_text("\n".join(json.dumps(r) for r in [
        {"session": "x", "received": 100.45, "answered": 101.35},   # click a
        {"session": "x", "what": "written", "written": 101.4},
        {"session": "y", "received": 105.0, "answered": 105.1},     # another page's, not ours
        {"session": "y", "what": "written", "written": 110.45},     # the other page's
        {"session": "x", "received": 110.14, "answered": 110.5},    # click b
        {"session": "x", "what": "written", "written": 110.55},
    ]) + "\n")
    out = click_phases([_session(0, [a]), _session(1, [b])], read_trace(trace))
    assert [name for name, _, _ in PHASES] == [
        "to_page", "page_to_send", "send_to_server", "in_server", "to_socket",
        "socket_to_page", "arrived_to_drawn"]
    assert out["to_page"] == {"min": 0.1, "median": 0.15, "max": 0.2, "n": 2}
    assert out["send_to_server"]["max"] == 0.2 and out["send_to_server"]["n"] == 2
    assert out["in_server"] == {"min": 0.36, "median": 0.63, "max": 0.9, "n": 2}
    assert out["to_socket"] == {"min": 0.05, "median": 0.05, "max": 0.05, "n": 2}
    assert (out["socket_to_page"]["min"], out["socket_to_page"]["max"]) == (0.05, 0.1)
    assert out["arrived_to_drawn"]["max"] == 3.0
    slowest = out["slowest"][0]
    assert slowest["session"] == 1 and slowest["total"] == 3.6
    assert slowest["arrived_to_drawn"] == 3.0 and slowest["in_server"] == 0.36
    # the phases add up to the click's time seen by the browser
    assert abs(sum(slowest[name] for name, _, _ in PHASES) - slowest["total"]) < 0.02


def test_a_click_without_a_trace_record_keeps_its_browser_phases(tmp_path):
    a = dict(asked=100.0, page=100.2, sent=100.25, arrived=101.5, drawn=None, want=True)
    out = click_phases([_session(0, [a])], read_trace(tmp_path / "missing.jsonl"))
    assert out["to_page"]["n"] == 1 and out["page_to_send"]["n"] == 1
    assert out["in_server"]["n"] == 0 and out["send_to_server"]["n"] == 0
    assert out["to_socket"]["n"] == 0
    assert out["slowest"] == []  # never drawn: not among the answered clicks


def test_script_runs_are_summarised_by_kind_from_the_train_press_on(tmp_path):
    from tests.e2e.load import script_run_times

    trace = tmp_path / "clicks.jsonl"
    runs = [("full", 5.0, 0.5, 0.2),        # before the Train presses: the warm-up, left out
            ("full", 11.0, 3.0, 0.06), ("full", 12.0, 1.0, 0.08),
            ("fragment", 13.0, 0.04, 0.005)]
    trace.write_text("\n".join(json.dumps({"what": "run", "session": "x", "kind": k,
                                           "started": t, "wall": w, "cpu": c})
                               for k, t, w, c in runs)
                     + '\n{"session": "x", "what": "written", "written": 12.5}\n')
    out = script_run_times(read_trace(trace), since=10.0)
    assert out["full"]["wall"]["max"] == 3.0 and out["full"]["wall"]["n"] == 2
    assert out["full"]["cpu"]["median"] == 0.07 and out["full"]["cpu_total_s"] == 0.14
    assert out["fragment"]["wall"]["n"] == 1


def test_threads_are_judged_by_kind_pools_by_their_cap():
    """After the tabs close, every thread the app or a session started must be gone
    again; a pool's idle threads may stay (timing), never above the pool's cap."""
    from tests.e2e.load import thread_census, thread_pool_caps, thread_pool_peaks, thread_problems

    base = ["MainThread", "rnnlab-worker-stderr", "AnyIO worker thread",
            "ThreadPoolExecutor-0_0", "ThreadPoolExecutor-0_1"]
    trace = [{"what": "threads", "time": 10.0, "names": base},
             {"what": "threads", "time": 20.0, "names": base + ["rnnlab-train"] * 3
              + ["AnyIO worker thread"] * 11 + ["ScriptRunner.scriptThread"]},
             {"what": "run", "session": "x", "kind": "full", "started": 21, "wall": 1, "cpu": 1},
             {"what": "threads", "time": 30.0, "names": base + ["AnyIO worker thread"] * 9}]
    before, after = thread_census(trace, at=15.0), thread_census(trace)
    assert before == {"AnyIO worker thread": 1, "MainThread": 1, "ThreadPoolExecutor-N_N": 2,
                      "rnnlab-worker-stderr": 1}
    assert after["AnyIO worker thread"] == 10 and "rnnlab-train" not in after
    peaks = thread_pool_peaks(trace)
    assert peaks["AnyIO worker thread"] == 12
    assert thread_problems(before, after, peaks) == []          # 15 → 24 threads, all in the pool
    leaked = thread_census(trace, at=25.0)                       # a relay still running
    assert thread_problems(before, leaked, peaks) == [
        ("threads not back to their baseline after close: "
         "{'ScriptRunner.scriptThread': '0 → 1', 'rnnlab-train': '0 → 3'}")]
    cap = thread_pool_caps()["AnyIO worker thread"]
    over = thread_problems(before, after, {"AnyIO worker thread": cap + 1})
    assert over == [f"{cap + 1} threads 'AnyIO worker thread', above the pool's cap of {cap}"]
    assert thread_census([], at=5.0) is None

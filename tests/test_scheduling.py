"""Fair scheduling (issue 18, section 2): interactive trainings before sweep cells, an
estimated wait from measured throughput, one training per core.

* the estimator on known inputs (core.jobs.estimate_wait, WaitEstimate.words);
* what feeds it: a running job's remaining time from its records, a queued job's
  expected time from the server's measured speeds (core.jobs.Throughput), a sweep
  cell's from the sweep's measured cell times (on a fake clock);
* Slots: FIFO within a priority class, interactive before sweep cells (threads);
* a queued job shows its place and estimated wait in its status message;
* a sweep started from the app takes a training slot per cell, at low priority, and
  yields to an interactive training that waits (core.sweep_job.SlottedBackend).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time

import pytest

from core import settings
from core.config import TrainConfig
from core.executors import Backend
from core.jobs import (
    INTERACTIVE, SWEEP, Slots, Throughput, TrainingJob, WaitEstimate, default_capacity,
    estimate_wait, work_per_step,
)
from core.sweep_job import SlottedBackend, SweepJob

TINY = TrainConfig(seq_len=8, hidden_size=6, batch_size=8, steps=12, eval_every=4,
                   eval_size=32, probe_every=4)


def _until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


# ---------------------------------------------------------------- the estimator


def test_the_wait_is_the_first_slot_free_after_the_jobs_ahead():
    # Two slots, freed in 10 s and 40 s; one job of 20 s ahead takes the first (10 → 30).
    est = estimate_wait(2, running=[10.0, 40.0], ahead=[20.0])
    assert est.seconds == 30.0 and (est.running, est.ahead, est.guessed) == (2, 1, 0)
    # Nobody ahead: the first slot to come free.
    assert estimate_wait(2, [10.0, 40.0], []).seconds == 10.0
    # Three ahead, in order, each on the first slot free: A 10 → 30, B 30 → 35, C 35 → 85;
    # the other slot frees at 40, first after them.
    assert estimate_wait(2, [10.0, 40.0], [20.0, 5.0, 50.0]).seconds == 40.0
    # A free slot and nobody ahead: no wait.
    assert estimate_wait(2, [10.0], []).seconds == 0.0
    # One slot, one job running 12 s more, two of 8 s ahead: 12 + 8 + 8.
    assert estimate_wait(1, [12.0], [8.0, 8.0]).seconds == 28.0


def test_unmeasured_times_count_at_the_mean_of_the_measured_ones():
    est = estimate_wait(1, running=[None], ahead=[10.0, 30.0])
    assert est.seconds == 20.0 + 10.0 + 30.0 and est.guessed == 1
    assert estimate_wait(1, [None], [None]) is None  # nothing measured: no estimate
    assert estimate_wait(1, [], []).seconds == 0.0


def test_the_wait_in_words_and_how_it_was_computed():
    def words(s):
        return WaitEstimate(s, 1, 0, 0, 2).words()

    assert [words(s) for s in (0.2, 7.4, 29, 43, 118, 300)] == [
        "about 1 s", "about 7 s", "about 29 s", "about 45 s", "about 120 s", "about 5 min"]
    how = WaitEstimate(30.0, 2, 1, 1, 2).how()
    assert "2 trainings of 2 training slots running" in how
    assert "measured steps/s" in how and "1 waits ahead" in how and "not measured" in how


# ---------------------------------------------------------------- what feeds it


def test_a_running_job_frees_its_slot_after_its_steps_left_at_its_measured_speed():
    job = TrainingJob([TINY.replace(steps=1000)], slots=None)
    assert job.remaining_s() is None  # queued, nothing measured
    job.runs[0].data.update_status(status="running", step=200, steps_per_s=100.0)
    assert job.remaining_s() == pytest.approx(8.0)
    # A lesson that stops when solved: solved at 300, tail 100 → ends at step 400.
    lesson = TrainingJob([TINY.replace(steps=1000, stop_when_solved=True, solved_tail=100)],
                         slots=None)
    lesson.runs[0].data.update_status(status="running", step=200, steps_per_s=100.0,
                                      steps_to_solve=300)
    assert lesson.remaining_s() == pytest.approx(2.0)
    # Lockstep: every run advances at the job's pace; the slot frees with the last one.
    pair = TrainingJob([TINY.replace(steps=1000), TINY.replace(steps=1000, arch="gru")],
                       slots=None)
    for r, step in zip(pair.runs, (500, 400)):
        r.data.update_status(status="running", step=step, steps_per_s=50.0)
    assert pair.remaining_s() == pytest.approx(12.0)


def test_a_queued_job_is_expected_to_take_its_budget_at_the_measured_speed():
    speeds = Throughput()
    job = TrainingJob([TINY.replace(steps=1000)], slots=None, throughput=speeds)
    assert job.expected_s() is None  # nothing measured yet
    speeds.observe(TINY.replace(seed=5), 200.0)  # the same config, another seed
    assert job.expected_s() == pytest.approx(1000 / 200.0)
    # Another size: scaled by the work per step (sequence length × gates × size).
    longer = TINY.replace(seq_len=16, arch="gru", steps=1000)
    expected = 1000 * (1 / 200.0) / work_per_step(TINY) * work_per_step(longer)
    assert TrainingJob([longer], slots=None, throughput=speeds).expected_s() == \
        pytest.approx(expected)
    assert work_per_step(longer) == 2 * 3 / 4 * work_per_step(TINY)


def test_a_sweep_cell_is_expected_to_take_the_sweeps_mean_cell_time():
    now = [100.0]

    class Inline(Backend):
        name, workers, description = "inline", 1, "inline"

        def _submit(self, fn, /, *args, **kwargs):
            f = cf.Future()
            f.set_result(fn(*args, **kwargs))
            return f

        def shutdown(self, wait=True, *, cancel_futures=False):
            pass

    def cell(seconds):
        now[0] += seconds  # the cell "takes" this long on the fake clock
        return seconds

    be = SlottedBackend(Inline(), Slots(1), clock=lambda: now[0])
    try:
        for s in (10.0, 30.0):
            assert be.submit(cell, s).result(10) == s
        assert be.mean_cell_s() == 20.0
        from core.sweep_job import _Cell

        c = _Cell(be)
        assert c.expected_s() == 20.0 and c.remaining_s() == 20.0
        c.started = now[0]
        now[0] += 15.0
        assert c.remaining_s() == 5.0
        now[0] += 15.0
        assert c.remaining_s() == 0.0
    finally:
        be.shutdown()


# ---------------------------------------------------------------- the queue


class Waiter(threading.Thread):
    """A token waiting in ``slots`` on a thread; records when it got its turn."""

    def __init__(self, slots, name, priority, order, remaining=None, expected=None):
        super().__init__(daemon=True)
        self.slots, self.token_name, self.priority, self.order = slots, name, priority, order
        self.remaining, self.expected = remaining, expected
        self.cancel, self.go_on = threading.Event(), threading.Event()
        self.acquired = None

    def remaining_s(self):
        return self.remaining

    def expected_s(self):
        return self.expected

    def run(self):
        self.acquired = self.slots.acquire(self, self.cancel, self.priority)
        if self.acquired:
            self.order.append(self.token_name)
            self.go_on.wait(30)
            self.slots.release(self)


def test_interactive_trainings_go_before_sweep_cells_that_came_first():
    slots, order, never = Slots(1), [], threading.Event()
    holder = object()
    assert slots.acquire(holder, never)
    waiters = []
    for name, prio in (("cell 1", SWEEP), ("cell 2", SWEEP), ("alice", INTERACTIVE),
                       ("bob", INTERACTIVE)):
        w = Waiter(slots, name, prio, order)
        w.start()
        waiters.append(w)
        queued = len(waiters)
        _until(lambda n=queued: slots.waiting == n, what=f"{name} queued")
    by_name = {w.token_name: w for w in waiters}
    assert [slots.position(by_name[n]) for n in ("alice", "bob", "cell 1", "cell 2")] == \
        [1, 2, 3, 4]
    assert slots.waiting_with(SWEEP) == 2 and slots.waiting_with(INTERACTIVE) == 2
    slots.release(holder)
    for turn in range(1, len(waiters) + 1):  # each holds its slot until told to go on
        _until(lambda t=turn: len(order) == t, what=f"turn {turn}")
        by_name[order[-1]].go_on.set()
    for w in waiters:
        w.join(10)
    assert order == ["alice", "bob", "cell 1", "cell 2"]
    assert slots.busy == 0 and slots.waiting == 0


def test_a_sweep_cell_takes_a_free_slot_when_no_interactive_training_waits():
    slots, never = Slots(2), threading.Event()
    assert slots.acquire("someone training", never, INTERACTIVE)
    assert slots.acquire("a cell", never, SWEEP)  # a slot free, nobody waiting: at once
    assert slots.busy == 2


def test_a_waiter_is_told_its_wait_from_the_holders_and_those_ahead():
    slots, order = Slots(2), []
    holders = [Waiter(slots, f"h{i}", INTERACTIVE, order, remaining=r)
               for i, r in enumerate((10.0, 40.0))]
    for h in holders:
        h.start()
    _until(lambda: slots.busy == 2, what="two holders")
    ahead = Waiter(slots, "ahead", INTERACTIVE, order, expected=20.0)
    ahead.start()
    _until(lambda: slots.waiting == 1)
    cell = Waiter(slots, "cell", SWEEP, order, expected=100.0)  # behind: not counted
    cell.start()
    me = Waiter(slots, "me", INTERACTIVE, order)
    me.start()
    _until(lambda: slots.waiting == 3)
    try:
        assert slots.position(me) == 2
        est = slots.estimate_wait(me)
        assert est.seconds == 30.0 and (est.running, est.ahead) == (2, 1)
        assert slots.estimate_wait(holders[0]) is None  # not waiting
    finally:
        for w in (ahead, cell, me):
            w.cancel.set()
        for h in holders:
            h.go_on.set()
        for w in (*holders, ahead, cell, me):
            w.join(10)


def test_a_queued_training_shows_its_place_and_estimated_wait():
    slots, speeds = Slots(1), Throughput()
    first = TrainingJob([TINY.replace(steps=100_000)], slots=slots, throughput=speeds).start()
    _until(lambda: (first.runs[0].data.status_copy().get("steps_per_s") or 0) > 0,
           what="the first job's measured speed")
    second = TrainingJob([TINY.replace(steps=40)], slots=slots, throughput=speeds).start()
    try:
        _until(lambda: "Waiting" in second.runs[0].data.status_copy()["message"],
               what="the queued job's message")
        msg = second.runs[0].data.status_copy()["message"]
        assert "#1 in the queue" in msg and "about" in msg and "measured steps/s" in msg, msg
        assert isinstance(second.wait, WaitEstimate) and second.wait.running == 1
        # The first job has 100000 steps to go: a long wait, and it says so.
        assert second.wait.seconds == pytest.approx(first.remaining_s(), rel=0.5)
    finally:
        first.stop()
    assert first.join(30) and second.join(60)
    s = second.runs[0].data.status_copy()
    assert s["status"] == "finished" and s["message"] == "" and second.wait is None
    # Its speed is measured now: the next job's expected time comes from it.
    assert speeds.seconds_per_step(TINY) is not None


def test_the_cap_is_one_training_per_core_by_default(monkeypatch):
    import os

    monkeypatch.delenv("RNNLAB_MAX_TRAININGS", raising=False)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_capacity() == settings.get("RNNLAB_MAX_TRAININGS") == cores
    monkeypatch.setenv("RNNLAB_MAX_TRAININGS", "3")
    assert default_capacity() == 3


# ---------------------------------------------------------------- sweeps yield


class ThreadBackend(Backend):
    """A thread pool as a sweep backend (the cells here are plain functions)."""

    name, description = "threads", "threads"

    def __init__(self, workers):
        super().__init__()
        self.workers = workers
        self.pool = cf.ThreadPoolExecutor(workers)

    def _submit(self, fn, /, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def test_a_sweep_takes_a_slot_per_cell_and_yields_to_a_waiting_training():
    slots, order, never = Slots(1), [], threading.Event()
    running, most = [0], [0]
    lock = threading.Lock()
    gates = [threading.Event() for _ in range(3)]

    def cell(i):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            order.append(f"cell {i}")
        gates[i].wait(30)
        with lock:
            running[0] -= 1
        return i

    holder = object()
    assert slots.acquire(holder, never)  # someone is training
    be = SlottedBackend(ThreadBackend(2), slots)
    try:
        futures = [be.submit(cell, i) for i in range(3)]
        _until(lambda: slots.waiting_with(SWEEP) == 1, what="the sweep's first cell queued")
        assert be.waiting_for_slot and be.holding == 0
        person = Waiter(slots, "person", INTERACTIVE, order)
        person.start()
        _until(lambda: slots.waiting == 2)
        slots.release(holder)
        _until(lambda: order == ["person"], what="the person first")
        assert not futures[0].running() and not futures[0].done()
        person.go_on.set()  # the person's training ends: the cells go, one slot each
        for i in range(3):
            _until(lambda i=i: f"cell {i}" in order, what=f"cell {i}")
            assert slots.busy == 1 and be.holding == 1
            gates[i].set()
            assert futures[i].result(10) == i
        assert order == ["person", "cell 0", "cell 1", "cell 2"] and most[0] == 1
        _until(lambda: slots.busy == 0)
        assert be.mean_cell_s() is not None
    finally:
        for g in gates:
            g.set()
        be.shutdown()
        person.join(10)


def test_stopping_a_sweep_cancels_the_cells_waiting_for_a_slot():
    slots, never = Slots(1), threading.Event()
    assert slots.acquire("someone", never)
    be = SlottedBackend(ThreadBackend(1), slots)
    futures = [be.submit(lambda: 1) for _ in range(3)]
    _until(lambda: slots.waiting_with(SWEEP) == 1)
    be.abort()
    for f in futures:
        with pytest.raises(cf.CancelledError):
            f.result(10)
    _until(lambda: slots.waiting == 0, what="the sweep out of the queue")
    be.shutdown()
    slots.release("someone")
    assert slots.busy == 0


def test_a_sweep_started_from_the_app_runs_each_cell_in_a_training_slot(tmp_path):
    """The real thing, small: two cells on the local backend, each in a slot at SWEEP."""
    from core.sweeps import parse_archs, SweepSpec

    taken = []

    class Spy(Slots):
        def acquire(self, token, cancelled, priority=INTERACTIVE, **kw):
            ok = super().acquire(token, cancelled, priority, **kw)
            taken.append((priority, self.busy))
            return ok

    spec = SweepSpec(tasks=("adding",), variants=parse_archs("rnn_tanh"), seq_lens=(5, 8),
                     seeds=1, steps=20, base={"hidden_size": 8, "batch_size": 16,
                                              "eval_every": 10, "eval_size": 16})
    slots = Spy(1)
    job = SweepJob(spec, root=str(tmp_path), workers=2, slots=Slots(1),
                   training_slots=slots).start()
    assert job.join(240)
    assert job.state == "finished", job.error
    assert job.done == 2 and len(job.results()) == 2
    assert taken == [(SWEEP, 1), (SWEEP, 1)]  # one slot each, never two at once (cap 1)
    assert slots.busy == 0


# ---------------------------------------------------------------- AppTest: the queued page


def _queued_app():
    import streamlit as st

    from core.config import TrainConfig
    from ui.live import status_header
    from ui.state import attached_runs, start_stop_buttons

    config = TrainConfig(seq_len=8, hidden_size=6, batch_size=8, steps=100_000, eval_every=4,
                         eval_size=32, probe_every=4, seed=int(st.query_params["seed"]))
    job, datas, _ = attached_runs("q")
    job, datas, _ = start_stop_buttons("q", job, datas, lambda: [config])
    if datas:
        status_header(datas[0], job)


def test_a_queued_page_shows_the_estimated_wait(runs_dir, monkeypatch):
    """Two sessions, one training slot: the second page says where it stands and for how
    long, and how that was computed."""
    from streamlit.testing.v1 import AppTest

    import core.jobs
    import ui.state

    monkeypatch.setenv("RNNLAB_WORKER", "thread")
    monkeypatch.setattr(core.jobs, "GLOBAL_SLOTS", Slots(1))
    sessions = {name: ui.state.SessionJobs() for name in ("first", "second")}
    current = ["first"]
    monkeypatch.setattr(ui.state, "session_jobs", lambda: sessions[current[0]])
    pages = {}
    for name, seed in (("first", 1), ("second", 2)):
        current[0] = name
        at = pages[name] = AppTest.from_function(_queued_app, default_timeout=60)
        at.query_params["seed"] = str(seed)
        at.run()
        next(b for b in at.button if b.label == "Train").click().run()
        assert not at.exception, at.exception
        if name == "first":
            first = sessions["first"].get("q")
            _until(lambda j=first: (j.runs[0].data.status_copy().get("steps_per_s") or 0) > 0)
    try:
        queued = sessions["second"].get("q")
        _until(lambda: queued.wait is not None, what="an estimate")
        at = pages["second"]
        at.run()
        text = " ".join(i.value for i in at.info)
        assert "Waiting for a training slot: #1 in the queue, about" in text, text
        assert "measured steps/s" in text
    finally:
        for s in sessions.values():
            job = s.get("q")
            job.stop()
            job.join(30)

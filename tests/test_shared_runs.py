"""One training per identical run: Train presses with the same identity share one job.

At the core (core.jobs.JobRegistry): twenty presses at once start one training and
watch it live; a press after it finished opens the stored run; a run handed to another
session is shared; Stop on a run others watch leaves it to them; a session's end
stops a job only when nobody else watches it; delete is refused while the run trains,
while another session watches it and once it is shared. Then with AppTest: two browser
sessions pressing Train on one config.
"""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.jobs import JobRegistry, TrainingJob
from core.runs import RunError, RunStore

TINY = TrainConfig(seq_len=8, hidden_size=6, batch_size=8, steps=12, eval_every=4,
                   eval_size=32, probe_every=4)
LONG = TINY.replace(steps=100_000)


class Session:
    """A stand-in for a browser session (ui.state.SessionJobs): any object will do."""

    def __init__(self, name: str, owner: str | None = None):
        self.name, self.owner = name, owner

    def __repr__(self):
        return f"Session({self.name})"


@pytest.fixture
def reg():
    return JobRegistry(grace_s=0.3)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def press(reg, store, session, configs, page="train", started=None, slots=None):
    """What a Train press does (ui.state.train_or_attach without Streamlit)."""
    def start(identity):
        job = TrainingJob(list(configs), store=store, slots=slots, identity=identity).start()
        if started is not None:
            started.append(job)
        return job

    return reg.train_or_attach(list(configs), store, session, page, start)


def _stop_all(*jobs):
    for j in jobs:
        j.stop()
    for j in jobs:
        assert j.join(30)


# ---------------------------------------------------------------- one training


def test_twenty_presses_at_once_start_one_training_and_twenty_live_pages(reg, store):
    sessions = [Session(f"s{i}") for i in range(20)]
    started, results = [], {}
    barrier = threading.Barrier(len(sessions))

    def go(s):
        barrier.wait()
        results[s] = press(reg, store, s, [LONG], started=started)

    threads = [threading.Thread(target=go, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert len(started) == 1 and len(store.ids()) == 1
        job = started[0]
        assert sorted(r.how for r in results.values()) == ["attached"] * 19 + ["started"]
        assert all(r.job is job and r.run_ids == job.run_ids for r in results.values())
        assert reg.watchers(job.run_ids[0]) == set(sessions)
        assert job.shared  # handed to 19 sessions besides the one that started it
        deadline = time.time() + 30
        while time.time() < deadline and job.runs[0].data.status_copy()["step"] < 3:
            time.sleep(0.05)
        # Everyone draws the same live data, from wherever the training is.
        assert job.runs[0].data.status_copy()["step"] >= 3
    finally:
        _stop_all(*started)


def test_a_press_after_it_finished_opens_the_stored_run(reg, store):
    a, b = Session("a"), Session("b")
    first = press(reg, store, a, [TINY])
    assert first.how == "started" and first.job.join(60)
    assert first.job.runs[0].data.status_copy()["status"] == "finished"
    again = press(reg, store, b, [TINY])
    assert again.how == "opened" and again.job is None and again.run_ids == first.run_ids
    assert store.ids() == first.run_ids  # nothing trained again
    assert store.read_status(first.run_ids[0])["shared"] is True
    assert reg.watchers(first.run_ids[0]) == {a, b}


def test_another_config_another_group_order_or_store_trains_anew(reg, store, tmp_path):
    a = Session("a")
    base = press(reg, store, a, [TINY])
    assert base.job.join(60)
    for configs in ([TINY.replace(seed=1)], [TINY.replace(arch="gru")],
                    [TINY.replace(arch="gru"), TINY], [TINY, TINY.replace(arch="gru")]):
        got = press(reg, store, a, configs, page=str(configs))
        assert got.how == "started", configs
        assert got.job.join(60)
    group = press(reg, store, Session("b"), [TINY, TINY.replace(arch="gru")])
    assert group.how == "opened" and len(group.run_ids) == 2  # the whole group, in order
    other = press(reg, RunStore(tmp_path / "elsewhere"), a, [TINY])
    assert other.how == "started"  # a store has its own runs
    assert other.job.join(60)


def test_a_stopped_run_is_not_reused_nor_a_job_that_is_stopping(reg, store):
    a, b = Session("a"), Session("b")
    first = press(reg, store, a, [LONG])
    first.job.wait_started()
    assert reg.stop_or_leave(first.job, a, "train") == "stopped"
    second = press(reg, store, b, [LONG])  # the job is stopping: do not hand it out
    assert second.how == "started" and second.job is not first.job
    assert first.job.join(30)
    assert store.read_status(first.run_ids[0])["status"] == "stopped"
    _stop_all(second.job)
    third = press(reg, store, b, [LONG], page="other")
    assert third.how == "started"  # a stopped run is incomplete: trained again
    _stop_all(third.job)


def test_the_same_owner_in_a_new_session_does_not_make_a_run_shared(reg, store):
    """A reload is a new session; with an owner token kept across reloads (issue 18,
    section 5) it is the same owner, and its own run stays its own."""
    first = press(reg, store, Session("tab", owner="alice"), [LONG])
    again = press(reg, store, Session("reloaded", owner="alice"), [LONG])
    try:
        assert again.how == "attached" and not first.job.shared
        press(reg, store, Session("bob's", owner="bob"), [LONG])
        assert first.job.shared
    finally:
        _stop_all(first.job)


# ---------------------------------------------------------------- stop, leave, grace


def test_stop_on_a_shared_run_leaves_it_to_the_others_and_the_last_one_stops_it(reg, store):
    a, b = Session("a"), Session("b")
    job = press(reg, store, a, [LONG]).job
    press(reg, store, b, [LONG])
    job.wait_started()
    assert reg.stop_or_leave(job, a, "train") == "left"
    time.sleep(0.3)
    assert job.alive and not job.stopping and reg.watchers(job.run_ids[0]) == {b}
    assert reg.stop_or_leave(job, b, "train") == "stopped"
    assert job.join(30)
    assert job.runs[0].data.status_copy()["status"] == "stopped"


def test_a_session_that_ends_stops_a_job_only_when_nobody_else_watches_it(reg, store):
    a, b = Session("a"), Session("b")
    job = press(reg, store, a, [LONG]).job
    press(reg, store, b, [LONG])
    reg.forget(a)
    time.sleep(0.8)  # beyond the grace period
    assert job.alive and not job.stopping
    reg.forget(b)
    reload = Session("b, reloaded")
    time.sleep(0.1)
    reg.watch(reload, "train", job.run_ids)  # a reload claims it back within the grace
    time.sleep(0.8)
    assert job.alive and not job.stopping
    reg.forget(reload)
    assert job.join(30)
    assert job.runs[0].data.status_copy()["status"] == "stopped"


def test_starting_another_training_on_a_page_stops_its_previous_one_unless_shared(reg, store):
    a, b = Session("a"), Session("b")
    solo = press(reg, store, a, [LONG]).job
    shared = press(reg, store, a, [LONG.replace(seed=7)]).job  # same page: solo is dropped
    assert solo.join(30) and solo.runs[0].data.status_copy()["status"] == "stopped"
    press(reg, store, b, [LONG.replace(seed=7)])
    press(reg, store, a, [LONG.replace(seed=8)])  # a moves on; b still watches the shared one
    time.sleep(0.3)
    assert shared.alive and not shared.stopping
    _stop_all(*[j for j in reg.active()])


# ---------------------------------------------------------------- delete


def test_delete_is_refused_while_training_watched_by_another_or_shared(reg, store):
    a, b = Session("a"), Session("b")
    first = press(reg, store, a, [TINY])
    run_id = first.run_ids[0]
    assert "still training" in (reg.delete_refusal(run_id, a, store) or "")
    assert first.job.join(60)
    assert reg.delete_refusal(run_id, a, store) is None  # a's own run, watched by a only
    press(reg, store, b, [TINY])  # b gets the finished run: now shared, b watches it
    assert "1 other session is watching it" == reg.delete_refusal(run_id, a, store)
    reg.forget(b)
    assert "shared" in reg.delete_refusal(run_id, a, store)
    with pytest.raises(RunError, match="shared"):
        store.delete(run_id)  # the store itself refuses, whichever page forgets to ask
    store.delete(run_id, force=True)  # whoever cleans up a deployment may
    assert store.ids() == []


def test_an_unshared_run_watched_only_by_its_session_may_be_deleted(reg, store):
    a = Session("a")
    got = press(reg, store, a, [TINY])
    assert got.job.join(60)
    assert reg.delete_refusal(got.run_ids[0], a, store) is None
    store.delete(got.run_ids[0])
    again = press(reg, store, a, [TINY], page="again")
    assert again.how == "started"  # deleted: trained again
    assert again.job.join(60)


def test_an_uploaded_copy_carries_no_identity_and_is_never_handed_out(reg, store):
    from core.archive import export_run, import_run

    got = press(reg, store, Session("a"), [TINY])
    assert got.job.join(60)
    copy = import_run(store, export_run(store, got.run_ids[0]), "run.zip")
    assert store.identity_of(copy) is None and "shared" not in store.read_status(copy)
    store.delete(got.run_ids[0])
    assert press(reg, store, Session("b"), [TINY]).how == "started"
    _stop_all(*reg.active())


# ---------------------------------------------------------------- AppTest: two sessions


def _app():
    import streamlit as st

    from core.config import TrainConfig
    from ui.state import attached_runs, start_stop_buttons

    steps = int(st.query_params.get("steps", "100000"))
    config = TrainConfig(seq_len=8, hidden_size=6, batch_size=8, steps=steps, eval_every=4,
                         eval_size=32, probe_every=4, threads=1)
    job, datas, _ = attached_runs("shared")
    job, datas, _ = start_stop_buttons("shared", job, datas, lambda: [config])
    if datas:
        s = datas[0].status_copy()
        st.markdown(f"run {s['run_id']} status {s['status']}")


class Browser:
    """One browser session on ``_app``. AppTest gives every instance in a process the
    same session id ("test session id"), hence one session-scoped SessionJobs for all:
    ui.state.session_jobs is switched to this browser's own before each of its runs."""

    current: list = [None]

    def __init__(self, name: str, steps: int):
        from ui.state import SessionJobs

        self.jobs = SessionJobs()
        self.at = AppTest.from_function(_app, default_timeout=60)
        self.at.query_params["steps"] = str(steps)
        self.run()

    def run(self) -> Browser:
        Browser.current[0] = self.jobs
        self.at.run()
        assert not self.at.exception, self.at.exception
        return self

    def press(self, label: str) -> Browser:
        Browser.current[0] = self.jobs
        next(b for b in self.at.button if b.label == label).click().run()
        assert not self.at.exception, self.at.exception
        return self

    @property
    def run_id(self) -> str | None:
        v = self.at.query_params.get("run")
        return v[0] if isinstance(v, list) else v

    def shown(self) -> str:
        return " ".join(m.value for m in self.at.markdown)

    def infos(self) -> str:
        return " ".join(i.value for i in self.at.info)


@pytest.fixture
def browsers(runs_dir, monkeypatch):
    import ui.state

    monkeypatch.setenv("RNNLAB_WORKER", "thread")  # trainings in threads: fast to start
    monkeypatch.setattr(ui.state, "session_jobs", lambda: Browser.current[0])
    return runs_dir


def _finished(b: Browser) -> Browser:
    deadline = time.time() + 60
    while time.time() < deadline and "status finished" not in b.run().shown():
        time.sleep(0.2)
    assert f"run {b.run_id} status finished" in b.shown()
    return b


def test_two_sessions_pressing_train_share_one_live_training(browsers):
    from ui.runtime import registry

    first = Browser("first", 100_000).press("Train")
    run_id = first.run_id
    second = Browser("second", 100_000).press("Train")
    assert second.run_id == run_id
    assert "already training for another session" in second.infos()
    assert [p.name for p in browsers.iterdir()] == [run_id]  # one training
    job = registry().get(run_id)
    assert job is not None and job.shared and len(registry().watchers(run_id)) == 2
    # Stop in the first session leaves the run to the second one.
    first.press("Stop")
    assert "goes on training for them" in first.infos()
    assert "status" not in first.shown() and first.run_id is None
    assert job.alive and not job.stopping
    # The second session is the last watcher: its Stop stops the training.
    second.press("Stop")
    assert job.join(30)
    assert f"run {run_id} status stopped" in second.run().shown()


def test_a_second_session_opens_the_finished_identical_run(browsers):
    from ui.state import run_store

    first = _finished(Browser("first", 12).press("Train"))
    second = Browser("second", 12).press("Train")
    assert "trained already" in second.infos()
    assert f"run {first.run_id} status finished" in second.shown()
    assert run_store().ids() == [first.run_id]
    assert run_store().read_status(first.run_id)["shared"] is True


def test_the_runs_page_rule_refuses_a_run_another_session_watches(browsers):
    """ui.state.delete_refusal, as the Runs page calls it, from another session."""
    first = _finished(Browser("first", 12).press("Train"))

    def runs_page():
        import streamlit as st

        from ui.state import delete_refusal

        st.markdown(f"refusal: {delete_refusal(st.query_params['id'])}")

    from ui.state import SessionJobs

    Browser.current[0] = SessionJobs()  # a third session
    page = AppTest.from_function(runs_page, default_timeout=60)
    page.query_params["id"] = first.run_id
    page.run()
    assert "refusal: 1 other session is watching it" in " ".join(m.value for m in page.markdown)
    Browser.current[0] = first.jobs
    assert "refusal: None" in " ".join(m.value for m in page.run().markdown)  # its own run

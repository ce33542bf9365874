"""Who may touch what (issue 18, §5), in core: a run's owner, who sees it, who may delete
it, and the caps per owner and store-wide (core.owners, core.runs, core.jobs)."""

from __future__ import annotations

import json

import pytest

from core import owners
from core.archive import export_run, import_run
from core.config import TrainConfig
from core.jobs import JobRegistry, TrainingJob
from core.runs import RunError, RunStore

TINY = TrainConfig(seq_len=8, hidden_size=6, batch_size=8, steps=12, eval_every=4,
                   eval_size=32, probe_every=4)
ALICE, BOB = owners.owner_id("alice-token"), owners.owner_id("bob-token")


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def saved(store: RunStore, status: str = "finished", **fields) -> str:
    """A run in the store with these status fields (no training: the records don't matter)."""
    writer = store.create(TINY, status=fields)
    writer.data.set_status(status)
    writer.flush()
    return writer.data.status["run_id"]


class Session:
    def __init__(self, owner):
        self.owner = owner


# ---------------------------------------------------------------- the rules


def test_the_owner_id_is_a_hash_that_does_not_hold_the_token():
    assert ALICE == owners.owner_id("alice-token") != BOB
    assert "alice" not in ALICE and ALICE.startswith("o-") and len(ALICE) == 22


@pytest.mark.parametrize("status,owner_now,alice_sees,bob_sees,label_for_alice", [
    ({"owner": ALICE, "status": "finished"}, ALICE, True, False, "you"),
    ({"owner": ALICE, "status": "finished", "shared": True}, None, True, True, "shared"),
    ({"owner": ALICE, "status": "finished", "lesson": True}, None, True, True, "lesson"),
    ({"owner": ALICE, "status": "stopped", "lesson": True}, ALICE, True, True, "you"),
    ({"status": "finished"}, None, True, True, "no owner"),
    ({"owner": BOB, "status": "finished"}, BOB, False, True, "visitor " + BOB[2:8]),
])
def test_whose_run_it_is_and_who_sees_it(status, owner_now, alice_sees, bob_sees,
                                         label_for_alice):
    assert owners.owner_of(status) == owner_now
    assert owners.visible(status, ALICE) is alice_sees
    assert owners.visible(status, BOB) is bob_sees
    assert owners.owner_label(status, ALICE) == label_for_alice


def test_only_the_owner_may_delete_and_runs_of_no_one_are_the_presenters():
    assert owners.ownership_refusal({"owner": ALICE, "status": "finished"}, ALICE) is None
    assert "another visitor" in owners.ownership_refusal({"owner": BOB}, ALICE)
    assert "shared" in owners.ownership_refusal({"owner": ALICE, "shared": True}, ALICE)
    lesson = {"owner": ALICE, "lesson": True, "status": "finished"}
    assert "lesson run" in owners.ownership_refusal(lesson, ALICE)
    assert owners.ownership_refusal({**lesson, "status": "stopped"}, ALICE) is None
    assert "presenter" in owners.ownership_refusal({"status": "finished"}, ALICE)


# ---------------------------------------------------------------- the store


def test_the_list_shows_an_owner_its_runs_and_the_shared_ones(store):
    mine = saved(store, owner=ALICE)
    theirs = saved(store, owner=BOB)
    legacy = saved(store)
    lesson = saved(store, owner=BOB, lesson=True)
    assert set(store.list(ALICE)["run_id"]) == {mine, legacy, lesson}
    assert set(store.list(BOB)["run_id"]) == {theirs, legacy, lesson}
    assert set(store.list()["run_id"]) == {mine, theirs, legacy, lesson}  # the CLI
    every = store.list(ALICE, everything=True).set_index("run_id")["owner"]
    assert every[mine] == "you" and every[theirs] == f"visitor {BOB[2:8]}"
    assert every[legacy] == "no owner" and every[lesson] == "lesson"


def test_the_store_refuses_to_delete_another_owners_run(store):
    mine, theirs, legacy = saved(store, owner=ALICE), saved(store, owner=BOB), saved(store)
    with pytest.raises(RunError, match="another visitor"):
        store.delete(theirs, by=ALICE)
    with pytest.raises(RunError, match="only the presenter"):
        store.delete(legacy, by=ALICE)
    store.delete(mine, by=ALICE)
    store.delete(theirs, force=True)  # the presenter
    assert store.ids() == [legacy]


def test_caps_hold_per_owner_and_store_wide(store, monkeypatch):
    monkeypatch.setenv("RNNLAB_MAX_RUNS_PER_OWNER", "2")
    monkeypatch.setenv("RNNLAB_MAX_STORED_RUNS", "5")
    first = saved(store, owner=ALICE)
    saved(store, owner=ALICE)
    assert store.room_refusal(1, BOB) is None
    refusal = store.room_refusal(1, ALICE)
    assert "you have 2 runs of your own" in refusal and "limit per visitor on this server is 2"\
        in refusal and "delete one of your runs" in refusal
    # A run that became shared is no longer counted as the owner's (nor deletable by it).
    status = json.loads((store.path(first) / "status.json").read_text())
    store.mark_shared(first)
    assert status["owner"] == ALICE and store.owned(ALICE) != [first]
    assert store.room_refusal(1, ALICE) is None
    saved(store, owner=BOB)
    assert store.room_refusal(1, BOB) is None and store.room_refusal(2, BOB) is not None
    saved(store)
    saved(store)
    assert "the run store is full (5 runs)" in store.room_refusal(1, None)
    assert "the run store is full" in store.room_refusal(1, owners.owner_id("carol"))


def test_a_download_does_not_carry_the_owner_and_an_upload_is_the_uploaders(store):
    job = TrainingJob([TINY], store=store, slots=None, owner=ALICE).start()
    assert job.join(60)
    run_id = job.run_ids[0]
    assert store.read_status(run_id)["owner"] == ALICE
    data = export_run(store, run_id)
    assert ALICE.encode() not in data
    copy = import_run(store, data, "run.zip", owner=BOB)
    assert store.read_status(copy)["owner"] == BOB
    assert "owner" not in store.read_status(import_run(store, data, "run.zip"))


# ---------------------------------------------------------------- the registry


def test_a_job_records_its_owner_and_whether_it_is_a_lesson_run(store):
    job = TrainingJob([TINY], store=store, slots=None, owner=ALICE, lesson=True)
    status = store.read_status(job.run_ids[0])
    assert status["owner"] == ALICE and status["lesson"] is True
    plain = TrainingJob([TINY], store=store, slots=None, owner=Session(ALICE))
    assert "owner" not in store.read_status(plain.run_ids[0])  # not a string: no owner


def press(reg, store, session, lesson=False):
    def start(identity):
        return TrainingJob([TINY], store=store, slots=None, identity=identity,
                           owner=session.owner, lesson=lesson).start()

    return reg.train_or_attach([TINY], store, session, "train", start)


def test_delete_rule_for_owners_and_the_presenter(store):
    reg = JobRegistry(grace_s=0.3)
    alice, bob = Session(ALICE), Session(BOB)
    got = press(reg, store, alice)
    assert got.job.join(60)
    run_id = got.run_ids[0]
    reg.forget(alice)
    assert reg.delete_refusal(run_id, alice, store) is None
    assert "another visitor" in reg.delete_refusal(run_id, bob, store)
    assert reg.delete_refusal(run_id, bob, store, presenter=True) is None


def test_reopening_ones_own_finished_run_keeps_it_ones_own(store):
    reg = JobRegistry(grace_s=0.3)
    got = press(reg, store, Session(ALICE))
    assert got.job.join(60)
    again = press(reg, store, Session(ALICE))  # a reload: a new session, the same owner
    assert again.how == "opened" and not store.read_status(got.run_ids[0]).get("shared")
    bob = Session(BOB)
    assert press(reg, store, bob).how == "opened"
    assert store.read_status(got.run_ids[0])["shared"] is True
    reg.forget(bob)
    assert "shared" in reg.delete_refusal(got.run_ids[0], Session(ALICE), store)


def test_a_finished_lesson_run_is_no_ones_but_a_stopped_one_stays_its_starters(store):
    reg = JobRegistry(grace_s=0.3)
    got = press(reg, store, Session(ALICE), lesson=True)
    assert got.job.join(60)
    status = store.read_status(got.run_ids[0])
    assert status["status"] == "finished" and owners.owner_of(status) is None
    assert owners.visible(status, BOB) and store.owned(ALICE) == []
    stopped = saved(store, status="stopped", owner=ALICE, lesson=True)
    assert store.owned(ALICE) == [stopped]

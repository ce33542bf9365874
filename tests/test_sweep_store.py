"""The sweep store as readers meet it: listing while a sweep starts, messages without
server paths, and the one-writer lock (refused while its process lives, taken over
once it is dead).

No training here: a fake executor returns made-up rows at once, so these run in
well under a second.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import socket
import subprocess
import sys

import pandas as pd
import pytest

import core.sweeps.run as sweep_run
import core.sweeps.store as store
from core.sweeps import SweepError, SweepSpec, list_sweeps, load_sweep, run_sweep, sweep_path
from core.sweeps.store import LOCK_FILE, SweepLock

SPEC = SweepSpec(tasks=("adding",), variants=("rnn_tanh", "lstm"), seq_lens=(5, 8), seeds=1,
                 steps=20, base={"hidden_size": 8})


class InstantRuns(cf.Executor):
    """An executor that 'runs' a cell by returning a made-up finished row at once."""

    def submit(self, fn, cell, /):
        f = cf.Future()
        f.set_result({**cell["coords"], "solved": cell["coords"]["arch"] == "lstm",
                      "steps_to_solve": 10 if cell["coords"]["arch"] == "lstm" else None,
                      "steps_done": 20, "status": "finished", "wall_s": 0.0,
                      "cell_id": cell["cell_id"]})
        return f


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_lock(path, pid, host=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname()}))


# ------------------------------------------------------------------ listing while it starts


def test_a_starting_sweep_is_never_listed_as_broken(tmp_path, monkeypatch):
    """Issue 15: the Sweep page listed a sweep it had just started as "broken", with
    "cannot read <server path>/spec.json", because the folder existed before its
    spec.json. List the store at every write the sweep makes: the sweep is absent or
    listed whole, as starting, running or finished, never broken."""
    seen = []

    def listing_first(write):
        def wrapped(path, *args):
            rows = list_sweeps(tmp_path)
            seen.extend(rows.to_dict("records"))
            return write(path, *args)
        return wrapped

    for module in (store, sweep_run):
        monkeypatch.setattr(module, "write_json", listing_first(module.write_json))
    monkeypatch.setattr(sweep_run, "atomic_write", listing_first(sweep_run.atomic_write))

    run_sweep(SPEC, backend=InstantRuns(), root=tmp_path)

    assert seen, "the store was never listed"
    states = [r["state"] for r in seen]
    assert "broken" not in states, [r["description"] for r in seen if r["state"] == "broken"]
    assert states[0] == "starting" and "running" in states
    assert {r["description"] for r in seen} == {SPEC.describe()}
    assert {r["total"] for r in seen} == {4}
    final = list_sweeps(tmp_path).iloc[0]
    assert final["state"] == "finished" and final["done"] == 4 and final["solved"] == 2
    # nothing left behind: no hidden folder of the assembly, no lock
    assert [p.name for p in (tmp_path / "sweeps").iterdir()] == [SPEC.sweep_id]
    assert not (sweep_path(tmp_path, SPEC.sweep_id) / LOCK_FILE).exists()


def test_a_sweep_whose_writer_died_while_starting_lists_as_interrupted(tmp_path):
    path = sweep_path(tmp_path, SPEC.sweep_id)
    store.create_sweep_dir(path, SPEC, {"state": "starting", "pid": dead_pid(),
                                        "host": socket.gethostname(), "updated": 0})
    assert list_sweeps(tmp_path).loc[0, "state"] == "interrupted"
    store.create_sweep_dir(path, SPEC, {})  # the same spec again: accepted, not rewritten
    other = SweepSpec(tasks=("adding",), variants=("gru",), seq_lens=(5,), seeds=1, steps=20)
    (path / "spec.json").write_text(json.dumps(other.to_dict()))
    with pytest.raises(SweepError, match="holds a different spec"):
        store.create_sweep_dir(path, SPEC, {})


def test_unreadable_sweeps_are_listed_as_broken_without_server_paths(tmp_path):
    root = tmp_path / "store"
    base = root / "sweeps"
    (base / "no-spec").mkdir(parents=True)                     # e.g. made by an older version
    (base / "bad-spec").mkdir()
    (base / "bad-spec" / "spec.json").write_text("{not json")
    good = sweep_path(root, SPEC.sweep_id)
    run_sweep(SPEC, backend=InstantRuns(), root=root)
    bad_results = base / "bad-results"
    bad_results.mkdir()
    (bad_results / "spec.json").write_text((good / "spec.json").read_text())
    (bad_results / "results.parquet").write_bytes(b"not parquet at all")
    (base / ".adding-123.abcd.tmp").mkdir()                    # a sweep being assembled

    listing = list_sweeps(root).set_index("sweep_id")
    assert set(listing.index) == {"no-spec", "bad-spec", "bad-results", SPEC.sweep_id}
    assert listing.loc[SPEC.sweep_id, "state"] == "finished"
    for name in ("no-spec", "bad-spec", "bad-results"):
        row = listing.loc[name]
        assert row["state"] == "broken"
        assert str(tmp_path) not in row["description"] and "/tmp" not in row["description"]
    assert "sweeps/no-spec/spec.json" in listing.loc["no-spec", "description"]
    assert "sweeps/bad-results/results.parquet" in listing.loc["bad-results", "description"]
    # What the page shows when one is opened: the same, and no path either.
    for name in ("no-spec", "bad-spec", "bad-results", "gone", "../etc"):
        with pytest.raises(SweepError) as e:
            load_sweep(root, name)
        assert str(tmp_path) not in str(e.value), str(e.value)


# ------------------------------------------------------------------ one writer per sweep


def test_a_lock_held_by_a_live_process_is_refused_with_a_clear_message(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = sweep_path(tmp_path, SPEC.sweep_id)
        write_lock(path, holder.pid)
        with pytest.raises(SweepError) as e:
            run_sweep(SPEC, backend=InstantRuns(), root=tmp_path)
        message = str(e.value)
        assert f"being run by process {holder.pid} on {socket.gethostname()}" in message
        assert f"sweeps/{SPEC.sweep_id}/writer.lock" in message and str(tmp_path) not in message
        # refused, not taken: the lock still names its holder and nothing ran
        assert json.loads((path / LOCK_FILE).read_text())["pid"] == holder.pid
        assert not (path / "results.parquet").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_on_another_host_is_refused(tmp_path):
    path = tmp_path / "s"
    write_lock(path, 1, host="elsewhere.example")
    with pytest.raises(SweepError, match="on elsewhere.example"):
        with SweepLock(path, "s"):
            pass


def test_a_lock_whose_process_is_dead_is_taken_over(tmp_path):
    """What a SIGKILLed writer leaves behind: its lock, and status "running"."""
    path = sweep_path(tmp_path, SPEC.sweep_id)
    pid = dead_pid()
    store.create_sweep_dir(path, SPEC, {"state": "running", "pid": pid,
                                        "host": socket.gethostname(), "updated": 0})
    write_lock(path, pid)
    assert list_sweeps(tmp_path).loc[0, "state"] == "interrupted"
    _, results = run_sweep(SPEC, backend=InstantRuns(), root=tmp_path)
    assert len(results) == 4 and (results["status"] == "finished").all()
    assert not (path / LOCK_FILE).exists()  # released at the end
    assert load_sweep(tmp_path, SPEC.sweep_id).status["state"] == "finished"
    assert pd.read_parquet(path / "results.parquet")["cell_id"].is_unique

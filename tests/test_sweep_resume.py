"""A sweep killed with SIGKILL resumes when the same command is run again.

The README promises it; a user meets it like this: a sweep started from a shell,
killed outright (kill -9, the machine's OOM killer, a closed ssh session without
nohup), then the same command typed again. The killed writer leaves its
``writer.lock`` and a status that says "running"; the second command must take
the stale lock over, skip every run already saved, and run only the rest.

It once failed with ``NameError: _pid_alive`` while taking the lock over.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core.sweeps import add_sweep_arguments, list_sweeps, spec_from_args, sweep_path
from core.sweeps.store import LOCK_FILE, RESULTS_FILE

ROOT = Path(__file__).resolve().parents[1]

# 2 archs × 2 lengths × 2 seeds = 8 runs of ≤ 400 steps, about a second each on one
# worker: long enough to kill the sweep between two runs, short enough for `make test`.
GRID = ["--task", "adding", "--archs", "rnn_tanh,lstm", "--seq-lens", "5,8", "--seeds", "2",
        "--steps", "400", "--set", "hidden_size=8", "--set", "batch_size=16",
        "--set", "eval_every=10", "--set", "eval_size=16", "--workers", "1"]


def finished_rows(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame({"status": [], "cell_id": []})
    df = pd.read_parquet(path)  # replaced atomically by the writer: never torn
    return df[df["status"] == "finished"]


@pytest.mark.slow
def test_a_sigkilled_sweep_resumes_with_the_same_command(tmp_path):
    out = tmp_path / "runs"
    argv = [*GRID, "--out", str(out)]
    cmd = [sys.executable, "-m", "core", "sweep", *argv]
    spec = spec_from_args(add_sweep_arguments(argparse.ArgumentParser()).parse_args(argv))
    total = len(spec.cells)
    assert total == 8
    results_file = sweep_path(out, spec.sweep_id) / RESULTS_FILE

    # 1. Start it in a session of its own (so its loky worker is in its process group),
    #    and wait until some, not all, runs are saved. Meanwhile the sweep lists as
    #    starting or running, never as broken (issue 15).
    with open(tmp_path / "first.err", "w") as err:
        first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                 start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while len(finished_rows(results_file)) < 1:
            assert first.poll() is None, (
                f"the sweep ended (exit {first.returncode}) before it could be killed: "
                + (tmp_path / "first.err").read_text()[-2000:])
            assert time.monotonic() < deadline, "no run finished within 180 s"
            listing = list_sweeps(out)
            for state, description in zip(listing["state"], listing["description"]):
                assert state in ("starting", "running"), (state, description)
            time.sleep(0.05)
    finally:
        # 2. Kill it outright, worker included, and reap it so its pid is really gone.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while True:  # the worker was killed with its group; wait until it is reaped too
        try:
            os.killpg(first.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the killed sweep's process group lives on"
        time.sleep(0.1)

    before = finished_rows(results_file).sort_values("cell_id").reset_index(drop=True)
    assert 1 <= len(before) < total, f"{len(before)} of {total} runs were saved before the kill"
    lock = json.loads((results_file.parent / LOCK_FILE).read_text())
    assert lock["pid"] == first.pid  # the killed writer's lock is still there: stale
    assert list_sweeps(out).loc[0, "state"] == "interrupted"

    # 3. The same command again.
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    lines = second.stdout.strip().splitlines()
    assert len(lines) == 1, second.stdout
    report = json.loads(lines[0])
    assert report["sweep_id"] == spec.sweep_id
    assert report["runs"] == total and report["total"] == total and report["errors"] == 0
    assert (f"{total - len(before)} run(s) to do of {total}, {len(before)} already done"
            in second.stderr), second.stderr[-2000:]

    # Every cell exactly once, nothing lost, nothing duplicated ...
    after = pd.read_parquet(results_file)
    assert len(after) == total and after["cell_id"].is_unique
    assert set(after["cell_id"]) == {c.cell_id for c in spec.cells}
    assert (after["status"] == "finished").all()
    assert not after.duplicated(["task", "arch", "seq_len", "seed"]).any()
    # ... and the runs saved before the kill were not trained again: their rows are
    # unchanged to the last digit of wall_s, worker (host:pid) included.
    kept = after[after["cell_id"].isin(before["cell_id"])].sort_values("cell_id")
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), before)
    new = after[~after["cell_id"].isin(before["cell_id"])]
    assert not set(new["worker"]) & set(before["worker"])  # the rest ran in new workers
    assert not (results_file.parent / LOCK_FILE).exists()
    assert list_sweeps(out).loc[0, "state"] == "finished"

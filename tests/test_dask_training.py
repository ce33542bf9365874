"""Trainings on a Dask cluster (core.dask_training): TrainingJob's third mode.

A LocalCluster (worker processes, two of them, one thread each) started as the app
starts it ($RNNLAB_DASK_SCHEDULER=local) trains through TrainingJob: records arrive
while it trains, the result is the local training's bit for bit, Stop stops it (also
while it waits on the cluster), a killed worker leaves its run "interrupted" with the
records so far, and the Train page trains on the cluster. A cluster whose workers
cannot import the project says how to fix it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import dask_training, settings
from core.config import TrainConfig
from core.executors import BackendError, cluster_import_error
from core.identity import run_identity
from core.jobs import TrainingJob, resolve_mode
from core.runs import RunStore
from core.settings import SettingError

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(task="adding", arch="lstm", seq_len=10, hidden_size=8, batch_size=16,
                   probe_every=5, eval_every=20, eval_size=64, steps=300)
TABLES = ("metrics", "evals", "probes", "gates", "summaries")


# ---------------------------------------------------------------- no cluster needed


def test_the_setting_takes_local_or_a_scheduler_address(monkeypatch):
    for value in ("local", "tcp://127.0.0.1:8786", "scheduler:8786", "tls://[::1]:8786"):
        monkeypatch.setenv("RNNLAB_DASK_SCHEDULER", value)
        assert settings.get("RNNLAB_DASK_SCHEDULER") == value
    monkeypatch.setenv("RNNLAB_DASK_SCHEDULER", "")
    assert settings.get("RNNLAB_DASK_SCHEDULER") is None
    for bad in ("yes", "tcp://host", "http://host:80/x"):
        monkeypatch.setenv("RNNLAB_DASK_SCHEDULER", bad)
        with pytest.raises(SettingError, match=f"RNNLAB_DASK_SCHEDULER={bad!r} is not allowed: "
                                               "RNNLAB_DASK_SCHEDULER takes `local`, or a "
                                               "scheduler address"):
            settings.get("RNNLAB_DASK_SCHEDULER")


def test_process_mode_becomes_dask_when_a_cluster_is_set(monkeypatch):
    monkeypatch.delenv("RNNLAB_DASK_SCHEDULER", raising=False)
    assert [resolve_mode(m) for m in ("thread", "process", "dask")] == [
        "thread", "process", "dask"]
    monkeypatch.setenv("RNNLAB_DASK_SCHEDULER", "local")
    assert [resolve_mode(m) for m in ("thread", "process", "dask")] == [
        "thread", "dask", "dask"]
    with pytest.raises(ValueError, match="unknown training mode"):
        resolve_mode("fork")


def test_an_import_error_on_the_cluster_says_to_set_pythonpath():
    message = cluster_import_error(ModuleNotFoundError("No module named 'core'"))
    assert "PYTHONPATH=" in message and "dask worker" in message
    # Client.run hands the worker's error back wrapped in a bare Exception.
    assert "PYTHONPATH=" in cluster_import_error(
        Exception("ModuleNotFoundError(\"No module named 'core'\")"))
    assert cluster_import_error(ValueError("something else")) is None


def test_a_cluster_that_cannot_be_reached_fails_the_job_with_the_reason(monkeypatch, tmp_path):
    """Connecting happens on the job's thread (the page says so meanwhile); the failure is
    the run's message, and the next press within 10 s does not wait for it again."""
    calls = []

    class Unreachable:
        def __init__(self, setting):
            calls.append(setting)
            time.sleep(0.5)
            raise BackendError(f"cannot reach the Dask scheduler at {setting}: refused")

    monkeypatch.setenv("RNNLAB_DASK_SCHEDULER", "tcp://127.0.0.1:9")
    monkeypatch.setattr(dask_training, "Cluster", Unreachable)
    monkeypatch.setattr(dask_training, "_cluster", None)
    monkeypatch.setattr(dask_training, "_failure", None)
    job = TrainingJob([TINY], store=RunStore(tmp_path), mode="process")
    assert job.mode == "dask" and len(calls) == 1  # the identity asked first (and failed)
    monkeypatch.setattr(dask_training, "_failure", None)  # as if 10 s had passed
    job.start()
    assert _wait(lambda: "Connecting to the Dask cluster (tcp://127.0.0.1:9)"
                 in job.runs[0].data.status_copy()["message"], 5)
    assert job.join(10)
    s = job.runs[0].data.status_copy()
    assert s["status"] == "stopped" and "cannot reach the Dask scheduler" in s["message"]
    again = TrainingJob([TINY], store=RunStore(tmp_path), mode="process").start()
    assert again.join(10) and len(calls) == 2  # remembered: no second wait
    assert "cannot reach" in again.runs[0].data.status_copy()["message"]


def test_no_spare_training_processes_while_trainings_run_on_a_cluster(monkeypatch):
    from core.worker import WorkerPool

    monkeypatch.setenv("RNNLAB_DASK_SCHEDULER", "tcp://127.0.0.1:8786")
    pool = WorkerPool(spares=1)
    pool.prestart()
    assert pool._idle == [] and pool._starting == 0


def test_the_compose_recipe_runs_the_three_roles_from_one_image_with_the_project_importable():
    """deploy/compose.yaml cannot run here (no Docker engine): its structure is checked,
    and its commands were run by hand (BENCHMARKS.md, "Trainings on a Dask cluster")."""
    import yaml

    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"scheduler", "worker", "app"}
    assert {s["image"] for s in services.values()} == {"rnnlab:latest"}
    assert services["scheduler"]["command"][:2] == ["dask", "scheduler"]
    worker = services["worker"]["command"]
    assert worker[:3] == ["dask", "worker", "tcp://scheduler:8786"]
    assert worker[worker.index("--nthreads") + 1] == "1"  # one training per worker thread
    app = services["app"]
    assert app["command"][:3] == ["streamlit", "run", "app.py"]
    assert settings.BY_NAME["RNNLAB_DASK_SCHEDULER"].parse(
        app["environment"]["RNNLAB_DASK_SCHEDULER"]) == "tcp://scheduler:8786"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "ENV PYTHONPATH=/app" in dockerfile and "requirements-dask.txt" in dockerfile
    # The image's pins are the project's: the server and the workers run the same code.
    assert "torch==2.13.0+cpu" in dockerfile and "torch==2.13.0\n" in (
        ROOT / "requirements.txt").read_text()


class _FakeCluster:
    """What a Relay needs of a Cluster, with the scheduler's copy of the topic in hand."""

    topic, address = "t", "tcp://fake:1"

    def __init__(self, kept: dict[int, dict]):
        self.kept = kept

    def register(self, key):
        import queue

        return queue.SimpleQueue()

    def missed(self, key, seqs):
        return {s: self.kept[s] for s in seqs if s in self.kept}

    def threads(self):
        return 0


def _batch(seq: int, step: int) -> dict:
    import pickle

    from core.train import StepRecord

    return {"job": "k", "kind": "records", "seq": seq, "t": time.time(),
            "data": pickle.dumps([(0, StepRecord(step, 1.0, 0.0, 0.5, 0.01))])}


def test_a_gap_in_the_batches_is_filled_from_the_schedulers_copy_or_reported():
    job = TrainingJob([TINY], slots=None)
    kept = {1: _batch(1, 1)}  # batch 2 is gone from the scheduler's copy too
    relay = dask_training.Relay(_FakeCluster(kept), job)
    relay._records(_batch(0, 0))
    relay._records(_batch(3, 3))  # 1 and 2 never arrived
    relay._records(_batch(1, 1))  # a late duplicate is ignored
    assert job.runs[0].data.table("metrics")["step"].tolist() == [0, 1, 3]
    assert relay.lost_batches == 1 and job.runs[0].data.status_copy()["lost_batches"] == 1
    assert relay.seq == 4 and len(relay.lags) == 2  # timed: the batches that came live


def test_a_cluster_without_workers_queues_without_an_estimate(monkeypatch):
    monkeypatch.setattr(dask_training, "_cluster", None)
    slots = dask_training.ClusterSlots()
    assert slots.capacity == 0 and slots.estimate_wait(object()) is None
    assert slots.where() == " on the Dask cluster (no workers connected yet)"


# ---------------------------------------------------------------- a LocalCluster


@pytest.fixture(scope="module")
def cluster():
    """$RNNLAB_DASK_SCHEDULER=local with two training slots: a LocalCluster of two
    single-threaded worker processes, as the app starts it; closed at the end."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RNNLAB_DASK_SCHEDULER", "local")
    mp.setenv("RNNLAB_MAX_TRAININGS", "2")
    dask_training.shutdown()
    try:
        c = dask_training.cluster()
        assert c.threads() == 2 and c.local is not None
        yield c
    finally:
        dask_training.shutdown()
        mp.undo()


def _wait(predicate, timeout=120.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def _nothing_of_ours_running(cluster, timeout=15.0) -> bool:
    """No worker thread runs a training: what the scheduler says and what the workers do."""
    def idle():
        processing = [k for ks in cluster.client.processing().values() for k in ks
                      if k.startswith("rnnlab-train-")]
        return not processing and not any(cluster.client.run(dask_training.running_trainings).values())
    return _wait(idle, timeout, every=0.5)


def _table_bits(data, name):
    df = data.table(name)
    df = df[[c for c in df.columns if c != "wall_s"]].reset_index(drop=True)
    return tuple((c, str(df[c].dtype), df[c].to_numpy().tobytes() if df[c].dtype.kind in "fiub"
                  else repr(df[c].tolist())) for c in df.columns)


def _weights_bits(path):
    from safetensors.torch import load_file

    return tuple((k, v.numpy().tobytes()) for k, v in sorted(load_file(path).items()))


@pytest.mark.slow
def test_records_stream_in_while_it_trains_and_equal_a_local_training(cluster, tmp_path):
    configs = [TINY, TINY.replace(arch="gru")]  # a lockstep pair: records by index
    here = TrainingJob(configs, store=RunStore(tmp_path / "here"), slots=None).start()
    job = TrainingJob(configs, store=RunStore(tmp_path / "cluster"), mode="process")
    assert job.mode == "dask" and job.slots is dask_training.CLUSTER_SLOTS
    # A LocalCluster on this machine: the workers' numerics are this machine's, so the
    # run is the one process mode would train (and the store finds it again).
    assert job.identity == run_identity(configs)
    job.start()
    seen = []  # metric rows in the server's snapshot, sampled while the job runs
    while job.alive:
        status = job.runs[0].data.status_copy()
        if status["status"] == "running":
            seen.append(job.runs[0].data.versions()["metrics"])
        time.sleep(0.02)
    assert job.join(10) and here.join(120)
    assert job.error is None and job.save_error is None
    growing = sorted(set(n for n in seen if 0 < n < TINY.steps))
    assert len(growing) >= 3, f"records did not arrive while training: {growing}"
    for a, b in zip(here.runs, job.runs):
        sa, sb = a.data.status_copy(), b.data.status_copy()
        assert sb["status"] == "finished" and sb["step"] == TINY.steps
        assert sb["dask_worker"].startswith("tcp://127.0.0.1:")
        for name in TABLES:
            assert _table_bits(b.data, name) == _table_bits(a.data, name), name
        for k in ("final_loss", "eval_loss", "eval_metric", "vanishing_ratio", "gradient_reach"):
            assert sa[k] == sb[k], k
        assert _weights_bits(b.writer.dir / "model.safetensors") == _weights_bits(
            a.writer.dir / "model.safetensors")
        stored = RunStore(tmp_path / "cluster").load(b.run_id)
        assert stored.status_copy()["status"] == "finished"
        assert _table_bits(stored, "probes") == _table_bits(a.data, "probes")


@pytest.mark.slow
def test_stop_ends_the_training_on_its_worker(cluster, tmp_path):
    job = TrainingJob([TINY.replace(steps=100_000)], store=RunStore(tmp_path), mode="dask")
    job.start()
    assert _wait(lambda: job.runs[0].data.status_copy()["step"] >= 20)
    t0 = time.monotonic()
    job.stop()
    assert job.join(30)
    took = time.monotonic() - t0
    s = job.runs[0].data.status_copy()
    assert s["status"] == "stopped" and 20 <= s["step"] < 100_000
    assert (job.runs[0].writer.dir / "model.safetensors").is_file()
    # The worker is free again: nothing of ours runs on the cluster.
    assert _nothing_of_ours_running(cluster)
    print(f"stop → stopped in {took:.2f} s")  # a figure for BENCHMARKS.md, not a limit


@pytest.mark.slow
def test_a_job_waiting_on_a_busy_cluster_says_so_and_stops_before_it_starts(cluster, tmp_path):
    # Another client's work fills both worker threads: our slot is free (the server's queue
    # counts only its own trainings), but the task waits on the cluster.
    blockers = [cluster.client.submit(time.sleep, 15, pure=False) for _ in range(2)]
    try:
        assert _wait(lambda: sum(len(v) for v in cluster.client.processing().values()) == 2, 30)
        job = TrainingJob([TINY], store=RunStore(tmp_path), mode="dask").start()
        data = job.runs[0].data
        # First "running" (a free worker would start it at once: the page keeps its pace) ...
        assert _wait(lambda: "Starting on the Dask cluster" in data.status_copy()["message"], 5)
        assert data.status_copy()["status"] == "running"
        # ... then "queued", saying where and why.
        assert _wait(lambda: "Queued on the Dask cluster" in data.status_copy()["message"], 20)
        assert data.status_copy()["status"] == "queued"
        assert "2 worker threads (all busy" in data.status_copy()["message"]
        job.stop()
        assert job.join(10)
        s = data.status_copy()
        assert s["status"] == "stopped" and "before a worker" in s["message"] and s["step"] == 0
    finally:
        cluster.client.cancel(blockers)
    # The cancelled task never trains, not even once the blockers' threads come free.
    assert _wait(lambda: not any(cluster.client.run(dask_training.running_trainings).values())
                 and not any(ks for ks in cluster.client.processing().values()), 20, 0.5)
    time.sleep(3)
    assert not any(cluster.client.run(dask_training.running_trainings).values())


@pytest.mark.slow
def test_a_killed_worker_leaves_an_interrupted_run_with_its_records(cluster, tmp_path):
    store = RunStore(tmp_path)
    job = TrainingJob([TINY.replace(steps=100_000)], store=store, mode="dask").start()
    data = job.runs[0].data
    # Past the writer's first flushes: records are on disk before the loss.
    assert _wait(lambda: data.status_copy()["step"] >= 50 and data.status_copy()["wall_s"] > 2.5)
    worker = data.status_copy()["dask_worker"]
    pid = cluster.client.run(os.getpid, workers=[worker])[worker]
    before = data.status_copy()["step"]
    os.kill(pid, signal.SIGKILL)
    assert job.join(60)
    s = data.status_copy()
    assert s["status"] == "interrupted" and "was lost" in s["message"], s["message"]
    assert s["step"] >= before
    saved = store.load(job.runs[0].run_id)
    assert saved.status_copy()["status"] == "interrupted"
    steps = saved.table("metrics")["step"].tolist()
    assert len(steps) >= before and steps == list(range(len(steps)))
    # No retry storm: if Dask gave the task to another worker, it refused to train it.
    assert _nothing_of_ours_running(cluster)
    time.sleep(2)
    events = cluster.client.get_events(cluster.topic)
    mine = [m for _, m in events if m.get("job") == job._worker.key]
    assert [m["kind"] for m in mine].count("started") == 1
    assert not any(cluster.client.run(dask_training.running_trainings).values())
    # The nanny starts a new worker; the cluster trains again.
    cluster.client.wait_for_workers(2, timeout=120)
    assert _wait(lambda: cluster.threads() == 2, 30)
    again = TrainingJob([TINY.replace(steps=30)], store=store, mode="dask").start()
    assert again.join(120) and again.runs[0].data.status_copy()["status"] == "finished"


@pytest.mark.slow
def test_the_train_page_trains_on_the_cluster(cluster, runs_dir):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=60)
    at.query_params.update({"steps": "150", "seq_len": "10", "hidden_size": "8",
                            "batch_size": "16", "probe_every": "5", "eval_every": "10",
                            "eval_size": "32"})
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    from ui.runtime import registry

    job = registry().get(run_id)
    assert job is not None and job.mode == "dask"
    deadline = time.time() + 120
    while time.time() < deadline:
        at.run()
        if any("Status: finished" in m.value for m in at.markdown):
            break
        time.sleep(0.3)
    text = " ".join(m.value for m in at.markdown)
    if "Status: finished" not in text:
        import json

        def states(dask_worker):
            return {"executing": [str(k) for k in dask_worker.state.executing],
                    "ready": [str(t) for t in dask_worker.state.ready],
                    "tasks": {str(k): t.state for k, t in dask_worker.state.tasks.items()},
                    "threads": {str(k): v for k, v in dask_worker.active_threads.items()}}

        info = {"status": job.runs[0].data.status_copy()["message"],
                "processing": cluster.client.processing(),
                "workers": cluster.client.run(states),
                "stack": cluster.client.call_stack()}
        Path("/tmp/dr/hang.json").write_text(json.dumps(info, indent=1, default=str))
    assert "Status: finished" in text, text
    assert not at.exception
    assert len(at.get("vega_lite_chart")) >= 5
    status = RunStore(runs_dir).read_status(run_id)
    assert status["status"] == "finished" and status["dask_worker"].startswith("tcp://")


# ---------------------------------------------------------------- a cluster started by hand


@pytest.mark.slow
def test_workers_without_the_project_on_pythonpath_are_named_with_the_fix(tmp_path, monkeypatch):
    """`dask scheduler` and `dask worker` started by hand from elsewhere, without
    PYTHONPATH: connecting says what to do (the sweeps' message)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    dask_cli = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--nthreads", "1",
                                       "--dashboard-address", ":0"], cwd=tmp_path, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        monkeypatch.setenv("RNNLAB_DASK_SCHEDULER", address)
        dask_training.shutdown()
        deadline = time.monotonic() + 60
        while True:  # the scheduler and its worker take a few seconds to come up
            try:
                c = dask_training.Cluster(address)
            except BackendError as e:
                if "PYTHONPATH" in str(e) or time.monotonic() > deadline:
                    message = str(e)
                    break
                time.sleep(1)
                continue
            if c.threads() == 0 and time.monotonic() < deadline:
                c.close()
                time.sleep(1)
                continue
            c.close()
            pytest.fail("connected to workers that cannot import the project")
        assert "cannot import this project" in message and f"PYTHONPATH={ROOT}" in message
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        dask_training.shutdown()

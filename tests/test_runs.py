"""The run store: written while training, atomic, safe ids, damaged runs handled."""

import json
import os
import threading

import pandas as pd
import pytest
from safetensors.torch import load_file

from core.config import TrainConfig
from core.jobs import TrainingJob
from core.runs import RunError, RunStore, effective_status

TINY = TrainConfig(seq_len=8, hidden_size=6, batch_size=8, steps=15, eval_every=5,
                   eval_size=32, probe_every=5)


def _train(store, config=TINY):
    job = TrainingJob([config], store=store, slots=None).start()
    assert job.join(60)
    return job.runs[0].run_id


def test_a_finished_run_has_every_file_and_loads_back(tmp_path):
    store = RunStore(tmp_path)
    run_id = _train(store)
    d = store.path(run_id)
    for name in ("config.json", "status.json", "metrics.parquet", "evals.parquet",
                 "probes.parquet", "gates.parquet", "summaries.parquet", "model.safetensors"):
        assert (d / name).is_file(), name
    data = store.load(run_id)
    assert data.config == TINY
    assert data.status["status"] == "finished"
    assert len(data.table("metrics")) == 15
    assert set(data.table("probes")["quantity"]) == {"h", "c", "i", "f", "g", "o"}
    weights = load_file(store.model_path(run_id))
    assert "recurrent.weight_hh_l0" in weights and "readout.weight" in weights
    listing = store.list()
    assert listing.loc[0, "run_id"] == run_id and listing.loc[0, "status"] == "finished"


def test_env_var_sets_the_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert RunStore().root == tmp_path / "elsewhere"


@pytest.mark.parametrize("bad", ["..", "../x", "/etc", "a/b", "", ".hidden", "a\\b", "x" * 200])
def test_run_ids_cannot_escape_the_root(tmp_path, bad):
    store = RunStore(tmp_path)
    with pytest.raises(RunError, match="invalid run id"):
        store.path(bad)


def test_a_run_whose_writer_died_is_listed_as_interrupted(tmp_path):
    store = RunStore(tmp_path)
    run_id = _train(store)
    status_path = store.path(run_id) / "status.json"
    s = json.loads(status_path.read_text())
    s.update(status="running", pid=2**22 + 12345)  # no such process
    status_path.write_text(json.dumps(s))
    assert store.read_status(run_id)["status"] == "interrupted"
    assert effective_status({"status": "running", "pid": os.getpid(), "heartbeat": 0}) == "interrupted"


def test_damaged_tables_load_as_incomplete_not_a_crash(tmp_path):
    store = RunStore(tmp_path)
    run_id = _train(store)
    (store.path(run_id) / "probes.parquet").write_bytes(b"not parquet")
    (store.path(run_id) / "gates.parquet").unlink()
    data = store.load(run_id)
    assert data.status["incomplete"] is True and len(data.status["problems"]) == 2
    assert data.table("probes").empty and len(data.table("metrics")) == 15


def test_damaged_config_or_status_gives_a_clear_error(tmp_path):
    store = RunStore(tmp_path)
    run_id = _train(store)
    (store.path(run_id) / "status.json").write_text("{")
    assert store.read_status(run_id)["status"] == "interrupted"
    (store.path(run_id) / "config.json").write_text('{"hidden_size": 0}')
    with pytest.raises(RunError, match="hidden_size"):
        store.load(run_id)
    with pytest.raises(RunError, match="no run"):
        store.load("nope")


def test_delete_removes_the_run(tmp_path):
    store = RunStore(tmp_path)
    run_id = _train(store)
    store.delete(run_id)
    assert store.ids() == [] and store.list().empty
    with pytest.raises(RunError):
        store.delete(run_id)


def test_records_are_flushed_during_training_not_only_at_the_end(tmp_path):
    store = RunStore(tmp_path)
    job = TrainingJob([TINY.replace(steps=100000, probe_every=0)], store=store, slots=None)
    job.runs[0].writer.flush_every = 0.2
    job.start()
    run_dir = job.runs[0].writer.dir
    try:
        import time
        deadline = time.time() + 90
        while time.time() < deadline:
            time.sleep(0.3)
            try:
                if len(pd.read_parquet(run_dir / "metrics.parquet")) > 10:
                    break
            except (OSError, ValueError):  # half-written file: poll again
                pass
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "running" and status["step"] > 0
        assert len(pd.read_parquet(run_dir / "metrics.parquet")) > 10
    finally:
        job.stop()
        job.join(30)
    assert store.read_status(job.runs[0].run_id)["status"] == "stopped"


def test_concurrent_writers_never_corrupt_each_other(tmp_path):
    store = RunStore(tmp_path)
    ids = []
    threads = [threading.Thread(target=lambda: ids.append(_train(store))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 4
    for run_id in ids:
        data = store.load(run_id)
        assert "incomplete" not in data.status and len(data.table("metrics")) == 15


def test_an_unwritable_root_is_reported_and_training_continues_in_memory(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        if os.access(root / ".", os.W_OK):  # root ignores permissions: use a file as root
            root.chmod(0o700)
            root = tmp_path / "afile"
            root.write_text("x")
        job = TrainingJob([TINY], store=RunStore(root), slots=None).start()
        assert job.join(60)
        assert job.save_error and "cannot create run directory" in job.save_error
        assert job.runs[0].data.status["status"] == "finished"
        assert len(job.runs[0].data.table("metrics")) == 15
    finally:
        if root.is_dir():
            root.chmod(0o700)


def test_a_flush_rewrites_only_the_tables_that_grew(tmp_path):
    """The probe tables are the big ones; a flush between probes must not rewrite them."""
    from core.train import Trainer

    store = RunStore(tmp_path)
    writer = store.create(TINY.replace(probe_every=1000, eval_every=1000))
    records = iter(Trainer(writer.data.config).run())
    first = [next(records) for _ in range(3)]  # step 0: a probe, an eval, a step
    for r in first:
        writer.data.add(r)
    writer.flush()
    before = {p.name: p.stat().st_mtime_ns for p in writer.dir.glob("*.parquet")}
    versions = writer.data.versions()
    writer.data.add(next(r for r in records if type(r).__name__ == "StepRecord"))
    grown = {k for k, v in writer.data.versions().items() if v != versions[k]}
    assert grown == {"metrics"}
    import time
    time.sleep(0.01)
    writer.flush()
    after = {p.name: p.stat().st_mtime_ns for p in writer.dir.glob("*.parquet")}
    changed = {n for n in after if after[n] != before.get(n)}
    assert changed == {"metrics.parquet"}
    loaded = store.load(writer.data.status["run_id"])
    for name in ("metrics", "probes", "gates", "summaries", "evals"):
        pd.testing.assert_frame_equal(loaded.table(name), writer.data.table(name),
                                      check_dtype=False)

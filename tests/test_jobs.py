"""Background jobs: lockstep comparison, the training-slot queue, the registry's grace period."""

import threading
import time

import pytest

from core.config import TrainConfig
from core.jobs import JobRegistry, Slots, TrainingJob

TINY = TrainConfig(seq_len=8, hidden_size=6, batch_size=8, steps=12, eval_every=4,
                   eval_size=32, probe_every=4)


def test_models_compared_in_one_job_see_identical_batches():
    """Same seed → same task stream; the held-out loss of a constant predictor proves it."""
    job = TrainingJob([TINY.replace(arch=a) for a in ("rnn_tanh", "lstm", "gru")], slots=None)
    job.start()
    assert job.join(60)
    batches = [r.trainer.task.sample(4, r.trainer.generator) for r in job.runs]
    for x, y in batches[1:]:
        assert (x == batches[0][0]).all() and (y == batches[0][1]).all()
    for r in job.runs:
        assert r.data.status["status"] == "finished" and r.data.status["step"] == 12


def test_jobs_beyond_capacity_wait_in_a_visible_queue():
    slots = Slots(1)
    first = TrainingJob([TINY.replace(steps=100000)], slots=slots).start()
    first.wait_started()
    second = TrainingJob([TINY], slots=slots).start()
    time.sleep(0.5)
    assert second.runs[0].data.status["status"] == "queued"
    assert second.queue_position == 1 and slots.busy == 1
    first.stop()
    assert first.join(30)
    assert second.join(60)
    assert second.runs[0].data.status["status"] == "finished"
    assert slots.busy == 0 and slots.waiting == 0


def test_stopping_a_queued_job_leaves_the_queue():
    slots = Slots(1)
    first = TrainingJob([TINY.replace(steps=100000)], slots=slots).start()
    first.wait_started()
    second = TrainingJob([TINY], slots=slots).start()
    time.sleep(0.3)
    second.stop()
    assert second.join(10)
    assert second.runs[0].data.status["status"] == "stopped"
    assert slots.waiting == 0
    first.stop()
    first.join(30)


def test_slots_are_fifo():
    slots = Slots(1)
    order = []
    never = threading.Event()
    assert slots.acquire("a", never)

    def take(name):
        slots.acquire(name, never)
        order.append(name)
        slots.release()

    threads = []
    for name in ("b", "c", "d"):
        t = threading.Thread(target=take, args=(name,))
        t.start()
        threads.append(t)
        time.sleep(0.1)
    slots.release()
    for t in threads:
        t.join(5)
    assert order == ["b", "c", "d"]


def test_released_jobs_stop_after_the_grace_period_unless_claimed():
    reg = JobRegistry(grace_s=0.3)
    kept = TrainingJob([TINY.replace(steps=100000)], slots=None).start()
    dropped = TrainingJob([TINY.replace(steps=100000)], slots=None).start()
    reg.register(kept)
    reg.register(dropped)
    reg.release(kept)
    reg.release(dropped)
    reg.claim(kept)  # a reload picked it up again
    assert dropped.join(30)
    assert dropped.runs[0].data.status["status"] == "stopped"
    assert kept.alive
    kept.stop()
    kept.join(30)


def test_a_job_needs_a_config():
    with pytest.raises(ValueError):
        TrainingJob([])


def test_process_mode_gives_the_same_records_as_thread_mode(tmp_path):
    from core.runs import RunStore

    cfgs = [TINY.replace(arch="lstm"), TINY.replace(arch="gru")]
    a = TrainingJob(cfgs, slots=None).start()
    b = TrainingJob(cfgs, store=RunStore(tmp_path), slots=None, mode="process").start()
    assert a.join(60) and b.join(120)
    assert b.error is None
    for ra, rb in zip(a.runs, b.runs):
        assert rb.data.status["status"] == "finished"
        assert ra.data.table("metrics")["loss"].tolist() == rb.data.table("metrics")["loss"].tolist()
        assert len(rb.data.table("probes")) == len(ra.data.table("probes"))
        assert (rb.writer.dir / "model.safetensors").is_file()


def test_stopping_a_process_job_stops_its_child():
    job = TrainingJob([TINY.replace(steps=100000)], slots=None, mode="process").start()
    deadline = time.time() + 60
    while time.time() < deadline and job.runs[0].data.status.get("step", 0) < 3:
        time.sleep(0.1)
    job.stop()
    assert job.join(30)
    assert job.runs[0].data.status["status"] == "stopped"
    assert job._worker.proc.poll() is not None  # the child has exited


def test_a_crashed_child_is_reported_not_hidden():
    job = TrainingJob([TINY.replace(steps=100000)], slots=None, mode="process").start()
    deadline = time.time() + 60
    while time.time() < deadline and job.runs[0].data.status.get("step", 0) < 3:
        time.sleep(0.1)
    job._worker.proc.kill()
    assert job.join(30)
    s = job.runs[0].data.status
    assert s["status"] == "stopped" and "ended unexpectedly" in s["message"]

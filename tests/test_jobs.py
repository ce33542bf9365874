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

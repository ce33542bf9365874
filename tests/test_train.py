"""The trainer: records, determinism, stopping, divergence."""

import math
import threading

import pytest
import torch

from core.config import TrainConfig
from core.probe import probe
from core.train import EndRecord, EvalRecord, ProbeRecord, StepRecord, Trainer

TINY = dict(seq_len=8, hidden_size=6, batch_size=8, steps=20, eval_every=5, eval_size=32,
            probe_every=4)


def _records(**kw):
    t = Trainer(TrainConfig(**{**TINY, **kw}))
    return t, list(t.run())


def test_records_cover_every_step_probe_and_eval_and_end_once():
    t, recs = _records()
    steps = [r.step for r in recs if isinstance(r, StepRecord)]
    assert steps == list(range(20))
    assert [r.step for r in recs if isinstance(r, ProbeRecord)] == [0, 4, 8, 12, 16]
    assert [r.step for r in recs if isinstance(r, EvalRecord)] == [0, 5, 10, 15, 20]
    assert isinstance(recs[-1], EndRecord) and recs[-1].status == "finished"
    assert t.steps_done == 20


@pytest.mark.parametrize("arch", ["rnn_tanh", "lstm", "gru"])
def test_same_config_and_seed_give_the_same_loss_curve(arch):
    _, a = _records(arch=arch)
    _, b = _records(arch=arch)
    la = [r.loss for r in a if isinstance(r, StepRecord)]
    lb = [r.loss for r in b if isinstance(r, StepRecord)]
    assert la == lb
    _, c = _records(arch=arch, seed=1)
    assert la != [r.loss for r in c if isinstance(r, StepRecord)]


def test_probed_step_trains_exactly_like_an_unprobed_one():
    """A probe must not change training: same batch, same gradients, same update."""
    cfg = TrainConfig(**{**TINY, "probe_every": 1})
    _, probed = _records(probe_every=1)
    _, plain = _records(probe_every=0)
    a = [r.loss for r in probed if isinstance(r, StepRecord)]
    b = [r.loss for r in plain if isinstance(r, StepRecord)]
    assert cfg.probe_every == 1
    # float32: the probed step's gradients come from the probe's pass, the plain step's
    # from another (fused or hand-written): ~u₃₂ = 6e-8 per operation, fed through 20
    # Adam steps; losses are means of positive terms (well conditioned). 1e-4 = 1700 u₃₂;
    # a probe that changed training would be off by O(1). Measured: ≤ 1e-6.
    assert a == pytest.approx(b, rel=1e-4)


def test_probe_parameter_gradients_equal_the_fused_mean_loss_gradients():
    t = Trainer(TrainConfig(**TINY))
    x, y = t.task.sample(8, torch.Generator().manual_seed(3))
    res = probe(t.model, t.task, x, y)
    loss = t.task.loss(t.model(x), y).mean()
    ref = torch.autograd.grad(loss, list(t.model.parameters()))
    # float32, autograd through our unroll against torch.nn's fused kernel: each rounds
    # at u₃₂ = 6e-8 per operation; these 8-step, 6-unit nets are well conditioned
    # (≲ 40 u₃₂, as test_native's rounding model measures for larger ones): 1e-4 leaves
    # > 40x; atol 1e-6 for elements whose sum over steps cancels (error ~u₃₂·Σ|terms|).
    for g, r in zip(res.param_grads, ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_stop_is_honoured_between_steps():
    t = Trainer(TrainConfig(**{**TINY, "steps": 100000}))
    seen = 0
    for r in t.run():
        if isinstance(r, StepRecord):
            seen += 1
            if seen == 3:
                t.stop()
    assert t.status == "stopped" and t.steps_done == 3


def test_stop_from_another_thread():
    t = Trainer(TrainConfig(**{**TINY, "steps": 100000}))
    timer = threading.Timer(0.5, t.stop)
    timer.start()
    recs = list(t.run())
    assert recs[-1].status == "stopped"
    assert isinstance(recs[-2], EvalRecord)  # a final held-out score


def test_a_non_finite_loss_ends_the_run_as_diverged_keeping_every_record():
    # A huge learning rate with no clipping on an exploding relu RNN blows up fast.
    t, recs = _records(arch="rnn_relu", spectral_radius=3.0, lr=1.0, optimizer="sgd",
                       steps=500, seq_len=30, probe_every=0)
    end = recs[-1]
    assert end.status == "diverged" and "exploded" in end.message
    losses = [r.loss for r in recs if isinstance(r, StepRecord)]
    assert not math.isfinite(losses[-1]) and all(math.isfinite(v) for v in losses[:-1])


def test_stop_when_solved_ends_early(monkeypatch):
    t = Trainer(TrainConfig(**{**TINY, "stop_when_solved": True}))
    monkeypatch.setattr(type(t.task), "is_solved", lambda self, metric: True)
    recs = list(t.run())
    assert t.solved_at == 0 and recs[-1].status == "finished" and t.steps_done == 0


def test_solved_tail_trains_that_many_steps_more_then_stops(monkeypatch):
    """A lesson's run stops a short tail after it is solved, so its charts settle."""
    cfg = {**TINY, "stop_when_solved": True, "solved_tail": 7, "eval_every": 3, "steps": 500}
    t = Trainer(TrainConfig(**cfg))
    # Solved from the second evaluation on (step 3): the run ends at step 3 + 7.
    calls = iter(range(10**6))
    monkeypatch.setattr(type(t.task), "is_solved", lambda self, metric: next(calls) >= 1)
    recs = list(t.run())
    steps = [r.step for r in recs if isinstance(r, StepRecord)]
    assert t.solved_at == 3 and recs[-1].status == "finished"
    assert steps[-1] == 9 and t.steps_done == 10


def test_a_run_never_solved_trains_its_whole_budget(monkeypatch):
    t = Trainer(TrainConfig(**{**TINY, "stop_when_solved": True, "solved_tail": 5, "steps": 12}))
    monkeypatch.setattr(type(t.task), "is_solved", lambda self, metric: False)
    recs = list(t.run())
    assert t.solved_at is None and t.steps_done == 12 and recs[-1].status == "finished"

"""The trainer: a generator of records, with no UI in it (minGPT-style).

    trainer = Trainer(TrainConfig(arch="lstm", seq_len=50))
    for record in trainer.run():      # StepRecord / EvalRecord / ProbeRecord / EndRecord
        ...

Step s of a run refers to the parameters after s optimiser updates, θ_s: the
StepRecord of step s holds the loss of training batch s under θ_s (then θ_s is
updated to θ_{s+1}); a ProbeRecord at step s measures the gradient of that same
batch under θ_s; an EvalRecord at step s scores θ_s on the held-out set. So
step 0 shows the network at initialisation, and the last EvalRecord (step =
config.steps) scores the trained network.

Probed steps use the hand-written BPTT of :mod:`core.bptt`, whose one backward
pass yields the parameter gradients *and* every per-step gradient at once (the
same numbers as the reference probe :func:`core.probe.probe`, at a fraction of
its cost). Unprobed steps train through torch.nn's fused kernel where that is
the fastest way (the standard LSTM, oneDNN) and through :mod:`core.bptt`
otherwise (GRU and RNN, whose torch.nn CPU path is slower; LSTM variants, which
have no fused kernel). ``RNNLAB_REFERENCE_PROBE=1`` restores the reference path:
core.probe.probe for probed steps and torch.nn for the rest.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch

from core import bptt, native
from core.config import TrainConfig
from core.models import SequenceModel, build_model
from core.probe import probe
from core.tasks import Task

# Held-out data comes from its own stream, never overlapping the training seed's.
EVAL_SEED_OFFSET = 1_000_003
# Model initialisation touches torch's global RNG; serialise it across threads.
_INIT_LOCK = threading.Lock()


@dataclass
class StepRecord:
    step: int
    loss: float
    metric: float
    grad_norm: float  # ‖∇θ loss‖₂ before clipping
    wall_s: float
    kind: str = "step"


@dataclass
class EvalRecord:
    step: int
    loss: float
    metric: float
    solved: bool
    wall_s: float
    kind: str = "eval"


@dataclass
class ProbeRecord:
    step: int
    profile: pd.DataFrame  # t, quantity, grad_norm
    activations: pd.DataFrame  # t, gate, mean
    summary: dict
    kind: str = "probe"


@dataclass
class EndRecord:
    status: str  # finished, stopped, diverged
    step: int
    wall_s: float
    message: str = ""
    kind: str = "end"


Record = StepRecord | EvalRecord | ProbeRecord | EndRecord


def make_model(config: TrainConfig, task: Task) -> SequenceModel:
    """The config's model, initialised deterministically from its seed."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_model(
            config.arch, task.input_size, config.hidden_size, task.output_size,
            **config.model_options(),
        )


def warm_up() -> None:
    """Pay the one-off costs before the first training: torch's lazy imports (the
    optimizer's first construction pulls in torch._dynamo and sympy: seconds on a busy
    machine) and building or loading the LSTM's C loops (core.native, ~0.7 s once)."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    native.lstm_kernels()


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9)


@dataclass
class Trainer:
    """Trains one model on one task; ``run()`` yields records, ``stop()`` ends it.

    Attributes after ``run()``: ``status``, ``steps_done``, ``solved_at`` (first
    eval step that met the task's success threshold, or None).
    """

    config: TrainConfig
    status: str = "created"
    steps_done: int = 0
    solved_at: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.task = self.config.make_task()
        self.model = make_model(self.config, self.task)
        self.optimizer = make_optimizer(self.config, self.model.parameters())
        self.generator = torch.Generator().manual_seed(self.config.seed)
        eval_gen = torch.Generator().manual_seed(self.config.seed + EVAL_SEED_OFFSET)
        self.eval_x, self.eval_y = self.task.sample(self.config.eval_size, eval_gen)

    def stop(self) -> None:
        """Ask the run to end after the current step (thread-safe)."""
        self._stop.set()

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """(mean loss, metric) on the fixed held-out set."""
        out = self.model(self.eval_x)
        return float(self.task.loss(out, self.eval_y).mean()), float(
            self.task.metric(out, self.eval_y)
        )

    def _eval_record(self, step: int, t0: float) -> EvalRecord:
        loss, metric = self.evaluate()
        solved = math.isfinite(loss) and self.task.is_solved(metric)
        if solved and self.solved_at is None:
            self.solved_at = step
        return EvalRecord(step, loss, metric, solved, time.perf_counter() - t0)

    def run(self) -> Iterator[Record]:
        cfg = self.config
        torch.set_num_threads(cfg.threads)
        params = list(self.model.parameters())
        clip = cfg.clip if cfg.clip is not None else math.inf
        self.status = "running"
        t0 = time.perf_counter()
        last_eval: EvalRecord | None = None
        # Decided once per run, so that a run never mixes implementations.
        probe_fn = bptt.fast_probe if bptt.use_fast_probe(self.model) else probe
        fast_train = bptt.use_fast_train(self.model)
        for step in range(cfg.steps):
            if self._stop.is_set():
                self.status = "stopped"
                break
            if step % cfg.eval_every == 0:
                last_eval = self._eval_record(step, t0)
                yield last_eval
            # Solved (at an eval step) and the tail trained: the run has shown what it can.
            if cfg.stop_when_solved and self.solved_at is not None and \
                    step >= self.solved_at + cfg.solved_tail:
                self.status = "finished"
                break
            x, y = self.task.sample(cfg.batch_size, self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            if cfg.probe_every and step % cfg.probe_every == 0:
                result = probe_fn(self.model, self.task, x, y)
                for p, g in zip(params, result.param_grads):
                    p.grad = g
                loss, outputs = result.loss, result.outputs
                yield ProbeRecord(step, result.profile, result.activations, result.summary)
            elif fast_train:
                loss, outputs = bptt.fast_train_step(self.model, self.task, x, y)
            else:
                outputs = self.model(x)
                loss = self.task.loss(outputs, y).mean()
                loss.backward()
                outputs = outputs.detach()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
            loss_value = float(loss.detach())
            metric = float(self.task.metric(outputs, y))
            yield StepRecord(step, loss_value, metric, grad_norm, time.perf_counter() - t0)
            if not math.isfinite(loss_value):
                self.status = "diverged"
                self.steps_done = step
                yield EndRecord(
                    "diverged", step, time.perf_counter() - t0,
                    f"the training loss became {loss_value} at step {step}: the gradient "
                    "exploded (try gradient clipping or a smaller learning rate)",
                )
                bptt.release_workspace(self.model)
                return
            self.optimizer.step()
            self.steps_done = step + 1
        else:
            self.status = "finished"
        bptt.release_workspace(self.model)
        if last_eval is None or last_eval.step != self.steps_done:
            last_eval = self._eval_record(self.steps_done, t0)
            yield last_eval
        if not math.isfinite(last_eval.loss):
            self.status = "diverged"
        yield EndRecord(self.status, self.steps_done, time.perf_counter() - t0)


def run_lockstep(trainers: list[Trainer], emit: Callable[[int, Record], None]) -> None:
    """Run trainers in lockstep: one training step of each in turn, so models
    compared side by side progress together (and, with one seed, on identical
    batches). ``emit(i, record)`` receives every record of trainer i. Used by the
    job thread (core.jobs) and the training process (core.worker) alike."""
    iterators = [(i, t.run()) for i, t in enumerate(trainers)]
    while iterators:
        for item in list(iterators):
            i, it = item
            for record in it:
                emit(i, record)
                if record.kind in ("step", "end"):
                    break
            else:
                iterators.remove(item)
                continue
            if record.kind == "end":
                iterators.remove(item)

"""Long-range toy sequence tasks for probing gradient flow through time.

Each task generates batches ``x`` of shape ``(batch, steps, input_size)`` (float32,
batch first) plus targets ``y``, and scores model outputs of shape
``(batch, steps, output_size)``.  All randomness comes from the caller's
``torch.Generator`` so runs are reproducible and the global RNG is never touched.

Every task also reports ``baseline_loss``: the loss of the best predictor that
ignores the input.  A model whose loss stays at the baseline has learned nothing
about the long-range dependency, which is the interesting failure mode here.

Tasks:
    adding          Le et al. 2015 / Arjovsky et al. 2016 (regression, MSE)
    copy            Arjovsky et al. 2016 (per-step classification)
    temporal_order  Hochreiter & Schmidhuber 1997, experiment 6a, scaled to T
    recall          remember the symbol shown at step 0 for exactly T-1 steps
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

TASK_NAMES = ("adding", "copy", "temporal_order", "recall")


def _check_int(field: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as int, or raise ValueError naming the field and its range."""
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{field} must be an integer {allowed}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{field} must be {allowed}, got {value}")
    return int(value)


@dataclass(frozen=True)
class Task:
    """Base class: ``seq_len`` is the only common field; subclasses add options."""

    seq_len: int

    name: ClassVar[str]
    metric_name: ClassVar[str]
    success: ClassVar[float]
    higher_is_better: ClassVar[bool]
    loss_at_last_step: ClassVar[bool] = True
    min_seq_len: ClassVar[int] = 2

    def __post_init__(self) -> None:
        # object.__setattr__ because the dataclass is frozen; normalises numpy ints.
        object.__setattr__(self, "seq_len", _check_int("seq_len", self.seq_len, self.min_seq_len))

    # Properties that depend on seq_len / options (overridden where they differ).
    @property
    def steps(self) -> int:
        return self.seq_len

    @property
    def input_size(self) -> int:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    @property
    def baseline_loss(self) -> float:
        raise NotImplementedError

    @property
    def description(self) -> str:
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metric(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        raise NotImplementedError

    def is_solved(self, metric: float) -> bool:
        # NaN compares False either way, so a diverged run is never "solved".
        return metric >= self.success if self.higher_is_better else metric < self.success

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "seq_len"}

    def _check_outputs(self, outputs: torch.Tensor) -> None:
        if outputs.dim() != 3 or outputs.shape[-1] != self.output_size:
            raise ValueError(
                f"{self.name}: outputs must have shape (batch, steps, {self.output_size}), "
                f"got {tuple(outputs.shape)}"
            )


class _ClassifyLastStep(Task):
    """Shared loss/metric for tasks whose single class label is read at the last step."""

    metric_name: ClassVar[str] = "accuracy"
    success: ClassVar[float] = 0.99
    higher_is_better: ClassVar[bool] = True

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._check_outputs(outputs)
        return F.cross_entropy(outputs[:, -1], y, reduction="none")

    @torch.no_grad()
    def metric(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        self._check_outputs(outputs)
        return (outputs[:, -1].argmax(-1) == y).float().mean().item()


@dataclass(frozen=True)
class AddingTask(Task):
    name: ClassVar[str] = "adding"
    metric_name: ClassVar[str] = "mse"
    success: ClassVar[float] = 0.01
    higher_is_better: ClassVar[bool] = False

    input_size = 2
    output_size = 1

    @property
    def baseline_loss(self) -> float:
        # Target U1 + U2 with U1, U2 iid Uniform[0, 1]; Var(U) = (b - a)^2 / 12 = 1/12.
        # The best constant under squared error is the mean E[U1 + U2] = 1, whose MSE
        # is Var(U1 + U2) = 2 * 1/12 = 1/6.
        low, high = 0.0, 1.0
        return 2 * (high - low) ** 2 / 12

    @property
    def description(self) -> str:
        return (f"Output the sum of the two marked numbers among {self.seq_len} random values; "
                f"the first marker lies in the first half, so it must be remembered for up to "
                f"{self.seq_len - 1} steps.")

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size = _check_int("batch_size", batch_size, 1)
        T, half = self.seq_len, self.seq_len // 2
        values = torch.rand(batch_size, T, generator=generator)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, T, (batch_size,), generator=generator)
        rows = torch.arange(batch_size)
        marker = torch.zeros(batch_size, T)
        marker[rows, first] = 1.0
        marker[rows, second] = 1.0
        x = torch.stack([values, marker], dim=-1)
        y = values[rows, first] + values[rows, second]
        return x, y

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._check_outputs(outputs)
        return (outputs[:, -1, 0] - y.to(outputs.dtype)) ** 2

    @torch.no_grad()
    def metric(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        return self.loss(outputs, y).mean().item()


@dataclass(frozen=True)
class CopyTask(Task):
    name: ClassVar[str] = "copy"
    metric_name: ClassVar[str] = "accuracy"
    success: ClassVar[float] = 0.99
    higher_is_better: ClassVar[bool] = True
    loss_at_last_step: ClassVar[bool] = False
    min_seq_len: ClassVar[int] = 1

    NUM_SYMBOLS: ClassVar[int] = 8   # tokens 0..7
    BLANK: ClassVar[int] = 8
    DELIMITER: ClassVar[int] = 9
    COPY_LEN: ClassVar[int] = 10

    input_size = 10
    output_size = 10

    @property
    def steps(self) -> int:
        # 10 symbols + (T - 1) blanks + delimiter + 10 blanks during recall.
        return self.seq_len + 2 * self.COPY_LEN

    @property
    def baseline_loss(self) -> float:
        # Without the input, every blank target (all but the last 10 steps) is still
        # certain, so the best constant predictor puts ~all mass on blank there (loss 0).
        # The 10 recalled symbols are iid uniform over 8, so the best it can do is the
        # uniform distribution: ln 8 each.  Averaged over all T + 20 steps:
        return self.COPY_LEN * math.log(self.NUM_SYMBOLS) / self.steps

    @property
    def description(self) -> str:
        return (f"Memorise {self.COPY_LEN} symbols, wait through {self.seq_len - 1} blanks and a "
                f"delimiter, then reproduce them: each symbol must be kept for "
                f"{self.seq_len + self.COPY_LEN} steps.")

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size = _check_int("batch_size", batch_size, 1)
        n = self.COPY_LEN
        symbols = torch.randint(0, self.NUM_SYMBOLS, (batch_size, n), generator=generator)
        tokens = torch.full((batch_size, self.steps), self.BLANK, dtype=torch.long)
        tokens[:, :n] = symbols
        tokens[:, -n - 1] = self.DELIMITER
        y = torch.full((batch_size, self.steps), self.BLANK, dtype=torch.long)
        y[:, -n:] = symbols
        x = F.one_hot(tokens, self.input_size).float()
        return x, y

    def _check_steps(self, outputs: torch.Tensor) -> None:
        self._check_outputs(outputs)
        if outputs.shape[1] != self.steps:
            raise ValueError(f"copy: outputs must have {self.steps} steps, got {outputs.shape[1]}")

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._check_steps(outputs)
        # cross_entropy wants classes in dim 1: (batch, classes, steps).
        per_step = F.cross_entropy(outputs.transpose(1, 2), y, reduction="none")
        return per_step.mean(dim=1)

    @torch.no_grad()
    def metric(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        self._check_steps(outputs)
        n = self.COPY_LEN
        return (outputs[:, -n:].argmax(-1) == y[:, -n:]).float().mean().item()


@dataclass(frozen=True)
class TemporalOrderTask(_ClassifyLastStep):
    name: ClassVar[str] = "temporal_order"
    min_seq_len: ClassVar[int] = 10

    # One-hot vocabulary: a, b, c, d (distractors), X, Y (relevant), E (start), B (end).
    NUM_DISTRACTORS: ClassVar[int] = 4
    X: ClassVar[int] = 4
    START: ClassVar[int] = 6
    END: ClassVar[int] = 7

    input_size = 8
    output_size = 4

    def positions(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Inclusive ranges for t1 (~[0.1T, 0.2T]) and t2 (~[0.5T, 0.6T]).

        Clamped so that neither touches the markers at 0 and T-1 and the ranges
        never overlap; for T = 100 this is [10, 20] and [50, 60] as in the paper.
        """
        T = self.seq_len
        # Integer arithmetic avoids float rounding surprises (int(0.1 * T) etc.).
        lo1 = max(1, T // 10)
        hi1 = max(lo1, T // 5)
        lo2 = max(hi1 + 1, T // 2)
        hi2 = min(T - 2, max(lo2, 3 * T // 5))
        return (lo1, hi1), (lo2, hi2)

    @property
    def baseline_loss(self) -> float:
        # The class is (first in {X,Y}, second in {X,Y}), both uniform and independent,
        # so the 4 classes are equally likely; the best constant prediction is uniform,
        # with cross-entropy ln 4.
        return math.log(4)

    @property
    def description(self) -> str:
        (lo1, hi1), (lo2, hi2) = self.positions()
        return (f"Classify the order (XX, XY, YX, YY) of two symbols hidden among distractors at "
                f"steps {lo1}-{hi1} and {lo2}-{hi2}; the answer is read at step {self.seq_len - 1}, "
                f"up to {self.seq_len - 1 - lo1} steps after the first one.")

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size = _check_int("batch_size", batch_size, 1)
        (lo1, hi1), (lo2, hi2) = self.positions()
        tokens = torch.randint(0, self.NUM_DISTRACTORS, (batch_size, self.seq_len), generator=generator)
        tokens[:, 0] = self.START
        tokens[:, -1] = self.END
        t1 = torch.randint(lo1, hi1 + 1, (batch_size,), generator=generator)
        t2 = torch.randint(lo2, hi2 + 1, (batch_size,), generator=generator)
        is_y = torch.randint(0, 2, (batch_size, 2), generator=generator)  # 0 = X, 1 = Y
        rows = torch.arange(batch_size)
        tokens[rows, t1] = self.X + is_y[:, 0]
        tokens[rows, t2] = self.X + is_y[:, 1]
        y = 2 * is_y[:, 0] + is_y[:, 1]  # XX=0, XY=1, YX=2, YY=3
        return F.one_hot(tokens, self.input_size).float(), y


@dataclass(frozen=True)
class RecallTask(_ClassifyLastStep):
    num_symbols: int = 8
    num_distractors: int = 4

    name: ClassVar[str] = "recall"
    SYMBOL_RANGE: ClassVar[tuple[int, int]] = (2, 64)
    DISTRACTOR_RANGE: ClassVar[tuple[int, int]] = (1, 64)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "num_symbols", _check_int("num_symbols", self.num_symbols, *self.SYMBOL_RANGE))
        object.__setattr__(
            self, "num_distractors", _check_int("num_distractors", self.num_distractors, *self.DISTRACTOR_RANGE)
        )

    @property
    def input_size(self) -> int:
        return self.num_symbols + self.num_distractors

    @property
    def output_size(self) -> int:
        return self.num_symbols

    @property
    def baseline_loss(self) -> float:
        # The first symbol is uniform over K, so the best constant prediction is the
        # uniform distribution with cross-entropy ln K.
        return math.log(self.num_symbols)

    @property
    def description(self) -> str:
        return (f"Report at the last step which of {self.num_symbols} symbols was shown at step 0, "
                f"through {self.seq_len - 1} distractor steps: a lag of exactly {self.seq_len - 1}.")

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size = _check_int("batch_size", batch_size, 1)
        K = self.num_symbols
        y = torch.randint(0, K, (batch_size,), generator=generator)
        # Distractor tokens live after the symbols: K .. K + num_distractors - 1.
        tokens = torch.randint(K, K + self.num_distractors, (batch_size, self.seq_len), generator=generator)
        tokens[:, 0] = y
        return F.one_hot(tokens, self.input_size).float(), y


def example(task: Task, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """One sequence of ``task`` as a tidy frame (t, channel, value) of its inputs, and
    its target as text: what the network is shown, for a page to draw."""
    x, y = task.sample(1, torch.Generator().manual_seed(int(seed)))
    x = x[0].numpy()
    steps, channels = x.shape
    frame = pd.DataFrame({"t": np.repeat(np.arange(steps), channels),
                          "channel": np.tile([f"x{c}" for c in range(channels)], steps),
                          "value": x.reshape(-1).astype(float)})
    y = y[0].reshape(-1)
    if y.numel() == 1:
        target = f"{y.item():.4g}" if y.is_floating_point() else str(int(y.item()))
    else:
        # Sequence targets (copy) end with what must be recalled: show the end.
        shown = ", ".join(str(int(v)) for v in y[-12:].tolist())
        target = f"[{'…, ' if y.numel() > 12 else ''}{shown}]"
    return frame, target


_TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (AddingTask, CopyTask, TemporalOrderTask, RecallTask)
}
assert tuple(_TASKS) == TASK_NAMES


def make_task(name: str, seq_len: int, **options: Any) -> Task:
    """Build a task by name; raises ValueError for unknown names, options or bad values."""
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(TASK_NAMES)}")
    cls = _TASKS[name]
    allowed = [f.name for f in dataclasses.fields(cls) if f.name != "seq_len"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for task {name!r}; "
            f"allowed: {', '.join(allowed) if allowed else 'none'}"
        )
    return cls(seq_len=seq_len, **options)

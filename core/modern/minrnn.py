"""minGRU and minLSTM: a GRU and an LSTM whose gates see x_t only, trained by a parallel scan.

Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs all we needed?"
(arXiv 2410.01201), sections 3.1.2 (minGRU) and 3.2.2 (minLSTM), appendix B (log space).

minGRU (gate rows of the one Linear, in order: z, g):

.. math::
    z_t &= σ(W_z x_t + b_z)                       && \\text{update gate} \\
    h̃_t &= g(W_h x_t + b_h)                       && \\text{candidate state} \\
    h_t &= (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t

minLSTM (rows f, i, g):

.. math::
    f_t &= σ(W_f x_t + b_f), \\quad i_t = σ(W_i x_t + b_i), \\quad h̃_t = g(W_h x_t + b_h) \\
    f′_t &= f_t / (f_t + i_t), \\quad i′_t = i_t / (f_t + i_t)   && (f′ + i′ = 1) \\
    h_t &= f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t

with g(x) = x + ½ for x ≥ 0 and σ(x) for x < 0 (appendix B.3): continuous, positive, and
linear for positive x, so h̃ > 0 and every h_t > 0, which is what lets the scan work on
logarithms. The gates name the probe's gate records: ``z``/``f``/``i`` are the gates'
pre-activations, ``g`` is h̃'s.

Both cells are one linear recurrence h_t = a_t ⊙ h_{t−1} + b_t whose a, b > 0 depend on x
only (minGRU a = 1 − z, b = z ⊙ h̃; minLSTM a = f′, b = i′ ⊙ h̃). With h_0 = 0 it has
the closed form h_t = Σ_{s≤t} (Π_{r=s+1..t} a_r) b_s, in log space

.. math::
    \\log h_t = \\operatorname{logsumexp}_{s≤t} \\big(\\log b_s + Σ_{r=s+1..t} \\log a_r\\big).

:func:`log_scan` computes it for all T steps at once by doubling (Hillis & Steele 1986):
each step t holds the affine map h ↦ a h + b of a window ending at t, as (log a, log b),
and ⌈log₂ T⌉ times takes in the window of equal length before it,

.. math::
    (\\log a, \\log b)_t ← (\\log a_t + \\log a_{t−k},\\;
    \\operatorname{logaddexp}(\\log b_t, \\log a_t + \\log b_{t−k})), \\quad k = 1, 2, 4, …

a few vectorised passes over the whole tensor and no loop over steps. It is exact in
exact arithmetic. The paper's appendix B writes the same sum as Heinsen's
log h_t = A_t + logcumsumexp_s(log b_s − A_s) with A_t = Σ_{r≤t} log a_r; we do not, for
two reasons measured on this CPU (float32, batch 64, H = 64, one thread, forward and
backward). A_t and the logcumsumexp grow with how much the state has forgotten and cancel
in their sum, so Heinsen's float32 error grows with |A_t|: 1.8e-4 relative at T = 1000
with the gates spread, 6.1e-5 at gain ½, against 7.4e-7 and 4.1e-8 doubling. And torch's
CPU logcumsumexp is a scalar loop: 54 ms at T = 100 against 31 ms doubling (T = 300:
163 against 143 ms). Stepping the recurrence in Python takes 22 ms at T = 100 and 178 ms
at T = 300: the scan's O(T log T) vectorised work beats T small steps from a few hundred
steps on. The price: autograd keeps the ⌈log₂ T⌉ passes' tensors for the backward. log a
and log b come from log-sigmoid forms (softplus), as the reference does:
log(1 − z) = −softplus(p_z) stays exact where 1 − z itself would round to 0.

Initial state: h_0 = 0, the model's initial state. The reference (BorealisAI/minRNNs,
``models/minRNNs.py``) does the same by default (with no previous state its first step is
h_1 = z_1 ⊙ h̃_1, i.e. h_0 = 0); its option of a learned h_0 = g(v) is not used here.

Init: one ``nn.Linear(input_size, k·hidden_size)`` (k = 2 gate blocks for minGRU, 3 for
minLSTM: all pre-activations in one matmul) with torch's default init, weights and biases
U(−1/√input, 1/√input), as the reference's ``Linear``. The pre-activations start small, so
z ≈ σ(0) = ½ and f ≈ i ≈ ½: the per-step gain starts near ½ in both cells.

Why the per-step gain can be near 1: the gates never see h, so ∂h_t/∂h_{t−1} = diag(a_t)
*exactly*: no recurrent weight matrix, no tanh′ factor. The gradient from step t back to
step s is Π_{r=s+1..t} a_r, and a_t ∈ (0, 1) moves with x_t alone: training drives z_t → 0
(minGRU) or f′_t → 1 (minLSTM) on the units and steps that must carry, and nothing in the
recurrence pulls the gain back down. It is learned, not fixed: at init it is ½ per step.

Probe path (:meth:`unroll` with ``record=True``): the same scan, with b computed first as a
graph node and the scan taking log b. Because b_t enters h_t with coefficient 1 and reaches
the loss only through h_t, autograd's ∂ℓ/∂b_t *is* the total derivative ∂ℓ/∂h_t, so
``states["h"]`` is a :class:`core.cells.Scanned` (values h, totals b) and the probe costs
one scan forward and backward, as a training step does.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from core.cells import Scanned, Unrolled

Tensor = torch.Tensor


def g(x: Tensor) -> Tensor:
    """The candidate's activation: x + ½ for x ≥ 0, σ(x) below; positive everywhere."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x) without forming g: log(x + ½) for x ≥ 0, log σ(x) = −softplus(−x) below.
    (relu keeps the unused branch's log finite, so its zero gradient stays zero.)"""
    return torch.where(x >= 0, torch.log(torch.relu(x) + 0.5), -F.softplus(-x))


def log_scan(log_a: Tensor, log_b: Tensor) -> Tensor:
    """log h of h_t = a_t ⊙ h_{t−1} + b_t, h_0 = 0, for every step at once.

    ``log_a`` and ``log_b`` are (batch, steps, width); returns log h, (batch, steps, width):
    log h_t = logsumexp_{s≤t}(log b_s + Σ_{r=s+1..t} log a_r), by doubling (see the module
    docstring). After the pass with offset k, step t holds the map of the window
    (t − 2k, t]: log a = Σ of its log a_r, log b = log h_t started from 0 at its start.
    """
    steps, k = log_a.shape[1], 1
    while k < steps:
        # b_t ← b_t + a_t ⊙ b_{t−k}: the window (t − 2k, t − k] applied before (t − k, t]
        log_b = torch.cat([log_b[:, :k], torch.logaddexp(log_b[:, k:], log_a[:, k:] + log_b[:, :-k])], 1)
        if 2 * k < steps:  # a_t ← a_t ⊙ a_{t−k}  (the last pass needs no a)
            log_a = torch.cat([log_a[:, :k], log_a[:, k:] + log_a[:, :-k]], 1)
        k *= 2
    return log_b


def _log_positive(b: Tensor) -> Tensor:
    """log b for the probe's scan. b > 0 in exact arithmetic; the clamp only keeps a b that
    underflowed to 0 (a pre-activation below about −87 in float32) from giving −∞ and a
    NaN gradient: such a b_t contributes nothing and is reported with a zero gradient."""
    return torch.log(b.clamp_min(torch.finfo(b.dtype).tiny))


def _per_step_mean(v: Tensor) -> Tensor:
    """(batch, steps, width) → (steps,): the mean over batch and units, detached."""
    return v.detach().mean(dim=(0, 2))


def _gain_max(gain: Tensor) -> Tensor:
    """(batch, steps, width) → (steps,): the batch-mean gain of the most carrying unit."""
    return gain.detach().mean(dim=0).amax(dim=-1)


class _MinRNN(nn.Module):
    """What the two cells share: one Linear for all gate blocks, the input check."""

    gate_names: tuple[str, ...] = ()
    uses_fused = False

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        # [W_{gate}; …] x_t + [b_{gate}; …]: every gate's pre-activation in one matmul,
        # row blocks in the order of gate_names.
        self.linear = nn.Linear(input_size, len(self.gate_names) * hidden_size)

    def _pre_activations(self, x: Tensor) -> tuple[Tensor, ...]:
        """Each gate's (batch, steps, hidden) pre-activation, in gate_names order: chunks of
        one Linear's output, each its own graph node (it depends on x only, so autograd's
        gradient w.r.t. it is the total derivative)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (batch, steps, {self.input_size}), got {tuple(x.shape)}"
            )
        return self.linear(x).chunk(len(self.gate_names), dim=-1)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class MinGRULayer(_MinRNN):
    """minGRU: h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t, z_t = σ(W_z x_t + b_z),
    h̃_t = g(W_h x_t + b_h); per-step gain 1 − z_t (see the module docstring).

    Activations recorded per step: ``z`` (mean z_t), ``g`` (mean h̃_t), ``gain`` (mean
    1 − z_t) and ``gain_max`` (the largest over units of the batch-mean 1 − z_t).
    """

    gate_names = ("z", "g")

    def forward(self, x: Tensor) -> Tensor:
        """(batch, steps, input) → h, (batch, steps, hidden): the log-space scan."""
        p_z, p_h = self._pre_activations(x)
        log_a = -F.softplus(p_z)  # log(1 − z_t) = log σ(−p_z) = −softplus(p_z)
        log_z = -F.softplus(-p_z)  # log z_t = log σ(p_z) = −softplus(−p_z)
        log_b = log_z + log_g(p_h)  # log(z_t ⊙ h̃_t) = log z_t + log g(p_h)
        return torch.exp(log_scan(log_a, log_b))

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        """The probe's path: the same scan over all steps, with b_t = z_t ⊙ h̃_t a graph
        node whose gradient is ∂ℓ/∂h_t (total); see the module docstring."""
        if not record:
            return Unrolled(h=self.forward(x))
        p_z, p_h = self._pre_activations(x)
        z = torch.sigmoid(p_z)  # z_t = σ(p_z)
        h_tilde = g(p_h)  # h̃_t = g(p_h)
        b = z * h_tilde  # b_t = z_t ⊙ h̃_t: the node the scan consumes
        log_a = -F.softplus(p_z)  # log a_t = log(1 − z_t) = −softplus(p_z)
        h = torch.exp(log_scan(log_a, _log_positive(b)))  # h_t = (1 − z_t) ⊙ h_{t−1} + b_t
        gain = 1.0 - z.detach()  # ∂h_t/∂h_{t−1} = diag(1 − z_t)
        return Unrolled(
            h=h,
            states={"h": Scanned(values=h, totals=b)},
            gates={"z": p_z, "g": p_h},
            activations={
                "z": _per_step_mean(z),
                "g": _per_step_mean(h_tilde),
                "gain": _per_step_mean(gain),
                "gain_max": _gain_max(gain),
            },
        )


class MinLSTMLayer(_MinRNN):
    """minLSTM: h_t = f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t, f′ = f/(f + i), i′ = i/(f + i),
    f_t = σ(W_f x_t + b_f), i_t = σ(W_i x_t + b_i), h̃_t = g(W_h x_t + b_h); per-step
    gain f′_t (see the module docstring).

    In log space with d_t = log(i_t / f_t) = softplus(−p_f) − softplus(−p_i):
    f′ = 1 / (1 + i/f) = σ(−d), i′ = σ(d), so log f′ = −softplus(d), log i′ = −softplus(−d).

    Activations recorded per step: ``f``, ``i`` (mean f_t, i_t: the gates before the
    normalisation), ``g`` (mean h̃_t), ``gain`` (mean f′_t) and ``gain_max`` (the largest
    over units of the batch-mean f′_t).
    """

    gate_names = ("f", "i", "g")

    @staticmethod
    def _log_ratio(p_f: Tensor, p_i: Tensor) -> Tensor:
        # d_t = log(i_t / f_t) = log σ(p_i) − log σ(p_f) = softplus(−p_f) − softplus(−p_i)
        return F.softplus(-p_f) - F.softplus(-p_i)

    def forward(self, x: Tensor) -> Tensor:
        """(batch, steps, input) → h, (batch, steps, hidden): the log-space scan."""
        p_f, p_i, p_h = self._pre_activations(x)
        d = self._log_ratio(p_f, p_i)
        log_a = -F.softplus(d)  # log f′_t = log(f_t / (f_t + i_t)) = −softplus(d_t)
        log_i = -F.softplus(-d)  # log i′_t = log(i_t / (f_t + i_t)) = −softplus(−d_t)
        log_b = log_i + log_g(p_h)  # log(i′_t ⊙ h̃_t)
        return torch.exp(log_scan(log_a, log_b))

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        """The probe's path: the same scan over all steps, with b_t = i′_t ⊙ h̃_t a graph
        node whose gradient is ∂ℓ/∂h_t (total); see the module docstring."""
        if not record:
            return Unrolled(h=self.forward(x))
        p_f, p_i, p_h = self._pre_activations(x)
        d = self._log_ratio(p_f, p_i)
        h_tilde = g(p_h)  # h̃_t = g(p_h)
        b = torch.sigmoid(d) * h_tilde  # b_t = i′_t ⊙ h̃_t, i′_t = σ(d_t): the scan's node
        log_a = -F.softplus(d)  # log a_t = log f′_t = −softplus(d_t)
        h = torch.exp(log_scan(log_a, _log_positive(b)))  # h_t = f′_t ⊙ h_{t−1} + b_t
        gain = torch.sigmoid(-d.detach())  # ∂h_t/∂h_{t−1} = diag(f′_t), f′_t = σ(−d_t)
        return Unrolled(
            h=h,
            states={"h": Scanned(values=h, totals=b)},
            gates={"f": p_f, "i": p_i, "g": p_h},
            activations={
                "f": _per_step_mean(torch.sigmoid(p_f)),
                "i": _per_step_mean(torch.sigmoid(p_i)),
                "g": _per_step_mean(h_tilde),
                "gain": _per_step_mean(gain),
                "gain_max": _gain_max(gain),
            },
        )

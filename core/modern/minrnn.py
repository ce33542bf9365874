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
linear for positive x, so h̃ > 0 and every h_t > 0. The gates name the probe's gate
records: ``z``/``f``/``i`` are the gates' pre-activations, ``g`` is h̃'s.

Both cells are one linear recurrence h_t = a_t ⊙ h_{t−1} + b_t whose a ∈ (0, 1), b > 0
depend on x only (minGRU a = 1 − z = σ(−p_z), b = z ⊙ h̃; minLSTM a = f′, b = i′ ⊙ h̃,
formed from one log ratio: see :class:`MinLSTMLayer`). With h_0 = 0 it has the closed form

.. math::
    h_t = Σ_{s≤t} \\big(Π_{r=s+1..t} a_r\\big) b_s,

which :func:`linear_scan` computes for all T steps at once by doubling (Hillis & Steele
1986): each step t holds the affine map h ↦ a h + b of a window ending at t, and
⌈log₂ T⌉ times takes in the window of equal length before it,

.. math::
    (a, b)_t ← (a_t a_{t−k},\\; b_t + a_t b_{t−k}), \\quad k = 1, 2, 4, …

a few vectorised passes over the whole tensor, no loop over steps, exact in exact
arithmetic. In the linear domain every product is of factors ≤ 1 and every sum is of
positive terms: nothing overflows, a product that underflows is a term already below
float's smallest normal (≈ 1e-38 in float32) times b, no log of 0, no NaN; and a sum of
positive terms has no cancellation, so each h_t is good to a relative γ_m, m = L(L + 3)/2,
L = ⌈log₂ T⌉ (the derivation is in the tests), whatever the gates. :meth:`sequential` is
the same recurrence on the same a, b stepped in a Python loop, for comparison.

Why not log space, as the paper's appendix B does (we did, until measured). Heinsen's
log h_t = A_t + logcumsumexp_s(log b_s − A_s), A_t = Σ_{r≤t} log a_r, cancels: A_t and
the logcumsumexp grow with how much the state has forgotten, so its float32 error grows
with |A_t| (1.8e-4 relative at T = 1000 with the gates spread, against 7.4e-7 for a
log-space doubling scan), and torch's CPU logcumsumexp is a scalar loop (54 ms at T = 100
against 31 ms doubling). The log-space doubling scan (logaddexp per pass) fixed the error
but costs an exp and a log1p per element per pass: forward and backward 31.8 ms at
T = 100 and 135.9 ms at T = 300 (minGRU), against 19.1 and 83.6 ms linear and 23.8 and
187.3 ms for the Python loop, same session (one thread, batch 64, H = 64, float32);
re-measured against that version at its last commit: 1.6 to 1.9× the linear scan's time
at T = 100 and 300, both cells.

Cost now (forward + backward of Σ (r·h_t)², float32, one thread, batch 64, H = 64, input 2;
the minimum of 25 runs, 2026-12-05, load average 2.7 on 2 cores, so ±20 % between runs:
minGRU's loop at T = 300 took 168 to 234 ms in three runs):

    ======== === ========= ========= ================ ==========
    cell      T  scan (ms) loop (ms) loop / scan      probe (ms)
    ======== === ========= ========= ================ ==========
    minGRU    50     7.7       8.5        1.1            8.2
    minGRU   100    18.3      22.1        1.2           18.6
    minGRU   300    79.5     167.6        2.1           81.8
    minLSTM   50     9.0       9.3        1.0            9.8
    minLSTM  100    20.9      25.6        1.2           22.6
    minLSTM  300   110.8     188.1        1.7          103.4
    ======== === ========= ========= ================ ==========

scan = ``layer(x)``, loop = :meth:`sequential`, probe = ``unroll(x, record=True)`` with the
gradients of the Scanned totals and the gates too (within noise of the scan: the same
scan). The scan's O(T log T) vectorised work beats the loop's T small steps from about a
hundred steps on; below that they are even. The price: autograd keeps the ⌈log₂ T⌉
passes' tensors for the backward.

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

Probe path (:meth:`unroll` with ``record=True``): the training path's scan, on the same a
and b. Because b_t enters h_t with coefficient 1 and reaches the loss only through h_t,
autograd's ∂ℓ/∂b_t *is* the total derivative ∂ℓ/∂h_t, so ``states["h"]`` is a
:class:`core.cells.Scanned` (values h, totals b) and the probe costs one scan forward and
backward, as a training step does, plus the recorded activations.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from core.cells import Scanned, Unrolled, _check_gate_init, chrono_bias

Tensor = torch.Tensor


def g(x: Tensor) -> Tensor:
    """The candidate's activation: x + ½ for x ≥ 0, σ(x) below; positive everywhere."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """h of h_t = a_t ⊙ h_{t−1} + b_t, h_0 = 0, for every step at once.

    ``a`` (in [0, 1]) and ``b`` (≥ 0) are (batch, steps, width); returns h, (batch, steps,
    width), by doubling (see the module docstring). After the pass with offset k, step t
    holds the map of the window (t − 2k, t]: a = Π of its a_r, b = h_t started from 0 at
    its start. Every quantity is a sum of products of factors ≤ 1 times b: nothing grows.
    """
    steps, k = a.shape[1], 1
    while k < steps:
        # b_t ← b_t + a_t ⊙ b_{t−k}: the window (t − 2k, t − k] applied before (t − k, t]
        b = torch.cat([b[:, :k], torch.addcmul(b[:, k:], a[:, k:], b[:, :-k])], 1)
        if 2 * k < steps:  # a_t ← a_t ⊙ a_{t−k}  (the last pass needs no a)
            a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], 1)
        k *= 2
    return b


def _per_step_mean(v: Tensor) -> Tensor:
    """(batch, steps, width) → (steps,): the mean over batch and units, detached."""
    return v.detach().mean(dim=(0, 2))


def _gain_max(gain: Tensor) -> Tensor:
    """(batch, steps, width) → (steps,): the batch-mean gain of the most carrying unit."""
    return gain.detach().mean(dim=0).amax(dim=-1)


class _MinRNN(nn.Module):
    """What the two cells share: one Linear for all gate blocks, the input check, and the
    three ways to run h_t = a_t ⊙ h_{t−1} + b_t on the cell's a, b (:meth:`_coefficients`):
    the scan (:meth:`forward`), the probe's scan (:meth:`unroll`), the loop
    (:meth:`sequential`)."""

    gate_names: tuple[str, ...] = ()
    uses_fused = False

    def __init__(self, input_size: int, hidden_size: int, gate_init: str = "default",
                 chrono_tmax: int | None = None):
        super().__init__()
        _check_gate_init(gate_init, chrono_tmax)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.gate_init = gate_init
        self.chrono_tmax = chrono_tmax
        # [W_{gate}; …] x_t + [b_{gate}; …]: every gate's pre-activation in one matmul,
        # row blocks in the order of gate_names.
        self.linear = nn.Linear(input_size, len(self.gate_names) * hidden_size)
        if gate_init == "chrono":
            with torch.no_grad():
                self._chrono(chrono_bias(hidden_size, chrono_tmax).to(self.linear.bias.dtype))

    def _chrono(self, log_u: Tensor) -> None:
        """Set the carry gate's biases so that each unit starts with gain a = u/(1+u)."""
        raise NotImplementedError

    def _pre_activations(self, x: Tensor) -> tuple[Tensor, ...]:
        """Each gate's (batch, steps, hidden) pre-activation, in gate_names order: chunks of
        one Linear's output, each its own graph node (it depends on x only, so autograd's
        gradient w.r.t. it is the total derivative)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (batch, steps, {self.input_size}), got {tuple(x.shape)}"
            )
        return self.linear(x).chunk(len(self.gate_names), dim=-1)

    def _coefficients(
        self, x: Tensor, activations: bool = False
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, dict[str, Tensor]]:
        """(pre-activations by gate name, a, b, each gate's (batch, steps, hidden) activation
        by name: only when ``activations``, so the training path computes none it does not
        need); a ∈ [0, 1], b ≥ 0, all (batch, steps, hidden)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """(batch, steps, input) → h, (batch, steps, hidden): the linear-domain scan."""
        _, a, b, _ = self._coefficients(x)
        return linear_scan(a, b)

    def sequential(self, x: Tensor) -> Tensor:
        """The same recurrence on the same a, b, stepped through time in a Python loop:
        (batch, steps, input) → h, (batch, steps, hidden). Equal to :meth:`forward` up to
        rounding; for measuring the scan against the loop (bench/modern.py)."""
        _, a, b, _ = self._coefficients(x)
        h, hs = a.new_zeros(a[:, 0].shape), []  # h_0 = 0
        for t in range(a.shape[1]):
            h = torch.addcmul(b[:, t], a[:, t], h)  # h_t = a_t ⊙ h_{t−1} + b_t
            hs.append(h)
        return torch.stack(hs, dim=1)

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        """The probe's path: the training path's scan, with ``states["h"]`` a
        :class:`core.cells.Scanned` whose totals are b, the node the scan consumes (its
        gradient is ∂ℓ/∂h_t, total; see the module docstring)."""
        pre, a, b, act = self._coefficients(x, activations=record)
        h = linear_scan(a, b)
        if not record:
            return Unrolled(h=h)
        gain = a.detach()  # ∂h_t/∂h_{t−1} = diag(a_t)
        activations = {n: _per_step_mean(v) for n, v in act.items()}
        activations.update(gain=_per_step_mean(gain), gain_max=_gain_max(gain))
        return Unrolled(h=h, states={"h": Scanned(values=h, totals=b)}, gates=pre,
                        activations=activations)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class MinGRULayer(_MinRNN):
    """minGRU: h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t, z_t = σ(W_z x_t + b_z),
    h̃_t = g(W_h x_t + b_h); per-step gain a_t = 1 − z_t (see the module docstring).

    Activations recorded per step: ``z`` (mean z_t), ``g`` (mean h̃_t), ``gain`` (mean
    1 − z_t) and ``gain_max`` (the largest over units of the batch-mean 1 − z_t).
    """

    gate_names = ("z", "g")

    def _chrono(self, log_u: Tensor) -> None:
        # Chrono (Tallec & Ollivier 2018) in minGRU's convention: the gain is a = 1 − z =
        # σ(−p_z), so b_z = −log u gives a = σ(log u) = u/(1+u) at zero input: a leaky
        # memory of 1/(1 − a) = 1 + u ∈ [2, T_max] steps, taking in z = 1/(1+u) of h̃_t.
        self.linear.bias[: self.hidden_size] = -log_u

    def _coefficients(self, x, activations=False):
        p_z, p_h = self._pre_activations(x)
        z = torch.sigmoid(p_z)  # z_t = σ(p_z)
        h_tilde = g(p_h)  # h̃_t = g(p_h)
        a = torch.sigmoid(-p_z)  # a_t = 1 − z_t = σ(−p_z), not 1 − σ(p_z) (which rounds to 0)
        b = z * h_tilde  # b_t = z_t ⊙ h̃_t: the node the scan consumes
        return {"z": p_z, "g": p_h}, a, b, {"z": z, "g": h_tilde}


class MinLSTMLayer(_MinRNN):
    """minLSTM: h_t = f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t, f′ = f/(f + i), i′ = i/(f + i),
    f_t = σ(W_f x_t + b_f), i_t = σ(W_i x_t + b_i), h̃_t = g(W_h x_t + b_h); per-step
    gain a_t = f′_t (see the module docstring).

    f′ and i′ from one log ratio, never as f/(f + i): in float32 torch's σ(p) is 0 below
    p ≈ −88 (measured: 1.6e-38 at −87, 0 at −89), where the quotient is 0/0 = NaN. With
    d_t = log f_t − log i_t,

        f′ = f/(f + i) = 1/(1 + i/f) = 1/(1 + e^{−d}) = σ(d),   i′ = 1 − σ(d) = σ(−d),
        d = log σ(p_f) − log σ(p_i) = softplus(−p_i) − softplus(−p_f),

    log σ taken by ``logsigmoid`` (min(p, 0) − log1p(e^{−|p|}), exact to a few u for any
    p), not as −softplus(−p): torch's softplus returns its argument above 20, off by
    log1p(e^{−20}) ≈ 2e-9, far above float64's rounding.

    Activations recorded per step: ``f``, ``i`` (mean f_t, i_t: the gates before the
    normalisation), ``g`` (mean h̃_t), ``gain`` (mean f′_t) and ``gain_max`` (the largest
    over units of the batch-mean f′_t).
    """

    gate_names = ("f", "i", "g")

    def _chrono(self, log_u: Tensor) -> None:
        # Chrono as for the LSTM: b_f = log u, b_i = −log u. At zero input the gain is
        # f′ = σ(d), d = log σ(log u) − log σ(−log u) = log(u/(1+u)) − log(1/(1+u)) = log u,
        # so f′ = u/(1+u) and i′ = 1/(1+u): a leaky memory of 1 + u ∈ [2, T_max] steps.
        H = self.hidden_size
        self.linear.bias[:H] = log_u
        self.linear.bias[H: 2 * H] = -log_u

    def _coefficients(self, x, activations=False):
        p_f, p_i, p_h = self._pre_activations(x)
        d = F.logsigmoid(p_f) - F.logsigmoid(p_i)  # d_t = log f_t − log i_t
        h_tilde = g(p_h)  # h̃_t = g(p_h)
        a = torch.sigmoid(d)  # a_t = f′_t = σ(d_t)
        b = torch.sigmoid(-d) * h_tilde  # b_t = i′_t ⊙ h̃_t, i′_t = σ(−d_t): the scan's node
        act = {"f": torch.sigmoid(p_f), "i": torch.sigmoid(p_i), "g": h_tilde} if activations else {}
        return {"f": p_f, "i": p_i, "g": p_h}, a, b, act

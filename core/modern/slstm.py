"""sLSTM: the scalar-memory cell of xLSTM (Beck et al. 2024, arXiv 2405.04517, section 2.2).

One head and the cell alone: no block-diagonal heads (the reference splits R into
``num_heads`` diagonal blocks; with one head R is a full H×H matrix per gate, so every
unit mixes with every other), no causal convolution, group norm or up-projection of the
xLSTM block around it. Gate order i, f, z, o as in the reference.

Equations (pre-activations from one input matmul for all steps and one recurrent matmul
per step; R is the recurrent "memory mixing" matrix):

.. math::
    (ĩ_t, f̃_t, z̃_t, õ_t) &= W x_t + R h_{t−1} + b \\
    z_t = \\tanh(z̃_t), \\quad i_t &= \\exp(ĩ_t), \\quad f_t = σ(f̃_t), \\quad o_t = σ(õ_t) \\
    m_t &= \\max(\\log f_t + m_{t−1}, \\log i_t)          \\quad \\text{(stabiliser)} \\
    i′_t = \\exp(\\log i_t − m_t), &\\quad f′_t = \\exp(\\log f_t + m_{t−1} − m_t) \\
    c_t = f′_t ⊙ c_{t−1} + i′_t ⊙ z_t, &\\quad n_t = f′_t ⊙ n_{t−1} + i′_t, \\quad
    h_t = o_t ⊙ c_t / n_t

Forget gate: the paper allows f_t = σ(f̃_t) or exp(f̃_t) (its eq. 13); the reference's
sLSTM (vanilla ``slstm_forward_pointwise`` and the CUDA kernel alike) computes
log f_t = log σ(f̃_t), and so do we. So f_t ∈ (0, 1) and log f_t < 0.

Why the stabiliser changes nothing but the scale. Without it, c̄_t = Σ_s (Π_{r=s+1..t} f_r)
i_s z_s and n̄_t = Σ_s (Π f_r) i_s: exp(ĩ) overflows float32 beyond ĩ ≈ 88.7 and underflows
below ≈ −103. With it, c_t = c̄_t e^{−m_t} and n_t = n̄_t e^{−m_t} (by induction), so
h_t = o_t c_t / n_t = o_t c̄_t / n̄_t exactly: m only picks the exponent, and e^{m_t} is the
largest single term of n̄_t. Consequently the *total* derivative ∂ℓ/∂m_t is zero: moving
m_t by δ scales c_s, n_s (s ≥ t) by one common factor, which cancels in every h_s (the
paper's appendix shows the stabiliser leaves the loss's parameter gradients unchanged).

Initial state and the division by n. h_0 = c_0 = n_0 = 0 as in the reference, and m_0 = −∞
(the log of the empty sum n̄_0 = 0). Then m_1 = max(−∞, ĩ_1) = ĩ_1, i′_1 = 1, f′_1 = 0: the
reference reaches the same m_1 = ĩ_1 with a branch ("if n == 0: m = ĩ"). From there
n_t ≥ 1 for every t: n_1 = 1, and at each later step the max picks one branch whose
weight is exactly 1 (f′_t = 1 ⇒ n_t = n_{t−1} + i′_t; i′_t = 1 ⇒ n_t = f′_t n_{t−1} + 1).
So h_t = o_t c_t / n_t needs no ε and never divides by a small number; the reference
divides plainly too. (With m_0 = 0 instead, n_1 = exp(ĩ_1 − max(log f_1, ĩ_1)) can underflow
to 0 for a very negative ĩ_1, and h becomes 0/0.) The reference also clamps i′, f′ at 1;
with the max above both exponents are ≤ 0 already, so we do not.

The derivative of the max (the probe's m row). m_t = max(a, b) with a = log f_t + m_{t−1},
b = ĩ_t: ∂m_t/∂a = 1 where a > b and 0 where a < b (∂m_t/∂b the complement); at a tie
``torch.maximum`` gives ½ to each. Whatever the branch, the total ∂ℓ/∂m_t that
``unroll(record=True)`` exposes is 0 up to rounding (the paths through i′_t, f′_t and
f′_{t+1}, m_{t+1} cancel), so the probe's m row shows rounding noise: ~1e-16 of the other
rows' scale in float64, ~1e-8 in float32 (measured at init, adding task, T = 20, H = 16:
‖∂ℓ/∂m_t‖ ≤ 7e-9 where ‖∂ℓ/∂c_t‖ reaches 0.48). ``forward`` (the training path) therefore treats m
as a constant (``detach``), as the reference's CUDA backward does (it returns no gradient for
m): the same parameter gradients in exact arithmetic, without the cancelling terms.

Init (the reference's defaults, ``sLSTMCellConfig``): R = 0 ("zeros"); b_i = b_z = b_o = 0;
the forget bias "powerlaw_blockdependent" for a model of one block (block index 0, so the
exponent is 0.3): b_f,k = 5 − 12 (k/(H−1))^0.3 for unit k = 0..H−1, from +5 (f = σ(5) =
0.9933, memory time 1/(1 − f) ≈ 150 steps) down to −7 (f ≈ 0.0009: a unit that keeps almost
nothing). Only units with k/(H−1) < (5/12)^{1/0.3} ≈ 0.054 start with b_f > 0: block 0 of a
stack is meant to forget fast, later blocks (larger exponent) to remember. W (4H × I)
~ N(0, 2/(5 I)): the reference's "small init" of its gate projections (the normal of Nguyen &
Salazar 2019 with fan-in I).

Why the cell path's per-step gain stays near 1. ∂c_t/∂c_{t−1} has the direct term f′_t, the
``gain`` we record. Whenever the carried mass dominates the new input (the max takes its
forget branch), f′_t = exp(0) = 1 exactly: the cell path carries c (and ∂ℓ/∂c) unchanged,
and the forgetting f_t < 1 goes into m_t (m_t = m_{t−1} + log f_t) and into the new input's
weight i′_t = exp(ĩ_t − m_t) ≤ 1, which n_t = n_{t−1} + i′_t normalises. Only when the
exponential input gate outbids the carried mass (ĩ_t > log f_t + m_{t−1}) is
f′_t = f_t e^{m_{t−1} − ĩ_t} < 1: the cell revises what it stored, the paper's motivation for
exponential gating. At init (R = 0, W small) the b_f = 5 unit takes the forget branch on most
steps, so ``gain_max`` sits near 1, while the units with negative b_f are outbid nearly every
step and pull the mean ``gain`` down (measured, I = 3, H = 16, 50 steps of N(0, 1) input,
seed 0: mean gain 0.13, gain_max 0.96).
The recurrent weights are 0 at init, so h_{t−1} reaches nothing until training grows R: the
gradient to early steps travels through c and n only (a task scored at its last step sees
∂ℓ/∂h_t = 0 for every earlier t at init, the probe's vanishing ratio 0).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from core.cells import Unrolled

Tensor = torch.Tensor

GATES = ("i", "f", "z", "o")  # rows of W, R and b, in the reference's order


def powerlaw_forget_bias(hidden_size: int, block_idx: int = 0, num_blocks: int = 1) -> Tensor:
    """The reference's "powerlaw_blockdependent" forget-gate bias, a (hidden_size,) float64
    tensor: b_f,k = 5 − 12 (k/(H−1))^p with p = 0.3 + 1.3 · block_idx/(num_blocks − 1)
    (p = 0.3 for a model of one block, ours). Values in [−7, 5], decreasing in k; a layer of
    one unit gets the top value 5 (the reference would divide 0 by 0)."""
    ratio = block_idx / (num_blocks - 1) if num_blocks > 1 else 0.0
    if hidden_size == 1:
        return torch.full((1,), 5.0, dtype=torch.float64)
    k = torch.arange(hidden_size, dtype=torch.float64) / (hidden_size - 1)
    return 5.0 - 12.0 * k ** (0.3 + 1.3 * ratio)


class SLSTMLayer(nn.Module):
    """sLSTM cell over a sequence (see the module docstring for the equations and init).

    Parameters: ``weight_ih`` W (4H, I), ``weight_hh`` R (4H, H), ``bias`` b (4H,), each with
    row blocks i, f, z, o. ``forward(x)`` is the training path, ``unroll(x, record)`` the
    probe's, per :mod:`core.modern`; both run the same step, sequentially (h_{t−1} enters
    the gates through R, so there is no parallel scan).
    """

    gate_names = GATES
    uses_fused = False

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias = nn.Parameter(torch.empty(4 * H))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        H = self.hidden_size
        # W ~ N(0, 2/(5 I)): the reference's small init of its i, f, z, o projections.
        nn.init.normal_(self.weight_ih, 0.0, math.sqrt(2.0 / (5.0 * self.input_size)))
        self.weight_hh.zero_()  # R = 0: recurrent_weight_init "zeros"
        self.bias.zero_()  # b_i = b_z = b_o = 0
        self.bias[H : 2 * H] = powerlaw_forget_bias(H).to(self.bias.dtype)  # b_f: +5 … −7

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (batch, steps, {self.input_size}), got {tuple(x.shape)}"
            )

    def _run(self, x: Tensor, record: bool, detach_m: bool) -> Unrolled:
        self._check_input(x)
        B, T, H = x.shape[0], x.shape[1], self.hidden_size
        gx = F.linear(x, self.weight_ih, self.bias)  # W x_t + b, every step in one matmul
        r_t = self.weight_hh.t()
        h = x.new_zeros(B, H)  # h_0 = 0
        c = x.new_zeros(B, H)  # c_0 = 0
        n = x.new_zeros(B, H)  # n_0 = 0
        m = x.new_full((B, H), -math.inf)  # m_0 = −∞: log n̄_0, the log of an empty sum
        hs: list[Tensor] = []
        rec: dict[str, list[Tensor]] = {q: [] for q in ("c", "n", "m", *GATES)}
        acts: dict[str, list[Tensor]] = {"i": [], "f": [], "o": [], "gain_max": []}
        for t in range(T):
            pre = gx[:, t] + h @ r_t  # (ĩ, f̃, z̃, õ) = W x_t + R h_{t−1} + b: one matmul
            # One graph node per gate (a chunk each), every use of a gate going through it.
            i_pre, f_pre, z_pre, o_pre = pre.chunk(4, 1)
            log_f = F.logsigmoid(f_pre)  # log f_t = log σ(f̃_t)
            carried = log_f + m  # log f_t + m_{t−1}
            m = torch.maximum(carried, i_pre)  # m_t = max(log f_t + m_{t−1}, log i_t), log i_t = ĩ_t
            if detach_m:
                m = m.detach()  # ∂ℓ/∂m_t = 0 in total: drop the cancelling paths (training)
            i_s = torch.exp(i_pre - m)  # i′_t = exp(log i_t − m_t) ≤ 1
            f_s = torch.exp(carried - m)  # f′_t = exp(log f_t + m_{t−1} − m_t) ≤ 1
            z = torch.tanh(z_pre)  # z_t = tanh(z̃_t)
            o = torch.sigmoid(o_pre)  # o_t = σ(õ_t)
            c = f_s * c + i_s * z  # c_t = f′_t ⊙ c_{t−1} + i′_t ⊙ z_t
            n = f_s * n + i_s  # n_t = f′_t ⊙ n_{t−1} + i′_t  (≥ 1)
            h = o * c / n  # h_t = o_t ⊙ c_t / n_t
            hs.append(h)
            if record:
                for q, v in (("c", c), ("n", n), ("m", m), ("i", i_pre), ("f", f_pre),
                             ("z", z_pre), ("o", o_pre)):
                    rec[q].append(v)
                for q, v in (("i", i_s), ("f", f_s), ("o", o)):
                    acts[q].append(v.detach().mean())
                # The most carrying unit's f′ (batch mean): the mean over units hides it.
                acts["gain_max"].append(f_s.detach().mean(0).max())
        out = Unrolled(h=torch.stack(hs, 1))
        if record:
            out.states = {"h": hs, "c": rec["c"], "n": rec["n"], "m": rec["m"]}
            out.gates = {g: rec[g] for g in GATES}
            out.activations = {k: torch.stack(v) for k, v in acts.items()}
            out.activations["gain"] = out.activations["f"]  # ∂c_t/∂c_{t−1}'s direct term f′_t
        return out

    def forward(self, x: Tensor) -> Tensor:
        """(batch, steps, input) → h (batch, steps, hidden); m held constant in backward."""
        return self._run(x, record=False, detach_m=True).h

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        """The same steps, m kept in the graph so ∂ℓ/∂m_t is its total derivative (≈ 0)."""
        return self._run(x, record=record, detach_m=False)

"""Orthogonal RNN: a tanh RNN whose W_hh stays orthogonal in training (expRNN:
Lezcano-Casado & Martínez-Rubio 2019, "Cheap Orthogonal Constraints in Neural Networks:
A Simple Parametrization of the Orthogonal and Unitary Group", ICML, arXiv 1901.08428).

.. math::
    h_t &= \\tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t−1} + b_{hh}) \\
    W_{hh} &= B \\exp(A), \\quad A = X_{\\downarrow} − X_{\\downarrow}^⊤

the Elman RNN of torch.nn.RNN(nonlinearity="tanh") (same parameters, same layout:
``weight_ih`` (hidden, input), ``weight_hh`` (hidden, hidden), ``bias_ih``, ``bias_hh``),
except that W_hh is not a free matrix. It is torch's maintained parametrisation,
``torch.nn.utils.parametrizations.orthogonal(orthogonal_map="matrix_exp",
use_trivialization=True)``: the trained tensor is X (``parametrizations.weight_hh.original``),
its lower triangle X↓ gives a skew-symmetric A (Aᵀ = −A), and the exponential of a
skew-symmetric matrix is orthogonal, exp(A)ᵀ exp(A) = exp(−A) exp(A) = I, whatever X is.
So no gradient step can leave the orthogonal group: no projection, no penalty.

Why these two options, as expRNN does:

* ``matrix_exp``: expRNN's map is the exponential (its "cayley" mode is the comparison,
  not the method). exp reaches every rotation (all of SO(n)), where the Cayley map misses
  the matrices with eigenvalue −1.
* ``use_trivialization=True``: W_hh = B exp(A) with the base B (a buffer,
  ``parametrizations.weight_hh[0].base``) set to the initial W_hh, and X starting at A = 0.
  That is expRNN's trivialisation B·exp(A) (the "dtriv" of Lezcano-Casado 2019,
  "Trivializations for Gradient-Based Optimization on Manifolds", with one change of basis,
  at init, and K = ∞ after it). Starting at A = 0 matters: the derivative of exp there is
  the identity, so the first updates are, to first order, Riemannian gradient steps on the
  orthogonal group at W_0, and exp's derivative stays invertible while A's eigenvalues ±iα
  keep α < π. It is also the only way torch lets a matrix_exp parametrisation start at a
  chosen W_hh (assignment needs the trivialisation). expRNN's separate, 10× smaller learning rate for A is not reproduced:
  the trainer has one optimiser.

Init (expRNN's ``henaff_init_``, its default for the copy task): W_hh block-diagonal,
⌊H/2⌋ 2×2 rotations [[cos θ, sin θ], [−sin θ, cos θ]] with θ ~ U(−π, π) (and a 1 for odd
H): the exponential of its block-diagonal skew matrix, with eigenvalues e^{±iθ} spread
uniformly over the unit circle. det W_hh = +1, and exp keeps it there. W_ih, b_ih, b_hh:
torch.nn.RNN's own, U(−1/√H, 1/√H), so this layer differs from ``rnn_tanh`` in W_hh only.
Not expRNN's Kaiming-normal input kernel (std √(2 / input)): that scale is meant for its
modReLU, which does not saturate. With tanh it does, fast: W_hh preserves ‖h‖, so each
step's input adds its energy, ‖W_ih x‖² ≈ H·2/input for a one-hot x, until tanh bounds h.
Measured (recall, T = 50, H = 32, 400 Adam steps at 3e-3, seed 0): Kaiming, mean gain
1 − h² ≈ 0.76 and the loss stays at chance (2.08); torch's init, gain ≈ 0.95, loss 0.24.

Why the per-step gain is near 1. ∂h_t/∂h_{t−1} = diag(1 − h_t²) W_hh, and an orthogonal
W_hh has every singular value 1, so the singular values of the step Jacobian are those of
diag(1 − h_t²): the recurrence itself neither shrinks nor grows the gradient, only tanh′ =
1 − h_t² ≤ 1 does (the recorded ``gain``). At init h is small (small W_ih), so tanh′ ≈ 1.
What it gives up: W_hh cannot forget (it only rotates); saturated units still shrink.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrizations

from core.cells import Unrolled
from core.modern.probe_input import probe_through

Tensor = torch.Tensor


def henaff_orthogonal(hidden_size: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """expRNN's henaff init, as the orthogonal matrix itself: exp of the block-diagonal skew
    matrix with θ_j on its super-diagonal at (2j, 2j+1), θ_j ~ U(−π, π) (torch's global RNG).

    exp([[0, θ], [−θ, 0]]) = [[cos θ, sin θ], [−sin θ, cos θ]], written in closed form.
    """
    n = hidden_size // 2
    theta = torch.empty(n, dtype=torch.float64).uniform_(-math.pi, math.pi)
    w = torch.eye(hidden_size, dtype=torch.float64)
    i = torch.arange(n) * 2
    c, s = theta.cos(), theta.sin()
    w[i, i], w[i, i + 1], w[i + 1, i], w[i + 1, i + 1] = c, s, -s, c
    return w.to(dtype)


class OrthogonalRNNLayer(nn.Module):
    """Tanh RNN with W_hh = B exp(A) orthogonal; see the module docstring.

    ``weight_hh`` is a parametrised attribute: reading it computes B exp(A) (one matrix
    exponential), so each forward reads it once.
    """

    uses_fused = False
    gate_names: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        dtype = torch.get_default_dtype()
        k = 1.0 / math.sqrt(hidden_size)  # torch.nn.RNN's init: U(−1/√H, 1/√H)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-k, k))
        self.weight_hh = nn.Parameter(henaff_orthogonal(hidden_size, dtype))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size).uniform_(-k, k))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size).uniform_(-k, k))
        # Registering keeps W_hh's value: it is orthogonal, so the base B becomes W_hh and
        # X = −I (A = 0, exp(A) = I); otherwise torch would orthogonalise it by QR first.
        parametrizations.orthogonal(
            self, "weight_hh", orthogonal_map="matrix_exp", use_trivialization=True
        )

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (batch, steps, {self.input_size}), got {tuple(x.shape)}"
            )

    def _input_projection(self, x: Tensor) -> Tensor:
        """W_ih x_t + b_ih + b_hh for every step at once, time first: (steps, batch, hidden)."""
        return (nn.functional.linear(x, self.weight_ih, self.bias_ih) + self.bias_hh).transpose(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The training path: one matrix exponential, one input matmul, then the recurrence
        with its backward written out (:class:`_Recurrence`)."""
        self._check_input(x)
        w = self.weight_hh  # W_hh = B exp(A), computed once for all T steps
        gx = self._input_projection(x).contiguous()
        return _Recurrence.apply(gx, w).transpose(0, 1)

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        """The probe's path: the training path's own recurrence (:class:`_Recurrence`), with
        the zero probe input z when ``record`` (h_t = tanh(a_t) + z_t; the total derivative
        ∂ℓ/∂h_t comes out as ∂ℓ/∂z_t: :mod:`core.modern.probe_input`).

        Measured (B = 64, H = 64, 1 thread, core.probe.probe against the training step,
        fastest of 25 interleaved runs on a loaded machine): T = 100, 10.0 ms against 8.3
        (1.21×; the former per-step autograd unroll: 20.8 ms, 2.5×); T = 50, 6.7 against
        5.0 (1.35×; formerly 10.0 ms, 2.0×).
        """
        self._check_input(x)
        w = self.weight_hh  # W_hh = B exp(A), computed once for all T steps
        g = self._input_projection(x).contiguous()
        if not record:
            return Unrolled(h=_Recurrence.apply(g, w).transpose(0, 1))
        # ∂h_t/∂h_{t−1} = diag(1 − h_t²) W_hh, W_hh orthogonal: its singular values are the
        # 1 − h_t² (tanh′), so they are the per-step gain; per unit, its batch mean: (T, H).
        return probe_through(_Recurrence, g, w, self.hidden_size,
                             lambda h: 1.0 - (h * h).mean(0))


class _Recurrence(torch.autograd.Function):
    """h_t = tanh(g_t + W h_{t−1}) + z_t, h_{−1} = 0, for g = W_ih x + b_ih + b_hh given
    time first (steps, batch, hidden), with the backward written out. z, the probe input,
    is optional: the training path passes none (and pays nothing for it), the probe zeros.

    Autograd through the loop records 2 nodes per step; here the forward runs without a
    graph and the backward is one loop of a product and a matmul per step, ∂ℓ/∂W in one
    matmul at the end. Measured (B = 64, T = 100, H = 64, 1 thread, forward + backward):
    20 ms through autograd, 9.9 ms here (torch.nn.RNN's fused kernel: 11 ms). Backward, with
    δ_t = ∂ℓ/∂h_t (total) and G_t the incoming ∂ℓ/∂h_t (direct):

    ∂ℓ/∂a_t = δ_t ⊙ (1 − tanh²(a_t))
    δ_{t−1} = G_{t−1} + W^⊤ ∂ℓ/∂a_t
    ∂ℓ/∂g_t = ∂ℓ/∂a_t,  ∂ℓ/∂W = Σ_{t ≥ 1} ∂ℓ/∂a_t^⊤ h_{t−1} (summed over the batch)
    ∂ℓ/∂z_t = δ_t (z_t enters h_t with coefficient 1 and nothing else)
    """

    @staticmethod
    def forward(ctx, g: Tensor, w: Tensor, z: Tensor | None = None) -> Tensor:
        h = torch.empty_like(g)
        # z = 0, the probe's input, adds exactly 0.0 to every h_t: skip those T adds then (one
        # check, min z = max z = 0; aminmax is ~5x faster than any() here); the backward
        # is the same for every z (∂h_t/∂z_t = 1 whatever z is)
        if z is not None and all(v == 0 for v in z.aminmax()):
            z = None
        phi = h if z is None else torch.empty_like(g)  # tanh(a_t): h_t itself when z = 0
        prev = g.new_zeros(g.shape[1:])
        w_t = w.T
        for t in range(g.shape[0]):
            torch.addmm(g[t], prev, w_t, out=phi[t]).tanh_()  # tanh(g_t + W h_{t−1})
            if z is not None:
                torch.add(phi[t], z[t], out=h[t])  # h_t = tanh(a_t) + z_t
            prev = h[t]
        ctx.save_for_backward(h, phi, w)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        h, phi, w = ctx.saved_tensors
        tanh_prime = 1.0 - phi * phi  # tanh′(a_t) = 1 − tanh²(a_t) (= 1 − h_t² when z = 0)
        grad_a = torch.empty_like(h)
        # δ_t for every t, written where the loop computes it, only when z asks for it
        deltas = torch.empty_like(h) if ctx.needs_input_grad[2:3] == (True,) else None
        delta = grad_h[-1]  # δ_{T−1} = G_{T−1}: nothing comes after the last step
        if deltas is not None:
            delta = deltas[-1].copy_(delta)
        for t in range(h.shape[0] - 1, -1, -1):
            torch.mul(delta, tanh_prime[t], out=grad_a[t])  # ∂ℓ/∂a_t = δ_t ⊙ tanh′(a_t)
            if t:  # δ_{t−1} = G_{t−1} + Wᵀ ∂ℓ/∂a_t
                out = None if deltas is None else deltas[t - 1]
                delta = torch.addmm(grad_h[t - 1], grad_a[t], w, out=out)
        grad_w = None
        if ctx.needs_input_grad[1]:
            n = h.shape[-1]  # Σ_t Σ_b ∂ℓ/∂a_{t,b} h_{t−1,b}ᵀ as one (H, (T−1)B) @ ((T−1)B, H)
            grad_w = grad_a[1:].reshape(-1, n).T @ h[:-1].reshape(-1, n)
        return grad_a, grad_w, deltas  # ∂ℓ/∂g_t = ∂ℓ/∂a_t, ∂ℓ/∂W, ∂ℓ/∂z_t = δ_t

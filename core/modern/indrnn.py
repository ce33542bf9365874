"""IndRNN: one recurrent weight per unit (Li et al. 2018, "Independently Recurrent
Neural Network (IndRNN): Building A Longer and Deeper RNN", CVPR, arXiv 1803.04831).

.. math::
    a_t &= W x_t + b + u ⊙ h_{t−1} \\
    h_t &= \\mathrm{relu}(a_t)

W (``weight_ih``, hidden × input) and b (``bias_ih``) process the input as in any RNN;
the recurrent weight is a *vector* u (``weight_hh``, one scalar per unit), so the units
do not talk to each other through time (stacked layers mix them; here the readout does).

Why the per-step gain is near 1. The Jacobian ∂h_t/∂h_{t−1} is diagonal,
diag(u ⊙ relu′(a_t)), so the gradient reaching step t from step T in unit k is
∂ℓ/∂h_{T,k} · ∏_{s=t+1}^{T} u_k relu′(a_{s,k}) = ∂ℓ/∂h_{T,k} · u_k^{T−t} while the unit
stays active (paper, eq. 4): a scalar power, not a matrix product. Bounding
|u_k| ≤ 2^{1/T} (the paper's constraint for relu, section 3.1 and 5.1; the reference's
``U_bound = MAG^(1/seq_len)`` with MAG = 2) keeps u_k^{T−t} ≤ 2 over the whole
sequence: the gradient cannot explode, and a unit with u_k near 1 carries it unshrunk.

Init (the reference adding-problem script, Sunnydreamrain/IndRNN_Theano_Lasagne
``adding/adding.py``, and the PyTorch repo's README):

* u ~ U(2^{−1/T}, 2^{1/T}): the law the reference gives the IndRNN layer whose output is
  read (its last layer; "only long-term memory is needed for the output of this layer"
  when the task reads the last step, as adding, recall and temporal order do). Our single
  layer is that layer. (Its first layer draws U(0, 2^{1/T}) for a mix of memory lengths.)
  Every unit thus starts with u^T ∈ (1/2, 2): the per-step gain u·relu′ is u ≈ 1 in the
  active units, 0 in the silent ones.
* W ~ N(0, 0.001²) (the script's ``in2hidW``: ``lasagne.init.Normal(0.001)``), b = 0.

The constraint. The reference clips u to [−2^{1/T}, 2^{1/T}] in its training loop, before
every update (``clip_weight``, a projected gradient step). Our trainer has no hook for a
layer, so the layer projects u itself at the start of every forward and unroll, under
``no_grad`` and only when some |u_k| exceeds the bound: after the optimiser's update, the
next forward sees the clipped u, as in the reference. Why not u_eff = clamp(u) inside the
graph instead: clamp has zero gradient outside its range, so a u_k that an Adam step
pushes past the bound would stay there for good (its gradient is 0 and Adam's momentum
keeps it going), whereas the projected u_k sits *at* the bound and the next gradient can
pull it back. And steps do cross it: an Adam step moves u_k by about the learning rate
(3e-3 by default), a fifth of the whole init band 2^{1/T} − 2^{−1/T} ≈ 1.39/T (0.014 at
T = 100).

``t_max`` is the task's steps per sequence, given by the model builder (the spec's
``derived``); it only sets the bound and the init band (default 100).
"""

from __future__ import annotations

import torch
from torch import nn

from core.cells import Unrolled
from core.modern.probe_input import probe_through

Tensor = torch.Tensor

DEFAULT_T_MAX = 100
INPUT_STD = 1e-3  # W ~ N(0, INPUT_STD²): the reference adding script's in2hidW
RECURRENT_MAG = 2.0  # |u|^T ≤ MAG: the reference's MAG (paper: |u| ≤ 2^{1/T})


class IndRNNLayer(nn.Module):
    """IndRNN layer, (batch, steps, input) → (batch, steps, hidden); see the module docstring.

    Parameters: ``weight_ih`` W (hidden, input), ``weight_hh`` u (hidden,), ``bias_ih`` b
    (hidden,). ``recurrent_max`` = 2^{1/T} bounds |u|.
    """

    uses_fused = False
    gate_names: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int, t_max: int | None = None):
        super().__init__()
        t_max = DEFAULT_T_MAX if t_max is None else int(t_max)
        if t_max < 1:
            raise ValueError(f"t_max must be at least 1, got {t_max}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.t_max = t_max
        self.recurrent_max = RECURRENT_MAG ** (1.0 / t_max)  # |u_k| ≤ 2^{1/T}
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.weight_ih.normal_(0.0, INPUT_STD)  # W ~ N(0, 0.001²)
        # u ~ U(2^{−1/T}, 2^{1/T}): every unit starts as a long memory, u^T ∈ (1/2, 2)
        self.weight_hh.uniform_(1.0 / self.recurrent_max, self.recurrent_max)
        self.bias_ih.zero_()  # b = 0

    @torch.no_grad()
    def constrain(self) -> None:
        """Project u onto |u_k| ≤ 2^{1/T} in place (the reference's clip after each update).

        Only when some |u_k| is out of bounds: an in-place write bumps the parameter's
        version, which would invalidate a graph built before it; there is none then,
        since the optimiser's own in-place update came in between.
        """
        u, m = self.weight_hh, self.recurrent_max
        if bool((u.abs() > m).any()):
            u.clamp_(-m, m)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (batch, steps, {self.input_size}), got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        """The training path: the input projection in one matmul, then the recurrence with
        its backward written out (:class:`_Recurrence`)."""
        self._check_input(x)
        self.constrain()
        gx = nn.functional.linear(x, self.weight_ih, self.bias_ih)  # W x_t + b, all t at once
        return _Recurrence.apply(gx.transpose(0, 1).contiguous(), self.weight_hh).transpose(0, 1)

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        """The probe's path: the training path's own recurrence (:class:`_Recurrence`), with
        the zero probe input z when ``record`` (h_t = relu(a_t) + z_t; the total derivative
        ∂ℓ/∂h_t comes out as ∂ℓ/∂z_t: :mod:`core.modern.probe_input`).

        Measured (B = 64, H = 64, 1 thread, core.probe.probe against the training step,
        fastest of 25 interleaved runs on a loaded machine): T = 100, 5.7 ms against 4.0
        (1.44×; the former per-step autograd unroll: 16.0 ms, 4.0×); T = 50, 3.1 against
        2.1 (1.45×; formerly 6.9 ms, 3.3×).
        """
        self._check_input(x)
        self.constrain()
        u = self.weight_hh
        gx = nn.functional.linear(x, self.weight_ih, self.bias_ih).transpose(0, 1)  # W x_t + b
        g = gx.contiguous()  # time first, as _Recurrence takes it
        if not record:
            return Unrolled(h=_Recurrence.apply(g, u).transpose(0, 1))
        # ∂h_t/∂h_{t−1} = diag(u ⊙ relu′(a_t)); relu′(a_t) = 1 exactly where h_t > 0. Its
        # batch mean per unit, u_k · mean_b [h_{t,b,k} > 0]: (T, H). h_t = relu(a_t) ≥ 0
        # (z = 0), so [h_t > 0] = sign(h_t) (sign(0) = 0), ~5x faster than a bool mask.
        return probe_through(_Recurrence, g, u, self.hidden_size,
                             lambda h: u * h.sign().mean(0))


class _Recurrence(torch.autograd.Function):
    """h_t = relu(g_t + u ⊙ h_{t−1}) + z_t, h_{−1} = 0, for g = W x + b given time first
    (steps, batch, hidden), with the backward written out. z, the probe input, is optional:
    the training path passes none (and pays nothing for it), the probe passes zeros.

    Autograd through the loop records 2 nodes per step and walks them back one by one;
    here the forward runs without a graph and the backward is one loop of two element-wise
    operations per step. Measured (B = 64, T = 100, H = 64, 1 thread, forward + backward):
    15 ms through autograd, 4.1 ms here (torch.nn.RNN relu with its full W_hh, fused:
    6.3 ms). Backward, with δ_t = ∂ℓ/∂h_t (total) and G_t the incoming ∂ℓ/∂h_t (direct):

    ∂ℓ/∂a_t = δ_t ⊙ relu′(a_t), with relu′(a_t) = [relu(a_t) > 0]
    δ_{t−1} = G_{t−1} + u ⊙ ∂ℓ/∂a_t
    ∂ℓ/∂g_t = ∂ℓ/∂a_t,  ∂ℓ/∂u = Σ_{t ≥ 1, b} ∂ℓ/∂a_t ⊙ h_{t−1}
    ∂ℓ/∂z_t = δ_t (z_t enters h_t with coefficient 1 and nothing else)
    """

    @staticmethod
    def forward(ctx, g: Tensor, u: Tensor, z: Tensor | None = None) -> Tensor:
        h = torch.empty_like(g)
        # z = 0, the probe's input, adds exactly 0.0 to every h_t: skip those T adds then (one
        # check, min z = max z = 0; aminmax is ~5x faster than any() here); the backward
        # is the same for every z (∂h_t/∂z_t = 1 whatever z is)
        if z is not None and all(v == 0 for v in z.aminmax()):
            z = None
        phi = h if z is None else torch.empty_like(g)  # relu(a_t): h_t itself when z = 0
        prev = g.new_zeros(g.shape[1:])
        for t in range(g.shape[0]):
            torch.addcmul(g[t], u, prev, out=phi[t]).relu_()  # relu(g_t + u ⊙ h_{t−1})
            if z is not None:
                torch.add(phi[t], z[t], out=h[t])  # h_t = relu(a_t) + z_t
            prev = h[t]
        ctx.save_for_backward(h, phi, u)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        h, phi, u = ctx.saved_tensors
        active = phi > 0  # relu′(a_t)
        grad_a = torch.empty_like(h)
        # δ_t for every t, written where the loop computes it, only when z asks for it
        deltas = torch.empty_like(h) if ctx.needs_input_grad[2:3] == (True,) else None
        delta = grad_h[-1]  # δ_{T−1} = G_{T−1}: nothing comes after the last step
        if deltas is not None:
            delta = deltas[-1].copy_(delta)
        for t in range(h.shape[0] - 1, -1, -1):
            torch.mul(delta, active[t], out=grad_a[t])  # ∂ℓ/∂a_t = δ_t ⊙ relu′(a_t)
            if t:  # δ_{t−1} = G_{t−1} + u ⊙ ∂ℓ/∂a_t
                out = None if deltas is None else deltas[t - 1]
                delta = torch.addcmul(grad_h[t - 1], grad_a[t], u, out=out)
        grad_u = (grad_a[1:] * h[:-1]).sum((0, 1)) if ctx.needs_input_grad[1] else None
        return grad_a, grad_u, deltas  # ∂ℓ/∂g_t = ∂ℓ/∂a_t, ∂ℓ/∂u, ∂ℓ/∂z_t = δ_t

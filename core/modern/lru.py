"""Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks
for Long Sequences", arXiv 2303.06349).

The recurrence is linear and diagonal, over N = ``hidden_size`` complex state units:

.. math::
    λ &= \\exp(−\\exp(ν) + i \\exp(θ_{log}))       \\quad (N,) \\text{ complex, } |λ| < 1 \\\\
    γ &= \\exp(γ_{log})                             \\quad (N,) \\text{ real} \\\\
    x_t &= λ ⊙ x_{t−1} + γ ⊙ (B u_t),  \\quad x_{−1} = 0   \\quad B = B_{re} + i B_{im} \\\\
    y_t &= \\mathrm{Re}(C x_t) + D u_t                \\quad C = C_{re} + i C_{im},\\ D \\text{ real} \\\\
    o_t &= \\mathrm{GLU}(\\mathrm{GELU}(y_t)) = (W_a g_t + b_a) ⊙ σ(W_b g_t + b_b),\\ g_t = \\mathrm{GELU}(y_t)

u_t is the layer's input (width ``input_size``), y_t and o_t have width H = ``hidden_size``
(the model's readout sees o_t); steps count from t = 0. The nonlinearity
is only position-wise (GELU, then a GLU), as in the paper's block; there is none in
time. The paper's block also has a normalisation and a residual skip around it; a skip
needs input width = H, which ours does not have, and D u_t already passes the input
straight to y_t.

What one layer cannot do: its state x_t is a *linear* function of u_1 … u_t, so a
product of inputs (the adding task's marker × value) must be read out of N complex
numbers that hold a linear summary of the whole sequence; that works while N is about
T or more and fails beyond. The paper stacks blocks, each recurrence reading the
previous block's nonlinear output. Measured with one layer (batch 32, Adam): recall at
T = 50, H = 32 is solved in 200-250 steps (seeds 0-2), copy at T = 20 reaches 98 % in
300; adding at T = 10, H = 16 reaches MSE 0.047 (baseline 0.167) in 450 steps, but at
T = 50, H = 64 stays at 0.145 after 1000 steps and at T = 100, H = 32 at 0.18 after
1500.

Parameters (the paper's names; all real, so optimisers, clipping and the run store need
no complex support): ``nu_log``, ``theta_log``, ``gamma_log`` (N,), ``B_re``, ``B_im``
(N, input), ``C_re``, ``C_im`` (H, N), ``D`` (H, input), ``glu`` (Linear H → 2H).

Initialisation (the paper's section 3.3 and appendix A):

* |λ| uniform on the ring [r_min, r_max] *by area*: |λ|² = r_min² + u₁ (r_max² − r_min²),
  u₁ ~ U(0, 1), stored as ν_log = log(−½ log |λ|²) so that |λ| = exp(−exp(ν_log)) stays
  in (0, 1) for every value the optimiser reaches (stability by construction);
* arg λ = max_phase · u₂, u₂ ~ U(0, 1), stored as θ_log = log(arg λ);
* γ_log = log √(1 − |λ|²) (then trained freely, as in the paper);
* B_re, B_im ~ N(0, 1/(2·input)) (so B u has variance ≈ |u|²/input per unit, Glorot-like),
  C_re, C_im ~ N(0, 1/N), D ~ N(0, 1/input); the GLU's Linear keeps torch's default.

Why the per-step gain is near 1. ∂x_t/∂x_{t−1} = diag(λ): the gain of unit n is |λ_n|
at every step and for every input, with no nonlinearity to shrink it, and |λ| starts in
[0.9, 0.999] by default. A unit with |λ| = r carries a gradient over k steps as r^k:
memory times 1/(1 − r) from 10 to 1000 steps, the ring's spread of timescales; its
phase makes it oscillate at frequency arg λ. Without γ, a unit near |λ| = 1 would sum
its inputs into a state of variance |Bu|²/(1 − |λ|²) (1/(1 − 0.999²) ≈ 500); γ =
√(1 − |λ|²) brings that back to |Bu|² for white input, so units near 1 do not blow up
the forward pass. The activations ``gain`` (mean |λ|), ``gain_max`` (max |λ|) and
``modulus`` (mean |x_t|) make both visible.

One scan, two uses:

* ``forward``, the training path: x_t = Σ_{s≤t} λ^{t−s} b_s (b_s = γ ⊙ B u_s) by the
  odd–even parallel scan :func:`scan` (⌈log₂ T⌉ levels, ~2T complex multiply-adds).
  Measured (``python -m core.modern.lru``: forward + backward of the recurrence alone,
  best of 9, batch 64, float32, one thread, 2 shared cores at load 1.6) against the
  sequential loop (:func:`loop`), scan / loop in ms:

  ======  ===========  ===========
  T       N = 32       N = 64
  ======  ===========  ===========
  50      3.4 / 5.2    6.1 / 8.8
  100     6.0 / 13.9   12.4 / 24.7
  300     18.1 / 81.7  45.8 / 273.6
  ======  ===========  ===========

  The Hillis–Steele scan (T multiply-adds per level) took 130 ms at T = 300, N = 64;
  an FFT convolution with the kernel λ^k 150 ms. A whole training step of the model
  (layer and readout, adding task, batch 64, H = 64) took 23 ms at T = 100 and 77 ms at
  T = 300 (torch's fused LSTM: 13 and 67 ms).
* ``unroll``, the probe's path: the same scan, the state recorded as a
  :class:`core.cells.Scanned`. Its values are h_t = [Re x_t, Im x_t] (width 2N, the
  complex state as real numbers, so ‖∂ℓ/∂h_t‖ is the modulus of the complex gradient
  ∂ℓ/∂Re x_t + i ∂ℓ/∂Im x_t); its totals node is [Re b_t, Im b_t], whose gradient is
  that total derivative because b_t enters x_t with coefficient 1 and nothing else.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.cells import Scanned, Unrolled

Tensor = torch.Tensor

class LRULayer(nn.Module):
    """The LRU of Orvieto et al. 2023 (see the module docstring for the equations).

    Args:
      input_size: width of u_t.
      hidden_size: N complex state units and H = N output features.
      r_min, r_max: the ring |λ| is drawn on (0 ≤ r_min ≤ r_max < 1). The defaults put
        it near 1 (the paper's point for long ranges): memory times 1/(1 − |λ|) from 10 to
        1000 steps, the lags of our tasks. (The paper's reference code defaults to the
        whole disk, r_min = 0, r_max = 1, and is set per task.)
      max_phase: arg λ is drawn in (0, max_phase]; 2π covers every frequency (narrow
        slices near 0 are used for the longest tasks).
    """

    gate_names: tuple[str, ...] = ()
    uses_fused = False

    def __init__(self, input_size: int, hidden_size: int, r_min: float = 0.9,
                 r_max: float = 0.999, max_phase: float = 2 * math.pi):
        super().__init__()
        if not (0.0 <= r_min <= r_max < 1.0 and r_max > 0.0):
            raise ValueError(f"need 0 ≤ r_min ≤ r_max < 1 and r_max > 0, got r_min={r_min}, r_max={r_max}")
        if not max_phase > 0:
            raise ValueError(f"max_phase must be positive, got {max_phase}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        N, H, n_in = hidden_size, hidden_size, input_size
        # u ∈ (0, 1] (1 − U[0, 1)): no log(0) when r_min = 0 or for a zero phase.
        u1 = 1.0 - torch.rand(N, dtype=torch.float64)
        u2 = 1.0 - torch.rand(N, dtype=torch.float64)
        mod2 = r_min**2 + u1 * (r_max**2 - r_min**2)  # |λ|² uniform on [r_min², r_max²]
        nu_log = torch.log(-0.5 * torch.log(mod2))  # |λ| = exp(−exp(ν_log))
        theta_log = torch.log(max_phase * u2)  # arg λ = exp(θ_log) ∈ (0, max_phase]
        gamma_log = 0.5 * torch.log1p(-mod2)  # γ = √(1 − |λ|²)
        dtype = torch.get_default_dtype()
        self.nu_log = nn.Parameter(nu_log.to(dtype))
        self.theta_log = nn.Parameter(theta_log.to(dtype))
        self.gamma_log = nn.Parameter(gamma_log.to(dtype))
        self.B_re = nn.Parameter(torch.randn(N, n_in) / math.sqrt(2 * n_in))
        self.B_im = nn.Parameter(torch.randn(N, n_in) / math.sqrt(2 * n_in))
        self.C_re = nn.Parameter(torch.randn(H, N) / math.sqrt(N))
        self.C_im = nn.Parameter(torch.randn(H, N) / math.sqrt(N))
        self.D = nn.Parameter(torch.randn(H, n_in) / math.sqrt(n_in))
        self.glu = nn.Linear(H, 2 * H)

    # --- the pieces both forms share -------------------------------------------------

    def eigenvalues(self) -> Tensor:
        """λ (N,) complex: exp(−exp(ν_log)) · e^{i exp(θ_log)}."""
        mod = torch.exp(-torch.exp(self.nu_log))  # |λ| = exp(−exp(ν_log))
        phase = torch.exp(self.theta_log)  # arg λ = exp(θ_log)
        return torch.complex(mod * torch.cos(phase), mod * torch.sin(phase))

    def _inputs(self, u: Tensor) -> Tensor:
        """b_t = γ ⊙ (B u_t) for every step at once: (batch, steps, N) complex."""
        gamma = torch.exp(self.gamma_log)  # γ = exp(γ_log)
        b_re = nn.functional.linear(u, self.B_re) * gamma  # γ ⊙ Re(B u_t)
        b_im = nn.functional.linear(u, self.B_im) * gamma  # γ ⊙ Im(B u_t)
        return torch.complex(b_re, b_im)

    def _readout(self, h: Tensor, u: Tensor) -> Tensor:
        """o_t from h_t = [Re x_t, Im x_t] (…, 2N) and u_t: (…, H)."""
        # y_t = Re(C x_t) + D u_t = C_re Re x_t − C_im Im x_t + D u_t
        y = nn.functional.linear(h, torch.cat([self.C_re, -self.C_im], 1))
        y = y + nn.functional.linear(u, self.D)
        g = nn.functional.gelu(y)  # g_t = GELU(y_t)
        a, b = self.glu(g).chunk(2, -1)
        return a * torch.sigmoid(b)  # o_t = (W_a g_t + b_a) ⊙ σ(W_b g_t + b_b)

    def _check(self, u: Tensor) -> None:
        if u.dim() != 3 or u.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (batch, steps, {self.input_size}), got {tuple(u.shape)}"
            )

    # --- the two forms ---------------------------------------------------------------

    def forward(self, u: Tensor) -> Tensor:
        """(batch, steps, input) → (batch, steps, hidden): the parallel scan."""
        self._check(u)
        x = scan(self.eigenvalues(), self._inputs(u))
        return self._readout(torch.cat([x.real, x.imag], -1), u)

    def unroll(self, u: Tensor, record: bool = False) -> Unrolled:
        """The probe's path: the same scan, with the state recorded as a
        :class:`core.cells.Scanned` (values h_t = [Re x_t, Im x_t], totals [Re b_t, Im b_t])."""
        self._check(u)
        N = self.hidden_size
        lam = self.eigenvalues()
        b = self._inputs(u)
        # The totals node: b_t as a real (batch, steps, 2N) tensor, read back as complex.
        # b_t enters x_t with coefficient 1 and reaches the loss only through x_t, so
        # ∂ℓ/∂[Re b_t, Im b_t] = ∂ℓ/∂[Re x_t, Im x_t], the total derivative of h_t.
        b_ri = torch.cat([b.real, b.imag], -1)
        x = scan(lam, torch.complex(b_ri[..., :N], b_ri[..., N:]))
        h = torch.cat([x.real, x.imag], -1)  # h_t = [Re x_t, Im x_t]
        out = Unrolled(h=self._readout(h, u))
        if record:
            T = u.shape[1]
            mod = lam.detach().abs()  # |λ|: ∂x_t/∂x_{t−1} = diag(λ), the same every step
            out.states = {"h": Scanned(values=h, totals=b_ri)}
            out.activations = {
                "gain": mod.mean().expand(T).clone(),  # mean over units of |λ|
                "gain_max": mod.max().expand(T).clone(),  # the most carrying unit's |λ|
                "modulus": x.detach().abs().mean((0, 2)),  # mean over batch, units of |x_t|
            }
        return out


class EncodedLRULayer(nn.Module):
    """The LRU as the lab trains it: a position-wise encoder v_t = GELU(W_e u_t + b_e) of
    width H, then :class:`LRULayer` (H → H) on v.

    Why an encoder. One LRU layer's state is linear in its input (module docstring): the
    adding task's marker × value product cannot form in it. In the paper the recurrence
    of every block but the first reads the previous block's nonlinear (GELU, GLU) output;
    this one nonlinear position-wise layer stands in for the blocks below, so that one
    recurrent layer, like every other architecture here, can form the product before its
    memory. It adds no path through time: the Jacobians, gains and probes are the
    LRULayer's, whose states it records (``self.lru``). Measured (hidden 32, batch 64,
    Adam 0.003, clip 1, seed 0, through core.train.Trainer): adding at T = 50 solved (MSE < 0.01) at step 1100; at T = 100, MSE 0.013
    after 1500 steps, where the layer without the encoder stays at the baseline.
    """

    gate_names: tuple[str, ...] = ()
    uses_fused = False

    def __init__(self, input_size: int, hidden_size: int, **lru_options):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.encoder = nn.Linear(input_size, hidden_size)
        self.lru = LRULayer(hidden_size, hidden_size, **lru_options)

    def _encode(self, u: Tensor) -> Tensor:
        if u.dim() != 3 or u.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (batch, steps, {self.input_size}), got {tuple(u.shape)}"
            )
        return nn.functional.gelu(self.encoder(u))  # v_t = GELU(W_e u_t + b_e)

    def forward(self, u: Tensor) -> Tensor:
        return self.lru(self._encode(u))

    def unroll(self, u: Tensor, record: bool = False) -> Unrolled:
        return self.lru.unroll(self._encode(u), record=record)

    def sequential(self, u: Tensor) -> Tensor:
        """The same layer with the recurrence stepped through time (:func:`loop`)."""
        v = self._encode(u)
        x = loop(self.lru.eigenvalues(), self.lru._inputs(v))
        return self.lru._readout(torch.cat([x.real, x.imag], -1), v)


def scan(lam: Tensor, b: Tensor) -> Tensor:
    """x_t = λ ⊙ x_{t−1} + b_t, x_{−1} = 0, for every t: b (batch, steps, N) complex, λ (N,).

    The odd–even (work-efficient) parallel scan: pair steps (2k, 2k+1); the odd ones obey a
    recurrence of half the length, x_{2k+1} = λ² x_{2k−1} + (λ b_{2k} + b_{2k+1}), solved by
    the same function; then each even step is one update from the odd step before it,
    x_{2k} = λ x_{2k−1} + b_{2k}. ⌈log₂ T⌉ levels, about 2T multiply-adds in all (the
    Hillis–Steele scan does T per level); every power of λ has modulus ≤ 1.
    """
    B, T, N = b.shape
    if T == 1:
        return b  # x_0 = b_0
    odd = T % 2
    if odd:  # one zero step at the end, dropped below
        b = torch.cat([b, b.new_zeros(B, 1, N)], 1)
    e, o = b[:, 0::2], b[:, 1::2]  # b_{2k}, b_{2k+1}
    x_odd = scan(lam * lam, lam * e + o)  # x_{2k+1} = λ² x_{2k−1} + (λ b_{2k} + b_{2k+1})
    prev = torch.cat([b.new_zeros(B, 1, N), x_odd[:, :-1]], 1)  # x_{2k−1}, x_{−1} = 0
    x_even = lam * prev + e  # x_{2k} = λ x_{2k−1} + b_{2k}
    x = torch.stack([x_even, x_odd], 2).reshape(B, -1, N)  # interleave 0, 1, 2, …
    return x[:, :T] if odd else x


def loop(lam: Tensor, b: Tensor) -> Tensor:
    """The same recurrence one step at a time (the benchmark's baseline)."""
    x, xs = torch.zeros_like(b[:, 0]), []
    for t in range(b.shape[1]):
        x = lam * x + b[:, t]  # x_t = λ ⊙ x_{t−1} + b_t
        xs.append(x)
    return torch.stack(xs, 1)


def _bench() -> None:
    """Forward + backward of the recurrence by :func:`scan` and :func:`loop` (ms, best of 9)."""
    import time

    torch.set_num_threads(1)
    torch.manual_seed(0)
    for T in (50, 100, 300):
        for N in (32, 64):
            layer = LRULayer(4, N)
            u = torch.randn(64, T, 4)
            best = {"scan": math.inf, "loop": math.inf}
            for _ in range(9):
                for name, form in (("scan", scan), ("loop", loop)):
                    t0 = time.perf_counter()
                    x = form(layer.eigenvalues(), layer._inputs(u))
                    (x.real.square().sum() + x.imag.sum()).backward()
                    best[name] = min(best[name], 1000 * (time.perf_counter() - t0))
            print(f"T={T:4d} N={N:3d}  scan {best['scan']:6.1f} ms  loop {best['loop']:6.1f} ms")


if __name__ == "__main__":
    _bench()

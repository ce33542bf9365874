"""Recurrent layers with torch.nn's exact parameters, unrollable step by step.

Each layer *is* a single-layer ``torch.nn.RNN`` / ``torch.nn.LSTM`` / ``torch.nn.GRU``
(a subclass), so its ``state_dict`` is interchangeable with torch's
(``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``; gate rows in
torch's order i, f, g, o for the LSTM and r, z, n for the GRU).

Two ways to run the same weights:

* ``forward(x)`` — the fused cuDNN/oneDNN-style kernel of torch.nn when the
  configuration is a standard one (the fast path used for training), or the
  explicit unroll when a variant (no forget gate, CIFG) needs it.
* ``unroll(x, record=True)`` — the equations written out one time step at a
  time. Every quantity the gradient probe measures (h_t, c_t and the gate
  pre-activations) is a tensor of its own in the autograd graph, and every later
  use of it goes through that tensor, so ``∂ℓ/∂q_t`` from autograd is the *total*
  derivative: the gradient reaching q_t through every later step.

Notation follows torch's documentation: x_t input, h_t hidden state, c_t cell
state, σ the logistic sigmoid, ⊙ the element-wise product.

Gate initialisation (``gate_init``, LSTM and GRU): ``"default"`` keeps torch's
uniform ±1/√H biases; ``"chrono"`` is the chrono initialisation of Tallec &
Ollivier 2018 ("Can recurrent neural networks warp time?", ICLR), see
:func:`chrono_bias` for the formula and each layer's docstring for what it sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

Tensor = torch.Tensor


@dataclass
class Unrolled:
    """What an explicit unroll returns.

    ``h`` is the (batch, steps, hidden) output. ``states`` and ``gates`` map a
    quantity name to a list with one (batch, width) tensor per time step; these
    are the graph nodes the probe differentiates against. ``activations`` maps a
    gate name to a (steps,) tensor of its mean activation over batch and units.
    """

    h: Tensor
    states: dict[str, list[Tensor] | Scanned] = field(default_factory=dict)
    gates: dict[str, list[Tensor] | Tensor] = field(default_factory=dict)
    activations: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Scanned:
    """A state computed for all steps at once by a scan (minGRU, minLSTM, LRU's parallel form).

    ``values`` is (batch, steps, width): q_t itself. ``totals`` is the (batch, steps, width)
    graph node whose gradient *is* the total derivative ∂ℓ/∂q_t. For a linear recurrence
    q_t = a_t ⊙ q_{t−1} + b_t that node is b: b_t enters q_t with coefficient 1 and reaches
    the loss only through q_t, so ∂ℓ/∂b_t = ∂ℓ/∂q_t along every later path, without a
    per-step graph node (which would cost the scan its parallelism).
    """

    values: Tensor
    totals: Tensor


def per_step(recorded: list[Tensor] | Scanned | Tensor) -> Tensor:
    """A recorded state or gate as one (steps, batch, width) tensor of its values."""
    if isinstance(recorded, Scanned):
        return recorded.values.transpose(0, 1)
    if isinstance(recorded, Tensor):
        return recorded.transpose(0, 1)
    return torch.stack(recorded)


def graph_nodes(recorded: list[Tensor] | Scanned | Tensor) -> list[Tensor]:
    """The tensors to differentiate for a recorded state or gate's total derivatives."""
    if isinstance(recorded, Scanned):
        return [recorded.totals]
    if isinstance(recorded, Tensor):
        return [recorded]
    return list(recorded)


def stack_gradients(recorded, grads: list[Tensor | None]) -> Tensor:
    """The gradients of :func:`graph_nodes` as one (steps, batch, width) tensor (None → 0)."""
    nodes = graph_nodes(recorded)
    gs = [g if g is not None else torch.zeros_like(v) for g, v in zip(grads, nodes)]
    if isinstance(recorded, (Scanned, Tensor)):
        return gs[0].transpose(0, 1)
    return torch.stack(gs)


def _input_projection(layer: nn.RNNBase, x: Tensor) -> Tensor:
    """W_ih x_t + b_ih for every step at once: one matmul instead of T."""
    return torch.nn.functional.linear(x, layer.weight_ih_l0, layer.bias_ih_l0)


GATE_INITS = ("default", "chrono")


def chrono_bias(hidden_size: int, t_max: int) -> Tensor:
    """Chrono's carry-gate bias: b = log u per unit, u ~ U(1, T_max − 1), as a
    (hidden_size,) float64 tensor with values in [log 1, log(T_max − 1)] = [0, log(T_max − 1)].

    Why this law (Tallec & Ollivier 2018, section 3). A gated cell at init, with its
    input gate tied to its carry gate, i = 1 − f, is a leaky integrator

    .. math::
        c_t = f ⊙ c_{t−1} + (1 − f) ⊙ g_t,

    which forgets with a characteristic time τ = 1 / (1 − f) steps. With b = log u
    and f = σ(b):

    .. math::
        f = σ(\\log u) = u / (1 + u), \\quad 1 − f = 1 / (1 + u) = σ(−\\log u),
        \\quad τ = 1 + u ∈ [2, T_max],

    so u ~ U(1, T_max − 1) spreads the units' memory times uniformly over the range of
    lags the task may need, up to T_max (the recurrent weights' own contribution to the
    pre-activation is small at init, ±1/√H per weight). 1 − σ(b) = σ(−b) is why the
    input bias is −b: that makes i = 1 − f at init.

    The draw has a generator of its own, seeded from torch's global RNG *without
    advancing it*: it is fixed by the seed the model is built under
    (:func:`core.train.make_model` seeds from ``TrainConfig.seed``), and every other
    weight comes out the same as at default init with that seed, so a default and a
    chrono model of one seed differ in these biases only.
    """
    if t_max < 2:
        raise ValueError(f"chrono_tmax must be at least 2, got {t_max}")
    with torch.random.fork_rng(devices=[]):
        seed = int(torch.randint(0, 2**62, (1,)).item())
    u = torch.empty(hidden_size, dtype=torch.float64).uniform_(
        1.0, float(t_max) - 1.0, generator=torch.Generator().manual_seed(seed))
    return u.log()


def _check_gate_init(gate_init: str, chrono_tmax: int | None) -> None:
    if gate_init not in GATE_INITS:
        raise ValueError(f"gate_init must be one of {', '.join(GATE_INITS)}, got {gate_init!r}")
    if gate_init == "chrono" and chrono_tmax is None:
        raise ValueError("gate_init='chrono' needs chrono_tmax (the longest lag, e.g. the task's T)")
    if gate_init != "chrono" and chrono_tmax is not None:
        raise ValueError("chrono_tmax applies to gate_init='chrono' only")


@torch.no_grad()
def _set_bias(layer: nn.RNNBase, rows: slice, value: Tensor) -> None:
    """Make b_ih + b_hh = value on ``rows``: the value goes in b_ih, b_hh is zeroed there
    (torch adds the two bias vectors, so only their sum acts; as ``forget_bias`` does)."""
    layer.bias_ih_l0[rows] = value.to(layer.bias_ih_l0.dtype)
    layer.bias_hh_l0[rows] = 0.0


def _check_input(layer: nn.RNNBase, x: Tensor) -> None:
    if x.dim() != 3 or x.shape[-1] != layer.input_size:
        raise ValueError(
            f"expected input of shape (batch, steps, {layer.input_size}), got {tuple(x.shape)}"
        )


class RNNLayer(nn.RNN):
    """Elman RNN: h_t = φ(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), φ = tanh or relu.

    Options:
      init: "default" (torch's uniform ±1/√H), "orthogonal" (W_hh orthogonal), or
        "identity" (W_hh = I, b = 0: the IRNN of Le et al. 2015, meant for relu).
      spectral_radius: if given, W_hh is rescaled after init so that its largest
        |eigenvalue| equals this value: < 1 makes the Jacobian product shrink
        (vanishing), > 1 lets it grow (exploding).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        init: str = "default",
        spectral_radius: float | None = None,
    ):
        super().__init__(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True)
        self.init = init
        self.spectral_radius = spectral_radius
        self._initialise()

    @torch.no_grad()
    def _initialise(self) -> None:
        w = self.weight_hh_l0
        if self.init == "orthogonal":
            nn.init.orthogonal_(w)
        elif self.init == "identity":
            w.copy_(torch.eye(self.hidden_size, dtype=w.dtype))
            self.bias_ih_l0.zero_()
            self.bias_hh_l0.zero_()
        elif self.init != "default":
            raise ValueError(f"init must be default, orthogonal or identity, got {self.init!r}")
        if self.spectral_radius is not None:
            radius = torch.linalg.eigvals(w.double()).abs().max().item()
            if radius > 0:
                w.mul_(self.spectral_radius / radius)

    @property
    def uses_fused(self) -> bool:
        return True

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        _check_input(self, x)
        return super().forward(x)[0]

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        _check_input(self, x)
        phi = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        gx = _input_projection(self, x)
        h = x.new_zeros(x.shape[0], self.hidden_size)
        hs = []
        for t in range(x.shape[1]):
            # h_t = φ(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)
            h = phi(gx[:, t] + nn.functional.linear(h, self.weight_hh_l0, self.bias_hh_l0))
            hs.append(h)
        return Unrolled(h=torch.stack(hs, 1), states={"h": hs} if record else {})


class LSTMLayer(nn.LSTM):
    """LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    .. math::
        i_t &= σ(W_{ii} x_t + b_{ii} + W_{hi} h_{t−1} + b_{hi}) \\
        f_t &= σ(W_{if} x_t + b_{if} + W_{hf} h_{t−1} + b_{hf}) \\
        g_t &= \\tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t−1} + b_{hg}) \\
        o_t &= σ(W_{io} x_t + b_{io} + W_{ho} h_{t−1} + b_{ho}) \\
        c_t &= f_t ⊙ c_{t−1} + i_t ⊙ g_t \\
        h_t &= o_t ⊙ \\tanh(c_t)

    The cell path c_{t−1} → c_t is *additive*: its direct Jacobian is diag(f_t), a
    gain the network learns. At torch's default init f_t ≈ σ(0) = 0.5, so that gain
    halves the gradient every step until training opens the gate.

    Options:
      forget_bias: if given, the forget-gate bias is initialised so that
        b_if + b_hf = forget_bias (Jozefowicz et al. 2015 recommend 1.0). The
        input gate keeps torch's default bias.
      no_forget_gate: f_t ≡ 1, the 1997 constant error carousel (c_t = c_{t−1} + i_t ⊙ g_t).
      coupled_gates: CIFG (Greff et al. 2017), i_t = 1 − f_t.
      gate_init: "default" (torch's biases) or "chrono" (Tallec & Ollivier 2018), with
        chrono_tmax = T_max. Chrono draws u ~ U(1, T_max − 1) per unit (:func:`chrono_bias`)
        and sets, as sums b_ih + b_hh (the value in b_ih, b_hh zeroed on those rows):

        * standard LSTM: b_f = log u and b_i = −log u, so f = u/(1+u) and i = 1/(1+u) = 1 − f:
          each unit starts as a leaky integrator with memory time 1 + u ∈ [2, T_max],
          and each step's input enters with weight i ≤ 1/2.
        * no forget gate (f ≡ 1): only the input-gate part applies, b_i = −log u, so
          i ∈ [1/T_max, 1/2]: the cell still never forgets, but it takes in each step's
          g at most half (units with large u only 1/T_max), as the 1997 LSTM's negative
          input-gate biases did. The unused forget row keeps torch's default.
        * CIFG (i = 1 − f): only b_f = log u; the tie gives i = σ(−log u) = 1/(1+u),
          chrono's input gate exactly. The unused input row keeps torch's default.

        forget_bias and chrono both set b_f: giving both is an error.
    The forget/input gate rows stay in the parameters (so the layout matches
    torch.nn.LSTM) but are unused when a variant removes that gate.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        forget_bias: float | None = None,
        no_forget_gate: bool = False,
        coupled_gates: bool = False,
        gate_init: str = "default",
        chrono_tmax: int | None = None,
    ):
        super().__init__(input_size, hidden_size, batch_first=True)
        if no_forget_gate and coupled_gates:
            raise ValueError("no_forget_gate and coupled_gates cannot both be set")
        _check_gate_init(gate_init, chrono_tmax)
        if gate_init == "chrono" and forget_bias is not None:
            raise ValueError("forget_bias cannot be combined with gate_init='chrono', which "
                             "draws the forget bias itself; give one or the other")
        self.forget_bias = forget_bias
        self.no_forget_gate = no_forget_gate
        self.coupled_gates = coupled_gates
        self.gate_init = gate_init
        self.chrono_tmax = chrono_tmax
        H = hidden_size
        if forget_bias is not None:
            with torch.no_grad():
                self.bias_ih_l0[H : 2 * H].fill_(forget_bias)
                self.bias_hh_l0[H : 2 * H].zero_()
        if gate_init == "chrono":
            log_u = chrono_bias(H, chrono_tmax)
            if not no_forget_gate:
                _set_bias(self, slice(H, 2 * H), log_u)  # b_f = log u:  f = u / (1 + u)
            if not coupled_gates:
                _set_bias(self, slice(0, H), -log_u)  # b_i = −log u:  i = 1 / (1 + u) = 1 − f

    @property
    def uses_fused(self) -> bool:
        return not (self.no_forget_gate or self.coupled_gates)

    @property
    def gate_names(self) -> tuple[str, ...]:
        if self.no_forget_gate:
            return ("i", "g", "o")
        if self.coupled_gates:
            return ("f", "g", "o")
        return ("i", "f", "g", "o")

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        _check_input(self, x)
        if self.uses_fused:
            return super().forward(x)[0]
        return self.unroll(x).h

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        _check_input(self, x)
        B, T, H = x.shape[0], x.shape[1], self.hidden_size
        gx = _input_projection(self, x)
        h = x.new_zeros(B, H)
        c = x.new_zeros(B, H)
        hs, cs, pres = [], [], []
        act_sums: dict[str, list[Tensor]] = {"i": [], "f": [], "o": [], "f_max": []}
        for t in range(T):
            # All four pre-activations in one matmul; one graph node per step so
            # the probe can ask for ∂ℓ/∂(pre-activation) and split it by gate.
            pre = gx[:, t] + nn.functional.linear(h, self.weight_hh_l0, self.bias_hh_l0)
            pi, pf, pg, po = pre.chunk(4, 1)
            f = torch.sigmoid(pf)  # forget gate f_t
            g = torch.tanh(pg)  # candidate g_t
            o = torch.sigmoid(po)  # output gate o_t
            if self.no_forget_gate:
                i = torch.sigmoid(pi)
                c = c + i * g  # c_t = c_{t−1} + i_t ⊙ g_t   (f ≡ 1)
                f = torch.ones_like(f)
            elif self.coupled_gates:
                i = 1.0 - f  # CIFG: i_t = 1 − f_t
                c = f * c + i * g
            else:
                i = torch.sigmoid(pi)
                c = f * c + i * g  # c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t
            h = o * torch.tanh(c)  # h_t = o_t ⊙ tanh(c_t)
            hs.append(h)
            if record:
                cs.append(c)
                pres.append(pre)
                for name, v in (("i", i), ("f", f), ("o", o)):
                    act_sums[name].append(v.detach().mean())
                # The most open unit's f (batch mean): a mean over units hides the few
                # units that learn to keep their cell, which is what carries the gradient.
                act_sums["f_max"].append(f.detach().mean(0).max())
        out = Unrolled(h=torch.stack(hs, 1))
        if record:
            out.states = {"h": hs, "c": cs}
            out.gates = {"ifgo": pres}
            out.activations = {k: torch.stack(v) for k, v in act_sums.items()}
        return out


class GRULayer(nn.GRU):
    """GRU (Cho et al. 2014) in torch's convention.

    .. math::
        r_t &= σ(W_{ir} x_t + b_{ir} + W_{hr} h_{t−1} + b_{hr}) \\
        z_t &= σ(W_{iz} x_t + b_{iz} + W_{hz} h_{t−1} + b_{hz}) \\
        n_t &= \\tanh(W_{in} x_t + b_{in} + r_t ⊙ (W_{hn} h_{t−1} + b_{hn})) \\
        h_t &= (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}

    ∂h_t/∂h_{t−1} contains the additive term diag(z_t): with z_t → 1 the state
    (and its gradient) is carried across steps unchanged.

    Chrono (``gate_init="chrono"``, T_max = ``chrono_tmax``), derived for this
    convention. Leave out the recurrent weights' small contribution at init; then

    .. math::
        h_t = z ⊙ h_{t−1} + (1 − z) ⊙ n_t

    is the LSTM's leaky integrator c_t = f ⊙ c_{t−1} + i ⊙ g_t with z in the place of
    the forget (carry) gate f, n_t in the place of g_t, and 1 − z in the place of the
    input gate i, already tied as chrono wants it (i = 1 − f). So the whole of chrono
    is one bias: b_z = log u, u ~ U(1, T_max − 1) per unit (:func:`chrono_bias`), which
    gives z = u/(1+u), a memory time 1/(1 − z) = 1 + u ∈ [2, T_max], and an input
    weight 1 − z = σ(−log u) = 1/(1+u): the −b_f of the LSTM's input gate comes free.
    There is no separate input gate to set; b_r and b_n keep torch's defaults. (In
    Cho et al.'s own convention, h = (1 − z) h_{t−1} + z ñ, the sign flips: b_z = −log u.)
    The value is the sum b_iz + b_hz: it goes in b_ih's z rows (rows H..2H−1, torch's
    order r, z, n) and b_hh's z rows are zeroed.
    """

    def __init__(self, input_size: int, hidden_size: int, gate_init: str = "default",
                 chrono_tmax: int | None = None):
        super().__init__(input_size, hidden_size, batch_first=True)
        _check_gate_init(gate_init, chrono_tmax)
        self.gate_init = gate_init
        self.chrono_tmax = chrono_tmax
        if gate_init == "chrono":
            H = hidden_size
            _set_bias(self, slice(H, 2 * H), chrono_bias(H, chrono_tmax))  # b_z = log u

    @property
    def uses_fused(self) -> bool:
        return True

    gate_names = ("r", "z", "n")

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        _check_input(self, x)
        return super().forward(x)[0]

    def unroll(self, x: Tensor, record: bool = False) -> Unrolled:
        _check_input(self, x)
        B, T, H = x.shape[0], x.shape[1], self.hidden_size
        gx = _input_projection(self, x)
        w_hrz, w_hn = self.weight_hh_l0[: 2 * H], self.weight_hh_l0[2 * H :]
        b_hrz, b_hn = self.bias_hh_l0[: 2 * H], self.bias_hh_l0[2 * H :]
        h = x.new_zeros(B, H)
        hs, rz_pres, n_pres = [], [], []
        act_sums: dict[str, list[Tensor]] = {"r": [], "z": [], "z_max": []}
        for t in range(T):
            # r and z pre-activations together; n's separately because it needs r_t.
            rz_pre = gx[:, t, : 2 * H] + nn.functional.linear(h, w_hrz, b_hrz)
            r, z = torch.sigmoid(rz_pre).chunk(2, 1)
            # n's pre-activation includes r_t ⊙ (W_hn h_{t−1} + b_hn), per torch.
            n_pre = gx[:, t, 2 * H :] + r * nn.functional.linear(h, w_hn, b_hn)
            n = torch.tanh(n_pre)
            h = (1.0 - z) * n + z * h  # h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}
            hs.append(h)
            if record:
                rz_pres.append(rz_pre)
                n_pres.append(n_pre)
                act_sums["r"].append(r.detach().mean())
                act_sums["z"].append(z.detach().mean())
                act_sums["z_max"].append(z.detach().mean(0).max())  # most carrying unit
        out = Unrolled(h=torch.stack(hs, 1))
        if record:
            out.states = {"h": hs}
            out.gates = {"rz": rz_pres, "n": n_pres}
            out.activations = {k: torch.stack(v) for k, v in act_sums.items()}
        return out


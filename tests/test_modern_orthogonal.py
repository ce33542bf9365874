"""Orthogonal RNN (core/modern/orthogonal.py) against the equations and against torch.nn.RNN.

h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), W_hh = B exp(A) orthogonal (expRNN).

Every comparison is in float64 (unit roundoff u₆₄ = 2⁻⁵³ ≈ 1.1e-16); the tolerances say
where they come from: the number of roundings on the way × the size of what is summed.
With W_hh orthogonal and |tanh′| ≤ 1, an error made at one step reaches later steps at
most unamplified, which keeps the bounds linear in T.
"""

from __future__ import annotations

import math
import tempfile
from contextlib import contextmanager

import pytest
import torch

from core.cells import Scanned, graph_nodes, stack_gradients
from core.modern.orthogonal import OrthogonalRNNLayer, _Recurrence, henaff_orthogonal

D = torch.float64
U64 = 2.0**-53  # float64 unit roundoff
B, T, N_IN, H = 3, 12, 3, 6


@contextmanager
def _float64_default():
    """Build in float64: the init's rotations (cos θ, sin θ) and hence the trivialisation's
    base B are then orthogonal to float64 rounding (built in float32 and converted, B would
    be orthogonal to float32 rounding only, ~6e-8)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(D)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _layer(seed: int = 0, i: int = N_IN, h: int = H) -> OrthogonalRNNLayer:
    torch.manual_seed(seed)
    with _float64_default():
        layer = OrthogonalRNNLayer(i, h)
    with torch.no_grad():  # inputs and biases of order 1, so that tanh is well in its curve
        layer.weight_ih.normal_(0.0, 0.7)
        layer.bias_ih.normal_(0.0, 0.3)
        layer.bias_hh.normal_(0.0, 0.3)
    return layer


def _x(seed: int = 1, b: int = B, t: int = T, i: int = N_IN) -> torch.Tensor:
    return torch.randn(b, t, i, dtype=D, generator=torch.Generator().manual_seed(seed))


def _params(layer: OrthogonalRNNLayer):
    """W_ih, W_hh (materialised), b_ih, b_hh read from the layer, as fresh leaves."""
    return tuple(p.detach().clone().requires_grad_() for p in
                 (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh))


def tanh_rnn(x, w_ih, w_hh, b_ih, b_hh, inject=None):
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), one step at a time.
    ``inject = (t, b, k, e)`` adds e to h_t[b, k] before step t + 1 and the output see it."""
    h = torch.zeros(x.shape[0], w_hh.shape[0], dtype=x.dtype)
    hs = []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        if inject is not None and inject[0] == t:
            e = torch.zeros_like(h)
            e[inject[1], inject[2]] = inject[3]
            h = h + e
        hs.append(h)
    return torch.stack(hs, 1)


def _readout(h_dim: int = H, out: int = 2) -> torch.Tensor:
    return torch.randn(h_dim, out, dtype=D, generator=torch.Generator().manual_seed(7))


def _loss(h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """ℓ = Σ_{b,t} ‖h_{b,t} R‖²: a sum of squares over a fixed readout."""
    return ((h @ r) ** 2).sum()


def _recorded_h_gradients(rec, loss: torch.Tensor) -> torch.Tensor:
    """∂ℓ/∂h_t for every t as the probe takes it (through the recorded graph nodes), (T, B, H)."""
    nodes = graph_nodes(rec.states["h"])
    return stack_gradients(rec.states["h"], list(torch.autograd.grad(loss, nodes)))


def _forward_error_bound(layer, x) -> float:
    """|h_ours − h_ref| for the same equations summed in another order: each pre-activation
    has N_IN + H + 2 terms, each rounding ≤ u₆₄ of the running |sum| (≤ max|W_ih x| + H·1 +
    2 max|b|); |tanh′| ≤ 1 and ‖W_hh‖ = 1 pass an earlier step's error on unamplified, so
    over T steps |error| ≤ T(N_IN + H + 2)u₆₄ × that scale."""
    scale = (x.abs().max() * layer.weight_ih.abs().sum(1).max()).item() + H + 2 * max(
        layer.bias_ih.abs().max().item(), layer.bias_hh.abs().max().item())
    return T * (N_IN + H + 2) * U64 * scale


def _trained(layer, x, steps=30, lr=0.5):
    """Adam at a large learning rate: W_hh moves far from its init."""
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    r = _readout(layer.hidden_size)
    for _ in range(steps):
        opt.zero_grad()
        (-_loss(layer(x), r)).backward()
        opt.step()
    return layer


# --- 1. forward ---------------------------------------------------------------------------------


def test_forward_equals_torch_nn_rnn_with_the_same_weights():
    layer, x = _trained(_layer(), _x()), _x(seed=2)
    ref = torch.nn.RNN(N_IN, H, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(layer.weight_ih)
        ref.weight_hh_l0.copy_(layer.weight_hh)  # B exp(A), materialised
        ref.bias_ih_l0.copy_(layer.bias_ih)
        ref.bias_hh_l0.copy_(layer.bias_hh)
        want = ref(x)[0]
        got = layer(x)
    # torch.nn.RNN sums in its own order: within the bound (×10 for the bound's looseness
    # in the constant, never for the CPU).
    torch.testing.assert_close(got, want, rtol=0, atol=10 * _forward_error_bound(layer, x))


def test_forward_equals_the_equations_stepped_and_unroll_h():
    layer, x = _layer(), _x()
    with torch.no_grad():
        want = tanh_rnn(x, *_params(layer))
        got = layer(x)
    torch.testing.assert_close(got, want, rtol=0, atol=10 * _forward_error_bound(layer, x))
    assert torch.equal(layer(x), layer.unroll(x).h)  # the same operations in the same order
    assert torch.equal(layer(x), layer.unroll(x, record=True).h)
    f32 = layer.float()
    assert f32(x.float()).dtype == torch.float32
    assert f32.unroll(x.float(), record=True).h.dtype == torch.float32


def test_w_hh_is_computed_once_per_forward_not_per_step(monkeypatch):
    layer, x = _layer(), _x()
    calls = []
    real = torch.matrix_exp
    monkeypatch.setattr(torch, "matrix_exp", lambda a: calls.append(1) or real(a))
    layer(x)
    assert len(calls) == 1
    layer.unroll(x, record=True)
    assert len(calls) == 2


# --- 2. total derivatives against finite differences inside the loop ----------------------------

_POINTS = [(0, 0, 0), (3, 1, 2), (6, 2, 5), (9, 0, 1), (11, 1, 3)]  # (t, b, k)


def test_recorded_h_gradients_equal_finite_differences_injected_in_the_loop():
    layer, x = _layer(), _x()
    r = _readout()
    rec = layer.unroll(x, record=True)
    assert set(rec.states) == {"h"} and rec.gates == {} and layer.gate_names == ()
    assert isinstance(rec.states["h"], Scanned)  # through the probe input z of the Function
    grads = _recorded_h_gradients(rec, _loss(rec.h, r))
    params = tuple(p.detach() for p in _params(layer))
    eps = 1e-4

    def central(e):
        return (_loss(tanh_rnn(x, *params, inject=(t, bb, k, e)), r)
                - _loss(tanh_rnn(x, *params, inject=(t, bb, k, -e)), r)) / (2 * e)

    for t, bb, k in _POINTS:
        # Richardson: (4 D(ε) − D(2ε)) / 3 cancels the ε² term of the central difference,
        # leaving O(ε⁴) ≈ 1e-16 × ℓ's 5th derivative (tanh's derivatives are O(1), ‖W_hh‖ = 1).
        # Rounding: each ℓ is a sum of positive terms computed to ≲ 10T(N_IN + H)u₆₄ ℓ,
        # and the combination divides it by ε with weight ≤ 3.
        fd = (4 * central(eps) - central(2 * eps)) / 3
        ell = _loss(rec.h, r).item()
        tol = 3 * 10 * T * (N_IN + H) * U64 * ell / eps
        assert abs(grads[t][bb, k].item() - fd.item()) <= tol, (t, bb, k)


def test_core_probe_reports_the_norms_of_the_recorded_h_gradients():
    from core.models import build_model
    from core.probe import probe
    from core.tasks import make_task

    task = make_task("adding", T)
    torch.manual_seed(0)
    with _float64_default():
        model = build_model("orthogonal", task.input_size, H, task.output_size)
    x, y = task.sample(B, torch.Generator().manual_seed(0))
    x = x.double()
    res = probe(model, task, x, y)
    out, rec = model.unroll(x, record=True)
    want = _recorded_h_gradients(rec, task.loss(out, y).sum()).norm(dim=2).mean(1)
    got = torch.tensor(res.profile.query("quantity == 'h'").sort_values("t")["grad_norm"].values)
    # The same graph differentiated twice: equal up to the order of a few sums (H terms).
    torch.testing.assert_close(got, want, rtol=10 * H * U64, atol=0)
    assert set(res.activations["gate"]) == {"gain", "gain_max"}


def _plain_autograd_h_gradients(x, w_ih, w_hh, b_ih, b_hh, r):
    """The old probe: the stepped equations with every h_t a graph node of its own, every
    later use of h_t going through it, and autograd's ∂ℓ/∂h_t (total) for each. Also G_t,
    the direct ∂ℓ/∂h_t (ℓ's own dependence on h_t, no later step)."""
    h = torch.zeros(x.shape[0], w_hh.shape[0], dtype=x.dtype)
    hs = []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        hs.append(h)
    total = torch.stack(torch.autograd.grad(_loss(torch.stack(hs, 1), r), hs))
    h_leaf = torch.stack(hs, 1).detach().requires_grad_()
    (direct,) = torch.autograd.grad(_loss(h_leaf, r), h_leaf)
    return total, direct.transpose(0, 1)


def test_recorded_totals_equal_plain_autograd_through_a_per_step_loop():
    layer, x = _trained(_layer(), _x(), steps=10, lr=0.05), _x(seed=2)  # W_hh not block-diagonal
    r = _readout()
    rec = layer.unroll(x, record=True)
    got = _recorded_h_gradients(rec, _loss(rec.h, r))
    want, direct = _plain_autograd_h_gradients(x, *_params(layer), r)
    # Both run δ_{t−1} = G_{t−1} + W_hhᵀ (tanh′ ⊙ δ_t) in their own order: per step an
    # H-term product and an add, ≤ (H + 2) u₆₄ × a term ≤ √H (max|G| + max|δ|) (‖W_hh‖_∞ ≤
    # √H), carried back unamplified (|tanh′| ≤ 1, ‖W_hh‖₂ = 1); h itself differs by the
    # forward bound, which moves tanh′ and G by ≤ 2|Δh| relative: ×10 margin.
    scale = direct.abs().max().item() + want.abs().max().item()
    tol = 10 * (2 * T * (H + 2) * H**0.5 * U64 + 2 * _forward_error_bound(layer, x)) * scale
    torch.testing.assert_close(got, want, rtol=0, atol=tol)
    assert (want != direct).any()  # later steps do contribute: the totals are not G


def test_the_probe_input_leaves_forward_bit_identical_and_the_training_path_without_it():
    layer, x = _layer(), _x()
    with torch.no_grad():
        w = layer.weight_hh
        g = layer._input_projection(x).contiguous()
        plain = _Recurrence.apply(g, w)
        probed = _Recurrence.apply(g, w, torch.zeros_like(g))
    assert torch.equal(plain, probed)  # tanh(a_t) + 0.0 is tanh(a_t), bit for bit
    assert torch.equal(layer(x), layer.unroll(x, record=True).h)
    # The training path asks no δ_t of the backward: its graph has no z (2 inputs).
    assert len(layer(x).grad_fn.next_functions[0][0].next_functions) == 2


def test_the_functions_backward_gives_delta_for_any_probe_input():
    """gradcheck of the Function with a nonzero z and a general W: ∂ℓ/∂z_t = δ_t holds for
    every z, and the backward's tanh′ is that of a_t, not 1 − h_t² (h_t = tanh(a_t) + z_t)."""
    gen = torch.Generator().manual_seed(11)
    g = torch.randn(5, 2, 3, dtype=D, generator=gen).requires_grad_()
    w = (0.7 * torch.randn(3, 3, dtype=D, generator=gen)).requires_grad_()
    z = (0.5 * torch.randn(5, 2, 3, dtype=D, generator=gen)).requires_grad_()
    assert torch.autograd.gradcheck(_Recurrence.apply, (g, w, z))
    # and its values: h_t = tanh(g_t + W h_{t−1}) + z_t, stepped here. Per step ≤ (3 + 2)
    # roundings of terms ≤ max|g| + ‖W‖₂ max‖h‖ + max|z| (≤ 5 terms), an earlier step's
    # error carried on times ‖W‖₂ (|tanh′| ≤ 1): ≤ 5T u₆₄ × that × max(1, ‖W‖₂)^T; ×10.
    h, hs = torch.zeros(2, 3, dtype=D), []
    with torch.no_grad():
        for t in range(5):
            h = torch.tanh(g[t] + h @ w.T) + z[t]
            hs.append(h)
        got = _Recurrence.apply(g, w, z)
    want = torch.stack(hs)
    norm_w = torch.linalg.matrix_norm(w.detach(), ord=2).item()
    scale = g.abs().max().item() + norm_w * want.abs().max().item() * 3**0.5 + z.abs().max().item()
    tol = 10 * 5 * 5 * U64 * scale * max(1.0, norm_w) ** 5
    torch.testing.assert_close(got, want, rtol=0, atol=tol)


# --- 3. parameter gradients -----------------------------------------------------------------------


def test_training_paths_parameter_gradients_equal_the_stepped_equations():
    """Through the parametrisation: ∂ℓ/∂X (the trained tensor) from the layer against the
    chain rule applied by hand, ∂ℓ/∂W_hh from the stepped loop pushed through W = B exp(A)."""
    layer, x = _layer(), _x()
    r = _readout()
    w_ih, w_hh, b_ih, b_hh = _params(layer)
    want = torch.autograd.grad(_loss(tanh_rnn(x, w_ih, w_hh, b_ih, b_hh), r),
                               (w_ih, w_hh, b_ih, b_hh))
    orig = layer.parametrizations.weight_hh.original
    got = torch.autograd.grad(_loss(layer(x), r),
                              (layer.weight_ih, orig, layer.bias_ih, layer.bias_hh))
    # Each gradient sums B·T backpropagated terms, each a product of ≤ T factors of norm ≤ 1
    # (tanh′, W_hh) computed to ≲ T(N_IN + H + 2)u₆₄ relative: ≲ 1e-12 × the scale.
    for g, w in zip((got[0], got[2], got[3]), (want[0], want[2], want[3])):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-10 * (w.abs().max().item() + 1.0))
    # W = base exp(A(X)): push ∂ℓ/∂W through it with torch's own map, independently of
    # the layer's graph (a vector-Jacobian product of the materialising function).
    base = layer.parametrizations.weight_hh[0].base

    def materialise(X):
        A = X.tril() - X.tril().T
        return base @ torch.matrix_exp(A)

    _, vjp = torch.func.vjp(materialise, orig.detach())
    (want_x,) = vjp(want[1])
    torch.testing.assert_close(got[1], want_x, rtol=0, atol=1e-10 * (want_x.abs().max().item() + 1))


class _Unroll(torch.nn.Module):
    """unroll(x, record=True).h as a module's forward, for torch.func.functional_call."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner.unroll(x, record=True).h


@pytest.mark.parametrize("path", ["forward", "unroll"])
def test_gradcheck_on_a_tiny_layer(path):
    layer = _layer(seed=3, i=2, h=3)
    x = _x(seed=4, b=2, t=4, i=2).requires_grad_()
    names = ("weight_ih", "parametrizations.weight_hh.original", "bias_ih", "bias_hh")
    params = [dict(layer.named_parameters())[n].detach().clone().requires_grad_() for n in names]
    # a trained point, not A = 0: perturb X so that exp's derivative is not the identity
    with torch.no_grad():
        params[1].add_(torch.randn(3, 3, dtype=D, generator=torch.Generator().manual_seed(5)))
    module = layer if path == "forward" else _Unroll(layer)
    prefix = "" if path == "forward" else "inner."

    def f(x_, *ps):
        return torch.func.functional_call(module, {prefix + n: p for n, p in zip(names, ps)},
                                          (x_,))

    assert torch.autograd.gradcheck(f, (x, *params))


# --- 4. gain and gain_max ---------------------------------------------------------------------------


def test_gain_is_the_step_jacobians_mean_singular_value_and_gain_max_its_best_unit():
    # mildly trained: W_hh no longer block-diagonal, the units not saturated
    layer, x = _trained(_layer(), _x(), steps=10, lr=0.05), _x(seed=2)
    rec = layer.unroll(x, record=True)
    w_ih, w_hh, b_ih, b_hh = (p.detach() for p in _params(layer))
    # 1 − h² from the layer's h and from the reference's differ by ≤ 2|Δh| (forward bound),
    # and an SVD's σ carries ≲ H u₆₄ ‖J‖ (‖J‖ ≤ 1); means of BH such terms: ×10 margin.
    tol = 10 * (2 * _forward_error_bound(layer, x) + H * U64)
    h_ref = tanh_rnn(x, w_ih, w_hh, b_ih, b_hh)
    for t in range(T):
        h_prev = h_ref[:, t - 1] if t else torch.zeros(B, H, dtype=D)
        J = torch.stack([torch.autograd.functional.jacobian(
            lambda hp, b=b, t=t: torch.tanh(x[b, t] @ w_ih.T + b_ih + w_hh @ hp + b_hh),
            h_prev[b]) for b in range(B)])  # (B, H, H): ∂h_t/∂h_{t−1}, one per sequence
        sv = torch.linalg.svdvals(J)  # = 1 − h_t² as a multiset, since W_hh is orthogonal
        torch.testing.assert_close(rec.activations["gain"][t], sv.mean(), rtol=0, atol=tol)
        # gain_max: the per-unit gain is the diagonal factor D = J W_hhᵀ (W_hh⁻¹ = W_hhᵀ);
        # W_hh orthogonal to ≲ 100 H u₆₄ (see below), so D's off-diagonal is that small too.
        Dg = J @ w_hh.T
        off = Dg - torch.diag_embed(torch.diagonal(Dg, dim1=1, dim2=2))
        assert off.abs().max() <= 100 * H * U64
        per_unit = torch.diagonal(Dg, dim1=1, dim2=2).mean(0)
        torch.testing.assert_close(rec.activations["gain_max"][t], per_unit.max(), rtol=0,
                                   atol=tol + 100 * H * U64)
    assert set(rec.activations) == {"gain", "gain_max"}


# --- 5. orthogonality and init -----------------------------------------------------------------------


def test_w_hh_stays_orthogonal_after_adam_steps_at_a_large_learning_rate():
    layer = _layer()
    w0 = layer.weight_hh.detach().clone()
    _trained(layer, _x(), steps=30, lr=0.5)
    w = layer.weight_hh.detach()
    assert torch.linalg.matrix_norm(w - w0) > 1.0  # it moved far (‖W₀‖_F = √H ≈ 2.4)
    # exp of a skew matrix by scaling and squaring: s ≤ ⌈log2 ‖A‖₁⌉ squarings (the Taylor/
    # Padé stage needs ‖A/2^s‖ ≲ 1), each an H-term matrix product rounding ≲ H u₆₄ that
    # the next squaring doubles, then B @ exp(A), one more: ‖WᵀW − I‖ ≲ (2^s + 1) H u₆₄,
    # ×10 for the constants of each product.
    x_ = layer.parametrizations.weight_hh.original.detach()
    norm_a = torch.linalg.matrix_norm(x_.tril() - x_.tril().T, ord=1).item()
    tol = 10 * (2 ** max(0, math.ceil(math.log2(norm_a))) + 1) * H * U64
    torch.testing.assert_close(w.T @ w, torch.eye(H, dtype=D), rtol=0, atol=tol)
    assert abs(torch.linalg.det(w).item() - 1.0) < H * tol  # exp stays in SO(n)
    # The same training on an unconstrained W_hh (torch.nn.RNN, same start) leaves O(n).
    torch.manual_seed(0)
    free = torch.nn.RNN(N_IN, H, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        free.weight_hh_l0.copy_(w0)
    opt = torch.optim.Adam(free.parameters(), lr=0.5)
    for _ in range(30):
        opt.zero_grad()
        (-_loss(free(_x())[0], _readout())).backward()
        opt.step()
    wf = free.weight_hh_l0.detach()
    assert (wf.T @ wf - torch.eye(H, dtype=D)).abs().max() > 0.1


def test_init_is_expRNNs_henaff_through_torchs_trivialised_exponential_map():
    torch.manual_seed(0)
    n_units = 2001  # odd: the last unit is a 1×1 block
    with _float64_default():
        layer = OrthogonalRNNLayer(4, n_units)
    p = layer.parametrizations.weight_hh[0]
    assert p.orthogonal_map.name == "matrix_exp"
    w = layer.weight_hh.detach()
    assert torch.equal(w, p.base)  # the trivialisation's base is the initial W_hh ...
    x_ = layer.parametrizations.weight_hh.original.detach()
    assert torch.count_nonzero(x_.tril() - x_.tril().T) == 0  # ... and A = 0 there
    i = torch.arange(n_units // 2) * 2
    c, s = w[i, i], w[i, i + 1]
    assert torch.equal(w[i + 1, i], -s) and torch.equal(w[i + 1, i + 1], c)
    block = torch.zeros_like(w, dtype=torch.bool)
    for di, dj in ((0, 0), (0, 1), (1, 0), (1, 1)):
        block[i + di, i + dj] = True
    block[-1, -1] = True
    assert torch.count_nonzero(w[~block]) == 0 and w[-1, -1] == 1.0
    # θ ~ U(−π, π): Kolmogorov–Smirnov distance below 1.95/√n (the 0.1% critical value).
    theta = torch.atan2(s, c).sort().values
    cdf = torch.arange(1, len(theta) + 1, dtype=D) / len(theta)
    assert ((theta + math.pi) / (2 * math.pi) - cdf).abs().max() < 1.95 / len(theta) ** 0.5
    # the closed form is the exponential of the block-diagonal skew matrix
    torch.manual_seed(5)
    small = henaff_orthogonal(8)
    ii = torch.arange(4) * 2
    A = torch.zeros(8, 8, dtype=D)
    A[ii, ii + 1] = torch.atan2(small[ii, ii + 1], small[ii, ii])
    A = A - A.T
    # matrix_exp of a norm-≤π matrix: a few squarings of 8×8 products, ≲ 100 · 8 u₆₄.
    torch.testing.assert_close(torch.matrix_exp(A), small, rtol=0, atol=800 * U64)
    # W_ih and the biases: torch.nn.RNN's U(−1/√H, 1/√H)
    k = 1 / math.sqrt(n_units)
    for q in (layer.weight_ih, layer.bias_ih, layer.bias_hh):
        assert q.abs().max() <= k and q.abs().max() > 0.9 * k


def test_a_trained_layer_saved_and_loaded_computes_the_same():
    """The state holds X and the base B (a buffer): both must travel (safetensors, as runs do)."""
    from safetensors.torch import load_file, save_file

    a, x = _trained(_layer(), _x(), steps=5, lr=0.1), _x(seed=2)
    assert set(a.state_dict()) == {"weight_ih", "bias_ih", "bias_hh",
                                   "parametrizations.weight_hh.original",
                                   "parametrizations.weight_hh.0.base"}
    b = _layer(seed=9)
    with tempfile.TemporaryDirectory() as d:
        save_file(a.state_dict(), f"{d}/m.safetensors")
        b.load_state_dict(load_file(f"{d}/m.safetensors"))
    assert torch.equal(a(x), b(x))


# --- registry -------------------------------------------------------------------------------------


def test_the_registry_builds_it():
    from core.archspec import layer_class, spec
    from core.config import TrainConfig
    from core.train import make_model

    s = spec("orthogonal")
    assert layer_class("orthogonal") is OrthogonalRNNLayer
    cfg = TrainConfig(arch="orthogonal", seq_len=9, hidden_size=6)
    task = cfg.make_task()
    model = make_model(cfg, task)
    assert isinstance(model.recurrent, OrthogonalRNNLayer)
    assert model.recurrent.uses_fused is False and model.recurrent.gate_names == s.gates
    rec = model.recurrent.unroll(torch.randn(2, 7, task.input_size), record=True)
    assert tuple(rec.states) == s.states and s.carry in rec.activations


# --- 6. it learns -----------------------------------------------------------------------------------


def test_it_learns_the_recall_task():
    from core.config import TrainConfig
    from core.train import EvalRecord, ProbeRecord, Trainer

    t = Trainer(TrainConfig(arch="orthogonal", task="recall", seq_len=50, hidden_size=32,
                            batch_size=32, steps=300, lr=3e-3, eval_every=150, eval_size=256,
                            probe_every=150))
    recs = list(t.run())
    evals = [r.loss for r in recs if isinstance(r, EvalRecord)]
    assert any(isinstance(r, ProbeRecord) for r in recs)
    # Baseline: log 8 = 2.08 (chance). Measured (seed 0): 0.43 after 300 steps.
    assert evals[-1] < 0.5 * t.task.baseline_loss, evals

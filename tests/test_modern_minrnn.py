"""minGRU and minLSTM (core/modern/minrnn.py) against the paper's equations, stepped.

Every comparison runs in float64 against a plain loop written here from the paper's
formulas (Feng et al. 2024, sections 3.1.2 and 3.2.2), reading the layer's parameters
(one Linear, row blocks in the order of ``gate_names``) and calling none of the layer's
helpers. Tolerances are derived, never tuned: the unit roundoff u times the conditioning
of the computation, worked out in :func:`forward_bound` (the scan and the loop) and
:func:`gradient_tolerance` (total derivatives), from the data of each test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from core.cells import Scanned
from core.modern.minrnn import MinGRULayer, MinLSTMLayer, log_scan

U64 = 2.0**-53  # float64's unit roundoff
U32 = 2.0**-24  # float32's

ARCHS = {"mingru": MinGRULayer, "minlstm": MinLSTMLayer}
B, T, N_IN, H = 3, 12, 4, 5


# --- the paper's equations, stepped ------------------------------------------------------


def sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


def g_paper(x):
    """Appendix B.3: g(x) = x + ½ for x ≥ 0, σ(x) for x < 0."""
    return torch.where(x >= 0, x + 0.5, sigmoid(x))


@dataclass
class Stepped:
    h: torch.Tensor  # (B, T, H)
    hs: list  # one (B, H) graph node per step: every later use of h_t goes through it
    pre: dict  # gate name → (B, T, H) pre-activation
    a: torch.Tensor  # the carry gain a_t (1 − z_t or f′_t), (B, T, H)
    b: torch.Tensor  # what enters h_t besides a_t ⊙ h_{t−1} (z_t ⊙ h̃_t or i′_t ⊙ h̃_t)
    h_tilde: torch.Tensor
    act: dict  # gate name → its activation (σ or g), (B, T, H)


def stepped(arch, x, weight, bias, inject=None):
    """h_t from the paper's recurrence, one step at a time, h_0 = 0.

    ``inject`` maps (quantity, b, t, k) to δ added to that element of h_t (quantity "h")
    or of a gate's pre-activation before its nonlinearity: the finite differences'
    perturbation ε·e_k, inside the loop.
    """
    inject = inject or {}
    names = ("z", "g") if arch == "mingru" else ("f", "i", "g")
    Bx, Tx, _ = x.shape
    Hx = weight.shape[0] // len(names)
    h = x.new_zeros(Bx, Hx)
    hs, pres, as_, bs, hts, acts = [], {n: [] for n in names}, [], [], [], {n: [] for n in names}
    for t in range(Tx):
        p_all = x[:, t] @ weight.T + bias
        p = {n: p_all[:, j * Hx:(j + 1) * Hx] for j, n in enumerate(names)}
        for (q, bb, tt, k), d in inject.items():
            if tt == t and q in p:
                e = torch.zeros_like(p[q])
                e[bb, k] = d
                p[q] = p[q] + e
        h_tilde = g_paper(p["g"])  # h̃_t = g(W_h x_t + b_h)
        if arch == "mingru":
            z = sigmoid(p["z"])  # z_t = σ(W_z x_t + b_z)
            a, b_in = 1.0 - z, z * h_tilde  # h_t = (1 − z_t) h_{t−1} + z_t h̃_t
            act = {"z": z, "g": h_tilde}
        else:
            f, i = sigmoid(p["f"]), sigmoid(p["i"])  # f_t, i_t
            f_n, i_n = f / (f + i), i / (f + i)  # f′_t = f/(f + i), i′_t = i/(f + i)
            a, b_in = f_n, i_n * h_tilde  # h_t = f′_t h_{t−1} + i′_t h̃_t
            act = {"f": f, "i": i, "g": h_tilde}
        h = a * h + b_in
        for (q, bb, tt, k), d in inject.items():
            if tt == t and q == "h":
                e = torch.zeros_like(h)
                e[bb, k] = d
                h = h + e
        hs.append(h)
        for n in names:
            pres[n].append(p[n])
            acts[n].append(act[n])
        as_.append(a)
        bs.append(b_in)
        hts.append(h_tilde)
    st = lambda v: torch.stack(v, 1)  # noqa: E731
    return Stepped(st(hs), hs, {n: st(v) for n, v in pres.items()}, st(as_), st(bs), st(hts),
                   {n: st(v) for n, v in acts.items()})


def params_of(layer):
    return layer.linear.weight.detach().clone(), layer.linear.bias.detach().clone()


def make(arch, seed=0, spread=2.0):
    """A float64 layer whose gates span a wide range: torch's init scaled by ``spread`` on
    inputs of std ``spread`` (pre-activations of std ≈ spread²/√3), so gains go from near
    0 to near 1 and h̃ uses both branches of g."""
    torch.manual_seed(seed)
    layer = ARCHS[arch](N_IN, H).double()
    with torch.no_grad():
        layer.linear.weight.mul_(spread)
        layer.linear.bias.mul_(spread)
    x = spread * torch.randn(B, T, N_IN, dtype=torch.float64)
    return layer, x


def readout(seed=1):
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(H, dtype=torch.float64, generator=gen)
    c = torch.rand(T, dtype=torch.float64, generator=gen) + 0.5
    return r, c


def loss_of(h, r, c):
    """ℓ = ½ Σ_{b,t} c_t (r·h_{b,t})²: every step reaches the loss, and ℓ is quadratic in h."""
    return 0.5 * (c[None, :] * (h @ r) ** 2).sum()


# --- tolerances --------------------------------------------------------------------------


def passes(steps: int) -> int:
    """How many doubling passes the scan makes over ``steps`` steps: ⌈log₂ steps⌉."""
    return max(1, math.ceil(math.log2(steps)))


def forward_bound(ref: Stepped, x, weight, bias, u, inputs_exact=False, loop_rel_a=None):
    """Relative bound on |h_t − h_t(ref)| / h_t between the doubling scan and the loop.

    Both are positive sums, so relative errors are the natural measure. log h_t is a
    softmax-weighted mean of the terms y_s = log b_s + Σ_{r=s+1..t} log a_r (weights
    w_s = e^{y_s − log h_t}, Σ w_s = 1), which bounds how input errors and roundings
    carry. Write Λ_t = max_{s≤t} |log b_s| + log t: every partial log b the scan holds
    lies within ±Λ_t. Absolute error of log h_t (relative error of h_t = its expm1) from:

    * the scan, L = ⌈log₂ T⌉ passes of q = log a + log b′, res = logaddexp(log b, q).
      An error in q reaches res weighted by w_q = e^{q − res} ≤ 1, and w_q·|q| ≤ |res| + 1/e
      (q ≤ res). At pass j the window sum log a has depth-j rounding ≤ j·u·|log a| (terms
      of one sign), and w_q·|log a| ≤ |res| + 1/e + |log b′|; q's own rounding u|q|; res's
      rounding and logaddexp's exp/log1p ≤ u(|res| + 3). Per pass ≤ u((2j + 2)(Λ_t + 1) + 3),
      over j = 0..L−1: u(L(L + 1)(Λ_t + 1) + 3L), and the final exp u;
    * the inputs (not when ``inputs_exact``): log a and log b come from pre-activations
      (a float64 matmul each side, each within γ_{n+1}·P of exact, P = |x|·|W|ᵀ + |b|, so
      the two sides differ by dp ≤ 2(n+1)u·P); |∂log a/∂p| ≤ 1 for each of the ≤ 2
      pre-activations a depends on, |∂log b/∂p| ≤ 2 (log g′ ≤ 2) over ≤ 3: Σ_{r≤t} 2dp_r
      and max_{s≤t} 4dp_s; plus ≤ 8 roundings of each value: for log b 8u(1 + Λ_t), for
      log a, carried by the weights, Σ_s w_s Σ_{r>s} 8u(1 + |log a_r|) ≤ 8u(t + Λ_t +
      |log h_t| + 1/e) (as above, w_s·|Σ log a| ≤ |log b_s| + |log h_t| + 1/e);
    * the loop: h_t = a_t h_{t−1} + b_t with positive terms, relative error ≤ Σ_{r≤t}
      (rel a_r + 2u) + max rel b; rel a ≤ u(2 + 1/a) (1 − σ(p) loses u/(1 − z) relatively),
      rel b ≤ 4u (``loop_rel_a`` replaces rel a where the test forms a stably). Its
      errors are float64's whatever u the scan ran at.
    """
    log_a, log_b, log_h = ref.a.log(), ref.b.log(), ref.h.log()
    t = torch.arange(1, log_a.shape[1] + 1, dtype=torch.float64)[None, :, None]
    lam = log_b.abs().cummax(1).values + t.log()
    L = passes(log_a.shape[1])
    scan = u * (L * (L + 1) * (lam + 1) + 3 * L + 1)
    inputs = torch.zeros_like(log_a)
    if not inputs_exact:
        P = x.abs() @ weight.abs().T + bias.abs()  # (B, T, k·H)
        dp = 2 * (x.shape[-1] + 1) * u * P.reshape(*P.shape[:2], -1, log_a.shape[-1]).amax(2)
        inputs = ((2 * dp).cumsum(1) + (4 * dp).cummax(1).values
                  + 8 * u * (1 + lam) + 8 * u * (t + lam + log_h.abs() + 1))
    rel_a = U64 * (2 + 1 / ref.a) if loop_rel_a is None else torch.full_like(ref.a, loop_rel_a)
    loop = (rel_a + 2 * U64).cumsum(1) + 4 * U64
    return torch.expm1(scan + inputs + loop)


def total_abs(ref: Stepped, g_direct_abs):
    """Σ_{u≥t} (Π_{r=t+1..u} a_r)|∂ℓ/∂h_u direct|: the size of the terms a total derivative
    ∂ℓ/∂h_t sums (a reverse loop), the scale its rounding error is relative to."""
    out = torch.zeros_like(g_direct_abs)
    acc = torch.zeros_like(g_direct_abs[:, 0])
    for t in reversed(range(g_direct_abs.shape[1])):
        acc = g_direct_abs[:, t] + (ref.a[:, t + 1] * acc if t + 1 < g_direct_abs.shape[1] else 0)
        out[:, t] = acc
    return out


def gradient_tolerance(ref: Stepped, rel, r, c):
    """Bound on the error of a computed ∂ℓ/∂h_t (total), (B, T, H); and G_abs.

    ∂ℓ/∂h_t = Σ_{u≥t} (Π a) g_u with g_u = c_u (r·h_u) r the direct part; its terms total
    G_abs = Σ (Π a)|g_u|, with |g_u| taken as c_u (|r|·h_u)|r| (an upper bound that also
    covers the error of r·h_u). Errors, with rel the largest forward bound:

    * h's own error carried into g: ≤ rel·G_abs;
    * the scan's backward: each term reaches step t through ≤ L = ⌈log₂ T⌉ logaddexp
      nodes, one per pass, whose weights e^{q − res} carry the relative error of their
      arguments' log error (≤ rel), and the signed terms are summed by a tree of depth L:
      ≤ L(rel + u)·G_abs (the probe path's ∂/∂b = ∂/∂log b ÷ b adds 2u);
    * the loop's reverse accumulation G_t = g_t + a_{t+1} G_{t+1}: ≤ 2(T − t)u + Σ rel a
      relative to G_abs, which the loop term of rel already bounds: ≤ rel·G_abs.
    """
    g_abs = total_abs(ref, c[None, :, None] * (ref.h @ r.abs())[..., None] * r.abs())
    L = passes(ref.h.shape[1])
    return ((L + 2) * rel.amax() + (L + 2) * U64) * g_abs, g_abs


def central_difference(fn, eps):
    return (fn(eps) - fn(-eps)) / (2 * eps)


# --- 1. forward -------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_equals_the_papers_equations_stepped(arch):
    layer, x = make(arch)
    w, b = params_of(layer)
    ref = stepped(arch, x, w, b)
    assert ref.a.min() < 0.05 and ref.a.max() > 0.95, "the data should span closed and open gates"
    assert (ref.pre["g"] < 0).any() and (ref.pre["g"] > 0).any()
    with torch.no_grad():
        h = layer(x)
    tol = forward_bound(ref, x, w, b, U64)
    assert ((h - ref.h).abs() <= tol * ref.h).all(), ((h - ref.h).abs() / ref.h / tol).max()


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_equals_unroll_h(arch):
    # The two paths differ only in how log b is formed (log-sigmoid forms against log of
    # the product): the same scan on inputs within e_b of each other, so the forward
    # bound (which covers two differently rounded inputs and both paths' roundings) holds.
    layer, x = make(arch)
    w, b = params_of(layer)
    ref = stepped(arch, x, w, b)
    tol = forward_bound(ref, x, w, b, U64)
    with torch.no_grad():
        h = layer(x)
        for record in (False, True):
            hu = layer.unroll(x, record=record).h
            assert ((hu - h).abs() <= 2 * tol * ref.h).all()
    assert layer.unroll(x, record=True).states["h"].values.shape == (B, T, H)


def test_float32_scan_error_is_within_its_derived_bound():
    """The scan alone in float32 against the float64 loop on the same (float32-exact)
    inputs, within forward_bound's scan term at u = 2⁻²⁴ (which does not grow with how
    much the state has forgotten, as Heinsen's form's would: no Σ log a is formed
    outside a logaddexp's weight); gates spanning (0.003, 0.997) over 64 steps.
    (Measured: 8.3e-7 relative at most, 2 % of the bound.)"""
    gen = torch.Generator().manual_seed(3)
    Tl = 64
    p = 3.0 * torch.randn(4, Tl, 8, generator=gen)
    q = 3.0 * torch.randn(4, Tl, 8, generator=gen)
    log_a = -torch.nn.functional.softplus(p)  # float32
    log_b = -torch.nn.functional.softplus(-q)
    h32 = torch.exp(log_scan(log_a, log_b))
    a, b64 = log_a.double().exp(), log_b.double().exp()
    h, hs = torch.zeros_like(a[:, 0]), []
    for t in range(Tl):
        h = a[:, t] * h + b64[:, t]
        hs.append(h)
    ref = Stepped(torch.stack(hs, 1), hs, {}, a, b64, None, {})
    tol = forward_bound(ref, None, None, None, U32, inputs_exact=True)
    err = (h32.double() - ref.h).abs() / ref.h
    assert (err <= tol).all(), (err / tol).max()


@pytest.mark.parametrize("steps", [1, 2, 3, 8, 9, 30])
def test_scan_equals_the_sequential_recurrence_for_any_positive_coefficients(steps):
    """Any a ∈ (0, 1), b > 0, and step counts at and beside powers of two (the doubling's
    last pass reaches exactly back to step 0, or overshoots)."""
    gen = torch.Generator().manual_seed(4)
    a = torch.rand(2, steps, 3, dtype=torch.float64, generator=gen)
    b = torch.rand(2, steps, 3, dtype=torch.float64, generator=gen) * 5
    h, hs = torch.zeros_like(a[:, 0]), []
    for t in range(steps):
        h = a[:, t] * h + b[:, t]
        hs.append(h)
    ref = Stepped(torch.stack(hs, 1), hs, {}, a, b, None, {})
    tol = forward_bound(ref, None, None, None, U64, inputs_exact=True)
    out = torch.exp(log_scan(a.log(), b.log()))
    assert ((out - ref.h).abs() <= tol * ref.h).all()


# --- 2. total derivatives ---------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_probe_totals_equal_the_sequential_forms_total_derivatives(arch):
    layer, x = make(arch)
    w, b = params_of(layer)
    r, c = readout()
    ref = stepped(arch, x, w.clone().requires_grad_(), b)
    # The loop's per-step nodes: ∂ℓ/∂h_t total, as the classic cells' probe measures it.
    g_seq = torch.stack(torch.autograd.grad(loss_of(ref.h, r, c), ref.hs), 1)
    u = layer.unroll(x, record=True)
    rec = u.states["h"]
    assert isinstance(rec, Scanned) and rec.totals.shape == (B, T, H)
    (g_probe,) = torch.autograd.grad(loss_of(u.h, r, c), [rec.totals])
    ref = stepped(arch, x, w, b)
    tol, _ = gradient_tolerance(ref, forward_bound(ref, x, w, b, U64), r, c)
    assert ((g_probe - g_seq).abs() <= tol).all(), ((g_probe - g_seq).abs() / tol).max()


def _fd_points(pre, gen, n=4, away=0.1):
    """n (b, t, k) points, spread over t, whose pre-activation is ≥ ``away`` from g's kink
    at 0 (g is not differentiable there; the widest difference below reaches ±0.04)."""
    pts = []
    for t in (0, T // 3, 2 * T // 3, T - 1)[:n]:
        cand = [(bb, k) for bb in range(B) for k in range(H) if abs(pre[bb, t, k]) > away]
        bb, k = cand[int(torch.randint(len(cand), (1,), generator=gen))]
        pts.append((bb, t, k))
    return pts


@pytest.mark.parametrize("arch", ARCHS)
def test_every_recorded_gradient_equals_a_finite_difference_inside_the_loop(arch):
    layer, x = make(arch)
    w, b = params_of(layer)
    r, c = readout()
    ref = stepped(arch, x, w, b)
    rel = forward_bound(ref, x, w, b, U64)
    tol_h, g_abs_total = gradient_tolerance(ref, rel, r, c)
    u = layer.unroll(x, record=True)
    names = list(u.gates)
    assert names == list(layer.gate_names)
    nodes = [u.states["h"].totals] + [u.gates[n] for n in names]
    grads = dict(zip(["h"] + names, torch.autograd.grad(loss_of(u.h, r, c), nodes)))
    ell = loss_of(ref.h, r, c).item()
    # ℓ is a sum of B·T non-negative terms of ≤ H + 3 operations each on an h of relative
    # error ≤ rel: |δℓ| ≤ ℓ(2 rel + (B·T + H + 3)u); a central difference of step ε is off
    # by ≤ |δℓ|/ε from rounding.
    d_ell = ell * (2 * rel.amax().item() + (B * T + H + 3) * U64)
    gen = torch.Generator().manual_seed(5)

    def loss_with(q, pt):
        return lambda d: loss_of(stepped(arch, x, w, b, {(q, *pt): d}).h, r, c).item()

    for pt in _fd_points(ref.pre["g"], gen):
        # h: h_t = a_t h_{t−1} + b_t + δ is linear in δ (the gates do not see h), so ℓ is
        # quadratic in δ and the central difference is exact but for rounding.
        eps = 1e-2
        fd = central_difference(loss_with("h", pt), eps)
        assert abs(grads["h"][pt] - fd) <= tol_h[pt] + d_ell / eps, ("h", pt)
    # Gates: ℓ is smooth in the pre-activation on each side of g's kink; the central
    # difference's truncation error ε²/6·ℓ‴ is estimated with the five-point third
    # difference at step e = 0.02 (×4 for ℓ‴'s change over the interval, plus that
    # estimate's own rounding 3|δℓ|/e³). The recorded gradient's error: ∂ℓ/∂p_t =
    # ∂ℓ/∂h_t (total) ⊙ (∂a_t/∂p h_{t−1} + ∂b_t/∂p) with |∂a/∂p| ≤ ¼, |∂b/∂p| ≤ ¼h̃ + 1,
    # so ≤ (tol_h + 8u·G_abs)·(¼h_{t−1} + ¼h̃_t + 1).
    h_prev = torch.cat([torch.zeros_like(ref.h[:, :1]), ref.h[:, :-1]], 1)
    sens = 0.25 * h_prev + 0.25 * ref.h_tilde + 1
    eps, e = 1e-4, 0.02
    for q in names:
        for pt in _fd_points(ref.pre[q], gen):
            fn = loss_with(q, pt)
            third = (fn(2 * e) - 2 * fn(e) + 2 * fn(-e) - fn(-2 * e)) / (2 * e**3)
            trunc = 4 * eps**2 / 6 * (abs(third) + 3 * d_ell / e**3)
            fd = central_difference(fn, eps)
            tol = (tol_h[pt] + 8 * U64 * g_abs_total[pt]) * sens[pt] + trunc + d_ell / eps
            assert abs(grads[q][pt] - fd) <= tol, (q, pt, float(grads[q][pt]), fd, tol)


def test_core_probe_reports_the_recorded_totals_norms():
    """core.probe.probe consumes Scanned and the (B, T, H) gate tensors: its profile is the
    batch-mean L2 norm of the same autograd gradients (the same float64 numbers, summed
    in another order: ≤ (H + B + 4)u relative)."""
    from core.models import SequenceModel
    from core.probe import probe
    from core.tasks import AddingTask

    task = AddingTask(seq_len=T)
    for arch, cls in ARCHS.items():
        torch.manual_seed(0)
        model = SequenceModel(arch, cls(task.input_size, H), task.output_size).double()
        xs, ys = task.sample(B, torch.Generator().manual_seed(0))
        xs = xs.double()
        res = probe(model, task, xs, ys)
        out, u = model.unroll(xs, record=True)
        nodes = [u.states["h"].totals] + [u.gates[n] for n in cls.gate_names]
        grads = torch.autograd.grad(task.loss(out, ys).sum(), nodes)
        for q, gq in zip(("h",) + cls.gate_names, grads):
            want = gq.norm(dim=2).mean(dim=0)
            got = torch.tensor(res.profile[res.profile["quantity"] == q].sort_values("t")["grad_norm"]
                               .to_numpy())
            assert len(got) == T
            assert ((got - want).abs() <= (H + B + 4) * U64 * want).all(), (arch, q)
        assert set(res.activations["gate"]) == set(cls.gate_names) | {"gain", "gain_max"}


def test_explains_state_jacobian_is_the_diagonal_product_of_gains():
    """core.explain.jacobians.state_jacobians, through the Scanned totals: ∂h_{T−1}/∂h_t =
    diag(Π_{r=t+1..T−1} a_r) (the gates do not see h, units never mix), off-diagonal
    exactly 0. Its error is the gradient bound's with the one direct term Π a (seeded
    e_k at T − 1): ≤ (L + 2)(rel + u)·Π a."""
    from core.explain.jacobians import state_jacobians
    from core.models import SequenceModel

    for arch in ARCHS:
        layer, x = make(arch)
        model = SequenceModel(arch, layer, 1).double()
        J = state_jacobians(model, x)[("h", "h")]  # (T, B, H, H)
        w, b = params_of(layer)
        ref = stepped(arch, x, w, b)
        after = torch.flip(torch.cumprod(torch.flip(ref.a[:, 1:], [1]), 1), [1])  # Π_{r>t} a_r
        want = torch.cat([after, torch.ones_like(ref.a[:, :1])], 1).permute(1, 0, 2)  # (T, B, H)
        diag = torch.diagonal(J, dim1=2, dim2=3)
        rel = forward_bound(ref, x, w, b, U64).amax()
        L = passes(T)
        assert ((diag - want).abs() <= (L + 2) * (rel + U64) * want).all(), arch
        assert (J - torch.diag_embed(diag)).abs().max() == 0


# --- 3. parameter gradients -------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_training_paths_parameter_gradients_equal_the_stepped_forms(arch):
    layer, x = make(arch)
    w0, b0 = params_of(layer)
    r, c = readout()
    gw, gb = torch.autograd.grad(loss_of(layer(x), r, c), [layer.linear.weight, layer.linear.bias])
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    ref = stepped(arch, x, w, b)
    rw, rb = torch.autograd.grad(loss_of(ref.h, r, c), [w, b])
    ref = stepped(arch, x, w0, b0)
    rel = forward_bound(ref, x, w0, b0, U64)
    # Each gate's ∂ℓ/∂p_{b,t,j} is within (tol_h + 8u·G_abs)·sens on each side (see the
    # finite-difference test), and |∂ℓ/∂p| ≤ G_abs·sens; ∂ℓ/∂W = Σ_{b,t} ∂ℓ/∂p ⊗ x adds the
    # summation's γ_{BT}. Per gate block (rows), per input column.
    tol_h, g_abs = gradient_tolerance(ref, rel, r, c)
    h_prev = torch.cat([torch.zeros_like(ref.h[:, :1]), ref.h[:, :-1]], 1)
    sens = 0.25 * h_prev + 0.25 * ref.h_tilde + 1
    per = (2 * (tol_h + 8 * U64 * g_abs) + (B * T + 2) * U64 * g_abs) * sens  # (B, T, H)
    k = len(layer.gate_names)
    tol_w = torch.einsum("bth,btm->hm", per, x.abs()).repeat(k, 1)
    tol_b = per.sum((0, 1)).repeat(k)
    assert ((gw - rw).abs() <= tol_w).all(), ((gw - rw).abs() / tol_w).max()
    assert ((gb - rb).abs() <= tol_b).all()


class _Unroll(torch.nn.Module):
    """The probe path as a module, so torch.func.functional_call can swap its parameters."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer.unroll(x, record=True).h


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("record", [False, True])
def test_gradcheck_on_a_tiny_layer(arch, record):
    """torch's own check (its default tolerances) of both paths' Jacobians w.r.t. x, W, b."""
    torch.manual_seed(2)
    layer = ARCHS[arch](2, 3).double()
    module, prefix = (_Unroll(layer), "layer.") if record else (layer, "")
    x = torch.randn(2, 5, 2, dtype=torch.float64, requires_grad=True)
    w, b = (p.detach().clone().requires_grad_() for p in (layer.linear.weight, layer.linear.bias))

    def fn(x, w, b):
        params = {prefix + "linear.weight": w, prefix + "linear.bias": b}
        return torch.func.functional_call(module, params, (x,))

    assert torch.autograd.gradcheck(fn, (x, w, b))


# --- 4. activations ---------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_gain_and_gate_activations_equal_their_definitions(arch):
    layer, x = make(arch)
    w, b = params_of(layer)
    ref = stepped(arch, x, w, b)
    with torch.no_grad():
        acts = layer.unroll(x, record=True).activations
    want = {n: v.mean((0, 2)) for n, v in ref.act.items()}
    want["gain"] = ref.a.mean((0, 2))  # minGRU 1 − z_t, minLSTM f′_t = f/(f + i)
    want["gain_max"] = ref.a.mean(0).amax(-1)  # the most carrying unit's batch mean
    assert set(acts) == set(want)
    for n, v in want.items():
        assert acts[n].shape == (T,)
        # Means of ≤ B·H values each within a few roundings (~8u relative, 1 − z's u/a)
        # plus the mean's summation γ_{BH}: ≤ (B·H + 8 + 1/min a)·u·max|value|.
        scale = ref.act.get(n, ref.a).abs().amax((0, 2))
        tol = (B * H + 8 + 1 / ref.a.min()) * U64 * scale
        assert ((acts[n] - v).abs() <= tol).all(), n


# --- 5. init and the paper's structural properties ---------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_init_is_one_default_linear_and_the_gain_starts_near_one_half(arch):
    torch.manual_seed(0)
    n_in, hid = 6, 32
    layer = ARCHS[arch](n_in, hid)
    k = len(layer.gate_names)
    assert [n for n, _ in layer.named_parameters()] == ["linear.weight", "linear.bias"]
    assert layer.linear.weight.shape == (k * hid, n_in)
    bound = 1 / math.sqrt(n_in)  # torch's Linear init U(±1/√n_in), as the reference's
    assert layer.linear.weight.abs().max() <= bound and layer.linear.bias.abs().max() <= bound
    assert layer.uses_fused is False and layer.hidden_size == hid and layer.input_size == n_in
    x = torch.randn(64, 20, n_in)
    with torch.no_grad():
        gain = layer.unroll(x, record=True).activations["gain"]
    # Pre-activations at init: Var p = n·(1/(3n))·Var x + 1/(3n) ≈ 0.39 (std 0.62) with
    # mean zero in law; a unit's mean gain is σ(−p) averaged, = ½ by symmetry, off by
    # ≈ ¼·|bias| ≤ ¼/√6 ≈ 0.1 per unit; the mean of 32 units' independent offsets has std
    # ≈ 0.1/√3/√32 ≈ 0.01: 0.05 is 5 standard deviations.
    assert (gain - 0.5).abs().max() < 0.05


@pytest.mark.parametrize("arch", ARCHS)
def test_state_is_positive_and_finite_for_saturated_gates(arch):
    """g > 0 keeps h > 0 (what lets the scan take logs), and the log-sigmoid forms stay
    finite where the gate saturates: in float32, 1 − σ(40) rounds to 0, −softplus(40) does
    not. Carry gain σ(c) with c = ±40 (minGRU b_z = −c; minLSTM b_f = c, b_i = −c, so
    d = log(i/f) = −c exactly and f′ = σ(c))."""
    torch.manual_seed(0)
    layer = ARCHS[arch](3, 4)
    x = torch.randn(2, 50, 3)
    hid = layer.hidden_size
    carry_rows = slice(0, hid) if arch == "mingru" else slice(0, 2 * hid)
    for c in (-40.0, 40.0):
        with torch.no_grad():
            layer.linear.weight[carry_rows].zero_()
            if arch == "mingru":
                layer.linear.bias[:hid] = -c  # z = σ(−c): gain 1 − z = σ(c)
            else:
                layer.linear.bias[:hid] = c  # f = σ(c)
                layer.linear.bias[hid: 2 * hid] = -c  # i = σ(−c)
        h = layer(x)
        u = layer.unroll(x, record=True)
        assert torch.isfinite(h).all() and (h > 0).all() and torch.isfinite(u.h).all()
        grads = torch.autograd.grad(h.sum() + u.h.sum(), list(layer.parameters()))
        assert all(torch.isfinite(gr).all() for gr in grads)
        # Against the recurrence in float64 with a = σ(c), b = σ(−c)·h̃ (formed stably here,
        # so the loop's a is good to a few u), within forward_bound at u = 2⁻²⁴. (Measured:
        # 1.5e-7 relative at c = −40; 4.9e-6 at c = +40, where b ≈ e^-40 h̃ and log b ≈ −40
        # carries float32's ulp(40) = 3.8e-6: log space costs u·|log b| relatively.)
        w, b = (p.detach().double() for p in (layer.linear.weight, layer.linear.bias))
        xd = x.double()
        h_tilde = g_paper((xd @ w.T + b)[..., -hid:])
        a = torch.full_like(h_tilde, 1 / (1 + math.exp(-c)))
        b_in = h_tilde / (1 + math.exp(c))
        hr, hs = torch.zeros_like(h_tilde[:, 0]), []
        for t in range(x.shape[1]):
            hr = a[:, t] * hr + b_in[:, t]
            hs.append(hr)
        ref = Stepped(torch.stack(hs, 1), hs, {}, a, b_in, h_tilde, {})
        tol = forward_bound(ref, xd, w, b, U32, loop_rel_a=4 * U64)
        for out in (h, u.h):
            assert ((out.double() - ref.h).abs() <= tol * ref.h).all(), (c, ((out - ref.h) / ref.h).max())


def test_minlstm_normalised_gates_sum_to_one():
    """f′ + i′ = 1 (section 3.2.2): with f's and i's rows equal, f′ = i′ = ½ whatever x."""
    torch.manual_seed(0)
    layer = MinLSTMLayer(3, 4).double()
    with torch.no_grad():
        layer.linear.weight[4:8] = layer.linear.weight[:4]
        layer.linear.bias[4:8] = layer.linear.bias[:4]
    x = 3 * torch.randn(2, 10, 3, dtype=torch.float64)
    acts = layer.unroll(x, record=True).activations
    assert (acts["gain"] - 0.5).abs().max() <= 4 * U64
    assert (acts["gain_max"] - 0.5).abs().max() <= 4 * U64


# --- 6. it learns -----------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_it_learns_the_adding_task(arch):
    from core.config import TrainConfig
    from core.train import EvalRecord, ProbeRecord, Trainer

    t = Trainer(TrainConfig(arch=arch, task="adding", seq_len=10, hidden_size=16, batch_size=32,
                            steps=450, lr=0.01, eval_every=150, eval_size=256, probe_every=150))
    recs = list(t.run())
    evals = [r.loss for r in recs if isinstance(r, EvalRecord)]
    assert any(isinstance(r, ProbeRecord) for r in recs)
    # Baseline: the best constant's MSE, 1/6. Measured (seed 0): 0.015 (minGRU), 0.029
    # (minLSTM) after 450 steps.
    assert evals[-1] < 0.3 * t.task.baseline_loss, evals

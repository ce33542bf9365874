"""The LRU (core/modern/lru.py) against the paper's equations, stepped in real arithmetic.

Every comparison runs in float64 against a plain loop written here from the paper's
formulas (Orvieto et al. 2023, section 3 and appendix A), reading the layer's parameters
by name and calling none of its helpers. The loop holds the complex state x_t as pairs
(Re x, Im x) and advances them with the 2×2 rotation-scaling matrix
|λ|·[[cos θ, −sin θ], [sin θ, cos θ]], so it also checks the layer's complex arithmetic.

Tolerances are derived, never tuned: the unit roundoff u times the conditioning of the
computation, from the data of each test (:func:`state_bound`, :func:`output_bound`,
:func:`gradient_bound`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import torch

from core.cells import Scanned
from core.modern.lru import EncodedLRULayer, LRULayer, scan

U64 = 2.0**-53  # float64's unit roundoff
U32 = 2.0**-24  # float32's
B, T, N_IN, N = 3, 37, 4, 5  # T odd: the scan's padding path at several levels (37, 19, 5, 3)
GELU_SLOPE = 1.13  # max |GELU′(y)| = Φ(y) + yφ(y) ≤ 1.129 (at y ≈ 1.41)


@contextmanager
def float64_default():
    """Build layers in float64 from the start, so the init is not rounded to float32."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# --- the paper's equations, stepped in real arithmetic -----------------------------------


@dataclass
class Stepped:
    x: torch.Tensor  # (B, T, N, 2): (Re x_t, Im x_t)
    xs: list  # one (B, N, 2) graph node per step: every later use of x_t goes through it
    b: torch.Tensor  # (B, T, N, 2): γ ⊙ (B u_t)
    y: torch.Tensor  # (B, T, H): Re(C x_t) + D u_t
    g: torch.Tensor  # GELU(y)
    z: torch.Tensor  # (B, T, 2H): the GLU's Linear
    out: torch.Tensor  # (B, T, H)
    mod: torch.Tensor  # |λ| (N,)


def params_of(layer, requires_grad=False):
    return {k: v.detach().clone().requires_grad_(requires_grad)
            for k, v in layer.named_parameters()}


def stepped(p, u, inject=None):
    """The LRU one step at a time from the paper's formulas, x_0 = 0.

    ``inject`` maps (b, t, k) to δ added to component k of h_t = [Re x_t, Im x_t] (k < N:
    Re x_t[k], else Im x_t[k − N]): the finite differences' perturbation ε·e_k, inside
    the loop, so it reaches the loss through every later step.
    """
    inject = inject or {}
    n = p["nu_log"].shape[0]
    mod = torch.exp(-torch.exp(p["nu_log"]))  # |λ| = exp(−exp(ν))
    th = torch.exp(p["theta_log"])  # θ = exp(θ_log)
    c, s = torch.cos(th), torch.sin(th)
    R = mod[:, None, None] * torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    gamma = torch.exp(p["gamma_log"])  # γ = exp(γ_log)
    bu = torch.stack([torch.einsum("btk,nk->btn", u, p["B_re"]),
                      torch.einsum("btk,nk->btn", u, p["B_im"])], -1) * gamma[:, None]
    x = u.new_zeros(u.shape[0], n, 2)
    xs = []
    for t in range(u.shape[1]):
        x = torch.einsum("nij,bnj->bni", R, x) + bu[:, t]  # x_t = λ x_{t−1} + γ B u_t, as 2×2
        for (bb, tt, k), d in inject.items():
            if tt == t:
                e = torch.zeros_like(x)
                e[bb, k % n, k // n] = d
                x = x + e
        xs.append(x)
    X = torch.stack(xs, 1)
    y = (torch.einsum("btn,hn->bth", X[..., 0], p["C_re"])  # Re(C x) = C_re Re x − C_im Im x
         - torch.einsum("btn,hn->bth", X[..., 1], p["C_im"])
         + torch.einsum("btk,hk->bth", u, p["D"]))  # + D u_t
    g = 0.5 * y * (1.0 + torch.erf(y / math.sqrt(2.0)))  # GELU (exact, erf form)
    z = torch.einsum("bth,jh->btj", g, p["glu.weight"]) + p["glu.bias"]
    H = y.shape[-1]
    out = z[..., :H] / (1.0 + torch.exp(-z[..., H:]))  # GLU: a ⊙ σ(b)
    return Stepped(X, xs, bu, y, g, z, out, mod)


def make(seed=0, T_=T, **kw):
    torch.manual_seed(seed)
    with float64_default():
        layer = LRULayer(N_IN, N, **kw)
    u = torch.randn(B, T_, N_IN, dtype=torch.float64)
    return layer, u


# --- tolerances --------------------------------------------------------------------------


def state_bound(ref: Stepped, p, u, uu=U64):
    """Bound on |x_t − x_t(ref)| (per unit, modulus), (B, T, N).

    S_t = Σ_{s≤t} |λ|^{t−s} |b_s| bounds |x_t| and every partial sum either form makes.
    * b_t: a dot product of n_in terms and a product by γ on each side: ≤ (n_in + 2)u·P,
      P = γ|B||u|, so the two forms' b differ by ≤ 2(n_in + 2)u·P, carried with gain |λ| ≤ 1:
      2(n_in + 2)u·S^P_t (S^P the same sum over P).
    * λ on each side: exp(ν) within u relatively, so |λ| = exp(−exp(ν)) within
      (|log|λ|| + 1)u; θ = exp(θ_log) within θu ≤ 2πu in angle; cos, sin and the products
      within 4u: |dλ| ≤ (|log|λ|| + 2π + 5)u·|λ| per side, and x_t = Σ λ^j b_{t−j} moves
      by ≤ Σ j|λ|^{j−1}|dλ||b_{t−j}| ≤ (|log|λ|| + 12)u·S′_t, S′_t = Σ j|λ|^j|b_{t−j}|.
    * the loop: each step's 2×2 product and add, ≤ 4u(|λ||x_{t−1}| + |b_t|) ≤ 4u·S_t,
      carried with gain |λ|: ≤ 4u·(t + 1)·S_t.
    * the scan (at the layer's roundoff ``uu``): λ^{2^k} by k squarings (relative error
      ≤ 4u·2^k ≤ 4u·T), and each x_t a sum of ≤ 2⌈log₂ T⌉ + 2 rounded complex products
      (≤ 4u each) of partial sums bounded by S_t: ≤ uu·(4T + 8⌈log₂ T⌉ + 8)·S_t.
    """
    T_ = u.shape[1]
    rho = ref.mod
    b_abs = ref.b.norm(dim=-1)
    P = (torch.einsum("btk,nk->btn", u.abs(), p["B_re"].abs() + p["B_im"].abs())
         * torch.exp(p["gamma_log"]))
    S = torch.zeros_like(b_abs)
    SP = torch.zeros_like(b_abs)
    Sj = torch.zeros_like(b_abs)  # Σ j|λ|^j |b_{t−j}| by the recurrence Sj_t = ρ(Sj + S)_{t−1}
    for t in range(T_):
        prev = (S[:, t - 1], SP[:, t - 1], Sj[:, t - 1]) if t else (0.0, 0.0, 0.0)
        S[:, t] = rho * prev[0] + b_abs[:, t]
        SP[:, t] = rho * prev[1] + P[:, t]
        Sj[:, t] = rho * (prev[2] + prev[0])
    steps = torch.arange(1, T_ + 1, dtype=torch.float64)[None, :, None]
    levels = math.ceil(math.log2(max(T_, 2)))
    lam_err = (rho.log().abs() + 12) * (U64 + uu)  # both sides' |dλ|/|λ|
    return (2 * (u.shape[-1] + 2) * U64 * SP + lam_err * Sj + 4 * U64 * steps * S
            + uu * (4 * T_ + 8 * levels + 8) * S + 2 * (u.shape[-1] + 2) * uu * SP)


def output_bound(ref: Stepped, p, u, dx, uu=U64):
    """Bounds on the errors of y, g, z and out given the state error dx (B, T, N), by
    propagating it (a dict; "out" is what a forward test compares):

    * y = C_re Re x − C_im Im x + D u: dy ≤ (|C_re| + |C_im|)·dx + (2N + n_in + 1)uu·Y,
      Y = |C_re||Re x| + |C_im||Im x| + |D||u| (a dot product's rounding, either form);
    * g = GELU(y): dg ≤ 1.13·dy + 4uu·(|g| + |y|) (erf and three roundings);
    * z = W g + c: dz ≤ |W|·dg + (H + 1)uu·(|W||g| + |c|);
    * out = a·σ(b): dout ≤ σ(b)·da + |a|σ′(b)·db + 4uu·(|out| + |a|) (σ′ ≤ ¼).
    Each rounding term is counted for the layer's side at ``uu`` and once more at U64.
    """
    H = ref.y.shape[-1]
    C = p["C_re"].abs() + p["C_im"].abs()
    X = ref.x.abs()
    Y = (torch.einsum("btn,hn->bth", X[..., 0], p["C_re"].abs())
         + torch.einsum("btn,hn->bth", X[..., 1], p["C_im"].abs())
         + torch.einsum("btk,hk->bth", u.abs(), p["D"].abs()))
    r = uu + U64
    dy = torch.einsum("btn,hn->bth", dx, C) + (2 * N + u.shape[-1] + 1) * r * Y
    dg = GELU_SLOPE * dy + 4 * r * (ref.g.abs() + ref.y.abs())
    W = p["glu.weight"].abs()
    dz = torch.einsum("bth,jh->btj", dg, W) + (H + 1) * r * (
        torch.einsum("bth,jh->btj", ref.g.abs(), W) + p["glu.bias"].abs())
    a, bz = ref.z[..., :H], ref.z[..., H:]
    d_out = (torch.sigmoid(bz) * dz[..., :H] + a.abs() * 0.25 * dz[..., H:]
             + 4 * r * (ref.out.abs() + a.abs()))
    return {"x": dx, "y": dy, "g": dg, "z": dz, "out": d_out}


def readout(seed=1, H=N, T_=T):
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(H, dtype=torch.float64, generator=gen)
    c = torch.rand(T_, dtype=torch.float64, generator=gen) + 0.5
    return r, c


def loss_of(out, r, c):
    """ℓ = ½ Σ_{b,t} c_t (r·o_{b,t})²: every step reaches the loss."""
    return 0.5 * (c[None, :] * (out @ r) ** 2).sum()


def adjoint(v, mod):
    """Σ_{s≥t} |λ|^{s−t} v_s: a reverse loop, the backward scan in absolute values."""
    out, acc = torch.zeros_like(v), torch.zeros_like(v[:, 0])
    for t in reversed(range(v.shape[1])):
        acc = v[:, t] + mod * acc
        out[:, t] = acc
    return out


def gradient_bound(ref: Stepped, p, r, c, d):
    """Sizes A (upper bounds of |∂ℓ/∂q|) and error bounds E of the backward pass's
    quantities, q = z, y and x (total), given the forward's error bounds ``d``
    (:func:`output_bound`). Returns {"A_z", "E_z", "A_y", "E_y", "G", "E_x"}, G = A_x.

    The backward computes, transposed, what the forward did; each quantity's error is the
    error carried in from the one after it, plus its local derivative evaluated at a
    forward value that is itself off (a second derivative × that value's error), plus its
    own roundings (≤ u of the terms it combines, per term combined):

    * o: ∂ℓ/∂o = c_t (r·o) r: A_o = c_t(|r|·|o|)|r|, E_o = c_t(|r|·d_out)|r| + (H + 2)u·A_o;
    * z = (a, b): ∂ℓ/∂a = ∂ℓ/∂o σ(b), ∂ℓ/∂b = ∂ℓ/∂o a σ′(b) (σ′ ≤ ¼, |σ″| ≤ 0.1):
      E_a = E_o σ(b) + A_o d_b/4, E_b = E_o|a|/4 + A_o(d_a/4 + 0.1|a| d_b), + 4u·A_z;
    * g: |W|ᵀE_z + 2H u·|W|ᵀA_z;  y: ×GELU′ (≤ 1.13; |GELU″| ≤ 2φ(0) < 0.8):
      1.13 E_g + 0.8 A_g d_y + 4u·A_y;
    * x direct: (|C_re| + |C_im|)ᵀ(E_y + H u·A_y); total: the reverse scan of that, plus
      the scan's own roundings (4T + 8⌈log₂ T⌉ + 8)u·G, G the reverse scan of the sizes.
    """
    H = ref.y.shape[-1]
    a, bz = ref.z[..., :H], ref.z[..., H:]
    sig = torch.sigmoid(bz)
    A_o = c[None, :, None] * (ref.out.abs() @ r.abs())[..., None] * r.abs()
    E_o = c[None, :, None] * (d["out"] @ r.abs())[..., None] * r.abs() + (H + 2) * U64 * A_o
    A_z = torch.cat([A_o * sig, A_o * a.abs() * 0.25], -1)
    d_a, d_b = d["z"][..., :H], d["z"][..., H:]
    E_z = torch.cat([E_o * sig + A_o * d_b / 4,
                     E_o * a.abs() / 4 + A_o * (d_a / 4 + 0.1 * a.abs() * d_b)], -1)
    E_z = E_z + 4 * U64 * A_z
    W = p["glu.weight"].abs()
    A_g = torch.einsum("btj,jh->bth", A_z, W)
    E_g = torch.einsum("btj,jh->bth", E_z, W) + 2 * H * U64 * A_g
    A_y = GELU_SLOPE * A_g
    E_y = GELU_SLOPE * E_g + 0.8 * A_g * d["y"] + 4 * U64 * A_y
    C = p["C_re"].abs() + p["C_im"].abs()
    G = adjoint(torch.einsum("bth,hn->btn", A_y, C), ref.mod)
    T_ = G.shape[1]
    levels = math.ceil(math.log2(max(T_, 2)))
    E_x = (adjoint(torch.einsum("bth,hn->btn", E_y + H * U64 * A_y, C), ref.mod)
           + (4 * T_ + 8 * levels + 8) * U64 * G)
    return {"A_z": A_z, "E_z": E_z, "A_y": A_y, "E_y": E_y, "G": G, "E_x": E_x}


def central_difference(fn, eps):
    return (fn(eps) - fn(-eps)) / (2 * eps)


# --- 1. forward --------------------------------------------------------------------------


def test_forward_equals_the_papers_equations_stepped_in_real_arithmetic():
    layer, u = make()
    p = params_of(layer)
    ref = stepped(p, u)
    dx = state_bound(ref, p, u)
    x = layer.unroll(u, record=True).states["h"].values  # [Re x, Im x]
    err_x = (torch.complex(x[..., :N], x[..., N:])
             - torch.complex(ref.x[..., 0], ref.x[..., 1])).abs()
    assert (err_x <= dx).all(), (err_x / dx).max()
    out = layer(u)
    assert out.shape == (B, T, N)
    assert ((out - ref.out).abs() <= output_bound(ref, p, u, dx)["out"]).all()


def test_forward_equals_unroll_h():
    layer, u = make(seed=3)
    # The same scan on the same data: the same numbers, bit for bit.
    assert torch.equal(layer(u), layer.unroll(u).h)
    assert torch.equal(layer(u), layer.unroll(u, record=True).h)


@pytest.mark.parametrize("T_", [1, 2, 3, 4, 5, 8, 31, 64, 100])
def test_complex_scan_equals_a_2x2_rotation_scaling_loop(T_):
    """scan(λ, b) for λ anywhere in the unit disk (small, near 1, negative, on the axes)
    against x_t = |λ|R(θ)x_{t−1} + b_t in real 2×2 arithmetic."""
    gen = torch.Generator().manual_seed(T_)
    mod = torch.tensor([0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 0.7, 0.95], dtype=torch.float64)
    th = torch.tensor([0.0, 1.0, math.pi, 0.5 * math.pi, 0.01, 3.0, 6.2, -2.0, 1e-4],
                      dtype=torch.float64)
    lam = torch.polar(mod, th)
    b = torch.randn(2, T_, len(mod), 2, dtype=torch.float64, generator=gen)
    R = mod[:, None, None] * torch.stack(
        [torch.stack([th.cos(), -th.sin()], -1), torch.stack([th.sin(), th.cos()], -1)], -2)
    x, xs = torch.zeros(2, len(mod), 2, dtype=torch.float64), []
    for t in range(T_):
        x = torch.einsum("nij,bnj->bni", R, x) + b[:, t]
        xs.append(x)
    ref = torch.stack(xs, 1)
    got = scan(lam, torch.complex(b[..., 0], b[..., 1]))
    # As state_bound with exact inputs: ≤ (4T + 8⌈log₂ T⌉ + 8 + 4(T + 1))u·S_t, S_t ≤ max|b|·t.
    S = b.norm(dim=-1).amax() * torch.arange(1, T_ + 1, dtype=torch.float64)[None, :, None]
    tol = (8 * T_ + 8 * math.ceil(math.log2(max(T_, 2))) + 12) * U64 * S
    assert ((got - torch.complex(ref[..., 0], ref[..., 1])).abs() <= tol).all()


def test_float32_forward_is_within_its_derived_bound_at_300_steps():
    """The training dtype at the lab's longest sequences, |λ| up to 0.999: the scan's
    float32 error stays within the same bound at u = 2⁻²⁴ (no growth beyond T·u)."""
    torch.manual_seed(0)
    layer = LRULayer(N_IN, N)  # float32
    u = torch.randn(B, 300, N_IN)
    p = {k: v.double() for k, v in params_of(layer).items()}  # the same values, exactly
    ref = stepped(p, u.double())
    dx = state_bound(ref, p, u.double(), uu=U32)
    out = layer(u).double()
    assert ((out - ref.out).abs() <= output_bound(ref, p, u.double(), dx, uu=U32)["out"]).all()


# --- 2. total derivatives ------------------------------------------------------------------


def _fd_points(gen, T_=T, n=8):
    """A few (b, t, k) with t spread over the sequence (first, last, in between), k over
    both halves of h = [Re x, Im x]."""
    ts = [0, T_ - 1] + torch.randint(1, T_ - 1, (n - 2,), generator=gen).tolist()
    ks = torch.randint(0, 2 * N, (n,), generator=gen).tolist()
    bs = torch.randint(0, B, (n,), generator=gen).tolist()
    return list(zip(bs, ts, ks))


def test_recorded_state_is_scanned_with_real_width_2n_and_no_gates():
    layer, u = make()
    rec = layer.unroll(u, record=True)
    assert set(rec.states) == {"h"} and rec.gates == {} and layer.gate_names == ()
    h = rec.states["h"]
    assert isinstance(h, Scanned)
    assert h.values.shape == h.totals.shape == (B, T, 2 * N)
    assert not h.values.is_complex() and not h.totals.is_complex()


def test_every_recorded_gradient_equals_a_finite_difference_inside_the_loop():
    layer, u = make()
    p = params_of(layer)
    r, c = readout()
    ref = stepped(p, u)
    d = output_bound(ref, p, u, state_bound(ref, p, u))
    d_out = d["out"]
    rec = layer.unroll(u, record=True)
    (g,) = torch.autograd.grad(loss_of(rec.h, r, c), [rec.states["h"].totals])
    # (B, T, N): per unit, bounding each of its (Re, Im) pair.
    tol_g = gradient_bound(ref, p, r, c, d)["E_x"]
    ell = loss_of(ref.out, r, c).item()
    # ℓ = ½Σ c_t(r·o)² over B·T terms of H products, o within d_out of exact:
    # |δℓ| ≤ Σ c_t|r·o|(|r|·d_out) + (B·T + H + 2)u·ℓ; a central difference of step ε is
    # off by ≤ |δℓ|/ε from rounding.
    d_ell = ((c[None, :] * (ref.out @ r).abs() * (d_out @ r.abs())).sum().item()
             + (B * T + N + 2) * U64 * ell)
    gen = torch.Generator().manual_seed(5)
    e = 0.02  # the third difference's step
    for pt in _fd_points(gen):
        bb, t, k = pt

        def fn(d, pt=pt):
            return loss_of(stepped(p, u, {pt: d}).out, r, c).item()

        # The state enters o linearly, then GELU and GLU: ℓ is smooth in δ. The central
        # difference's truncation ε²/6·ℓ‴ is estimated by the five-point third difference
        # at step e (×4 for ℓ‴'s change over the interval, plus that estimate's rounding
        # 3|δℓ|/e³).
        third = (fn(2 * e) - 2 * fn(e) + 2 * fn(-e) - fn(-2 * e)) / (2 * e**3)
        eps = 1e-4
        trunc = 4 * eps**2 / 6 * (abs(third) + 3 * d_ell / e**3)
        fd = central_difference(fn, eps)
        tol = tol_g[bb, t, k % N] + trunc + d_ell / eps
        assert abs(g[bb, t, k].item() - fd) <= tol, (pt, g[bb, t, k].item(), fd, tol)


def test_recorded_totals_equal_the_stepped_forms_per_step_gradients():
    """The whole (B, T, 2N) gradient, not a few points: the Scanned totals node against
    autograd through the stepped loop's own per-step nodes x_t."""
    layer, u = make(seed=2)
    r, c = readout()
    ref_g = stepped(params_of(layer, requires_grad=True), u)  # a graph through x_t
    ref_g = torch.autograd.grad(loss_of(ref_g.out, r, c), ref_g.xs)
    p = params_of(layer)
    ref = stepped(p, u)
    ref_g = torch.stack(ref_g, 1)  # (B, T, N, 2)
    d = output_bound(ref, p, u, state_bound(ref, p, u))
    rec = layer.unroll(u, record=True)
    (g,) = torch.autograd.grad(loss_of(rec.h, r, c), [rec.states["h"].totals])
    diff = torch.complex(g[..., :N], g[..., N:]) - torch.complex(ref_g[..., 0], ref_g[..., 1])
    # Both sides' errors: twice the bound on one (the loop's reverse accumulation rounds
    # ≤ 4(T + 1)u·G, within the scan's term).
    assert (diff.abs() <= 2 * gradient_bound(ref, p, r, c, d)["E_x"]).all()


def test_core_probe_reports_the_recorded_totals_norms():
    """core.probe.probe reads the Scanned state: its h profile is the batch-mean L2 norm of
    the same autograd gradients (the same float64 numbers, summed in another order:
    ≤ (2N + B + 4)u relative)."""
    from core.models import SequenceModel
    from core.probe import probe
    from core.tasks import AddingTask

    task = AddingTask(seq_len=T)
    torch.manual_seed(0)
    with float64_default():
        model = SequenceModel("lru", LRULayer(task.input_size, N), task.output_size)
    x, y = task.sample(B, torch.Generator().manual_seed(0))
    x = x.double()
    res = probe(model, task, x, y)
    out, rec = model.unroll(x, record=True)
    (g,) = torch.autograd.grad(task.loss(out, y).sum(), [rec.states["h"].totals])
    want = g.norm(dim=2).mean(0)
    got = torch.tensor(res.profile.query("quantity == 'h'").sort_values("t")["grad_norm"].values)
    assert torch.allclose(got, want, rtol=(2 * N + B + 4) * U64, atol=0)
    lam_mod = torch.exp(-torch.exp(model.recurrent.nu_log.detach()))
    assert abs(res.summary["mean_gain"] - lam_mod.mean().item()) <= 8 * U64
    assert set(res.activations["gate"]) == {"gain", "gain_max", "modulus"}


# --- 3. parameter gradients ---------------------------------------------------------------


def test_training_paths_parameter_gradients_equal_the_stepped_forms():
    """Every parameter's gradient (the scan's backward) against autograd through the loop.

    Each parameter gradient is a sum over (b, t) of terms (a gradient factor f) × (a
    forward value v); its error is ≤ Σ E_f|v| (the factor's error, :func:`gradient_bound`)
    + Σ A_f·d_v (the value's error) + (B·T + 8)u·Σ A_f|v| (the sum and the product):

    * glu.weight: f = ∂ℓ/∂z, v = g;  glu.bias: v = 1;  C_re, C_im: f = ∂ℓ/∂y, v = Re x,
      Im x;  D: v = u;  B_re, B_im: f = γ ∂ℓ/∂x, v = u;  γ_log: f = ∂ℓ/∂x, v = |b|;
    * ν_log, θ_log through λ: ∂ℓ/∂λ = Σ_t conj(∂ℓ/∂x_t)·x_{t−1} (the scan's own terms,
      Σ_j jλ^{j−1}b_{t−j}, have the same absolute sum Σ G_t S_{t−1}, S_t ≥ |x_t|), times
      |∂λ/∂ν_log| = exp(ν)|λ| and |∂λ/∂θ_log| = θ|λ|.
    Both sides err: the comparison allows twice the bound.
    """
    layer, u = make(seed=4)
    p = params_of(layer, requires_grad=True)
    r, c = readout()
    ref_out = stepped(p, u).out
    ref_grads = dict(zip(p, torch.autograd.grad(loss_of(ref_out, r, c), list(p.values()))))
    grads = dict(zip([k for k, _ in layer.named_parameters()],
                     torch.autograd.grad(loss_of(layer(u), r, c), list(layer.parameters()))))
    p = params_of(layer)
    ref = stepped(p, u)
    d = output_bound(ref, p, u, state_bound(ref, p, u))
    gb = gradient_bound(ref, p, r, c, d)
    e = (B * T + 8) * U64

    def tol_of(A, E, v, dv=None):
        t = torch.einsum("btm,btk->mk", E + e * A, v)
        return t if dv is None else t + torch.einsum("btm,btk->mk", A, dv)

    X = ref.x.abs()
    gamma = torch.exp(p["gamma_log"])
    ones = torch.ones_like(u[..., :1])
    dx, G, E_x = d["x"], gb["G"], gb["E_x"]
    S = X.norm(dim=-1) + dx  # ≥ |x_t|

    def prev(v):  # v_{t−1}, v_{−1} = 0
        return torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], 1)

    lam_terms = ((E_x + e * G) * prev(S)).sum((0, 1)) + (G * prev(dx)).sum((0, 1))
    b_abs = ref.b.norm(dim=-1)
    db = 2 * (N_IN + 2) * U64 * b_abs
    tol = {
        "glu.weight": tol_of(gb["A_z"], gb["E_z"], ref.g.abs(), d["g"]),
        "glu.bias": tol_of(gb["A_z"], gb["E_z"], ones)[:, 0],
        "C_re": tol_of(gb["A_y"], gb["E_y"], X[..., 0], dx),
        "C_im": tol_of(gb["A_y"], gb["E_y"], X[..., 1], dx),
        "D": tol_of(gb["A_y"], gb["E_y"], u.abs()),
        "B_re": tol_of(G * gamma, E_x * gamma, u.abs()),
        "B_im": tol_of(G * gamma, E_x * gamma, u.abs()),
        "gamma_log": ((E_x + e * G) * b_abs + G * db).sum((0, 1)),
        "nu_log": torch.exp(p["nu_log"]) * ref.mod * lam_terms,
        "theta_log": torch.exp(p["theta_log"]) * ref.mod * lam_terms,
    }
    assert set(tol) == set(grads)
    for name, g in grads.items():
        assert ((g - ref_grads[name]).abs() <= 2 * tol[name]).all(), (
            name, ((g - ref_grads[name]).abs() / tol[name]).max().item())


class _Unroll(torch.nn.Module):
    """The probe path as a module, so torch.func.functional_call can swap its parameters."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, u):
        return self.layer.unroll(u, record=True).h


@pytest.mark.parametrize("record", [False, True])
def test_gradcheck_on_a_tiny_layer(record):
    """torch's own check (its default tolerances) of both paths' Jacobians w.r.t. the input
    and every parameter."""
    torch.manual_seed(0)
    with float64_default():
        layer = LRULayer(2, 3)
    module, prefix = (_Unroll(layer), "layer.") if record else (layer, "")
    names = [prefix + k for k, _ in layer.named_parameters()]
    values = tuple(v.detach().clone().requires_grad_(True) for v in layer.parameters())
    u = torch.randn(2, 5, 2, dtype=torch.float64, requires_grad=True)

    def fn(u, *ps):
        return torch.func.functional_call(module, dict(zip(names, ps)), (u,))

    assert torch.autograd.gradcheck(fn, (u, *values))


# --- 4. activations -------------------------------------------------------------------------


def test_gain_gain_max_and_modulus_equal_their_definitions():
    layer, u = make(seed=6)
    p = params_of(layer)
    ref = stepped(p, u)
    acts = layer.unroll(u, record=True).activations
    mod = torch.exp(-torch.exp(p["nu_log"]))  # |λ|
    for k in ("gain", "gain_max", "modulus"):
        assert acts[k].shape == (T,)
    # |λ| here in two roundings; the layer's as |mod·(cos, sin)|: ≤ 8u apart, and the mean
    # of N of them adds ≤ Nu.
    assert (acts["gain"] - mod.mean()).abs().max() <= (8 + N) * U64
    assert (acts["gain_max"] - mod.max()).abs().max() <= 8 * U64
    modulus = ref.x.norm(dim=-1).mean((0, 2))  # mean over batch and units of |x_t|
    dx = state_bound(ref, p, u)
    tol = dx.mean((0, 2)) + (B * N + 4) * U64 * modulus
    assert ((acts["modulus"] - modulus).abs() <= tol).all()


# --- 5. init ---------------------------------------------------------------------------------


@pytest.mark.parametrize("r_min, r_max, max_phase", [(0.9, 0.999, 2 * math.pi),
                                                     (0.0, 0.99, math.pi / 10),
                                                     (0.5, 0.5, 1.0)])
def test_eigenvalues_start_uniform_on_the_ring_by_area(r_min, r_max, max_phase):
    """|λ|² ~ U[r_min², r_max²] (uniform on the ring's area) and arg λ ~ U(0, max_phase]:
    every value in range, and a Kolmogorov–Smirnov distance below its 0.1% critical value
    1.95/√n (the seed is fixed, so this is deterministic, not flaky)."""
    mods, phases = [], []
    for seed in range(8):  # 8 layers of 500 units: n = 4000 draws
        torch.manual_seed(seed)
        with float64_default():
            layer = LRULayer(2, 500, r_min=r_min, r_max=r_max, max_phase=max_phase)
        lam = layer.eigenvalues().detach()
        mod = torch.exp(-torch.exp(layer.nu_log.detach()))
        assert torch.allclose(lam.abs(), mod, rtol=8 * U64, atol=0)
        mods.append(mod)
        phases.append(torch.exp(layer.theta_log.detach()))
    mod, phase, n = torch.cat(mods), torch.cat(phases), 4000
    tol = 8 * U64
    assert (mod >= r_min - tol).all() and (mod <= r_max + tol).all()
    assert (phase > 0).all() and (phase <= max_phase * (1 + tol)).all()
    if r_max > r_min:
        for v, lo, hi in ((mod**2, r_min**2, r_max**2), (phase, 0.0, max_phase)):
            cdf = ((v.sort().values - lo) / (hi - lo)).clamp(0, 1)
            i = torch.arange(1, n + 1, dtype=torch.float64)
            ks = torch.maximum(i / n - cdf, cdf - (i - 1) / n).max().item()
            assert ks < 1.95 / math.sqrt(n), ks


def test_gamma_starts_at_sqrt_one_minus_modulus_squared():
    torch.manual_seed(0)
    with float64_default():
        layer = LRULayer(N_IN, 200)
    mod2 = torch.exp(-2 * torch.exp(layer.nu_log.detach()))  # |λ|²
    gamma = torch.exp(layer.gamma_log.detach())
    # 1 − |λ|² cancels: an error of ≤ 8u in |λ|² is ≤ 8u/(1 − |λ|²) relatively, halved by √.
    rel = 4 * U64 / (1 - mod2) + 8 * U64
    assert ((gamma - torch.sqrt(1 - mod2)).abs() <= rel * gamma).all()
    assert isinstance(layer.gamma_log, torch.nn.Parameter)  # trained freely, as the paper


def test_gamma_gives_every_unit_an_impulse_response_of_energy_one():
    """Why γ: x_t = λ^t γ for an impulse b_0 = γ, so Σ_t |x_t|² = γ²(1 − |λ|^{2T})/(1 − |λ|²)
    = 1 − |λ|^{2T} → 1 whatever |λ|: units near the unit circle do not blow the state up
    (white input of variance v gives a state of variance v)."""
    torch.manual_seed(0)
    with float64_default():
        layer = LRULayer(N_IN, 50, r_min=0.5, r_max=0.99)
    T_ = 4000
    lam = layer.eigenvalues().detach()
    gamma = torch.exp(layer.gamma_log.detach())
    b = torch.zeros(1, T_, 50, dtype=torch.complex128)
    b[0, 0] = gamma
    energy = (scan(lam, b).abs() ** 2).sum(1)[0]
    want = 1 - lam.abs() ** (2 * T_)
    # T terms of relative error ≤ (8T + 8⌈log₂ T⌉ + 12)u (the scan's bound) each, and γ's.
    tol = 2 * (8 * T_ + 8 * 12 + 12) * U64 + 8 * U64 / (1 - lam.abs() ** 2)
    assert ((energy - want).abs() <= tol).all()


def test_projections_have_the_papers_glorot_like_variances():
    """B_re, B_im ~ N(0, 1/(2·n_in)), C_re, C_im ~ N(0, 1/N), D ~ N(0, 1/n_in): sample
    variances within 5 standard errors (√(2/n) relative) of the law."""
    torch.manual_seed(0)
    n_in, n = 8, 600
    with float64_default():
        layer = LRULayer(n_in, n)
    for w, var in ((layer.B_re, 1 / (2 * n_in)), (layer.B_im, 1 / (2 * n_in)),
                   (layer.C_re, 1 / n), (layer.C_im, 1 / n), (layer.D, 1 / n_in)):
        w = w.detach()
        assert abs(w.pow(2).mean().item() / var - 1) < 5 * math.sqrt(2 / w.numel())
        assert abs(w.mean().item()) < 5 * math.sqrt(var / w.numel())


def test_init_is_finite_for_r_min_zero_and_bad_rings_are_refused():
    torch.manual_seed(0)
    layer = LRULayer(3, 64, r_min=0.0, r_max=0.5)
    assert all(torch.isfinite(v).all() for v in layer.parameters())
    for kw in ({"r_max": 1.0}, {"r_min": 0.99, "r_max": 0.9}, {"r_min": -0.1},
               {"max_phase": 0.0}, {"r_min": 0.0, "r_max": 0.0}):
        with pytest.raises(ValueError):
            LRULayer(3, 4, **kw)


def test_layer_contract_and_registry():
    from core.archspec import layer_class, spec
    from core.models import build_model

    s = spec("lru")
    assert layer_class("lru") is EncodedLRULayer
    m = build_model("lru", 3, 16, 2)
    assert isinstance(m.recurrent.lru, LRULayer) and m.recurrent.hidden_size == 16
    assert m.recurrent.uses_fused is False and m.recurrent.gate_names == s.gates
    u = m.recurrent.unroll(torch.randn(2, 7, 3), record=True)
    assert tuple(u.states) == s.states and s.carry in u.activations
    assert m(torch.randn(2, 7, 3)).shape == (2, 7, 2)


def test_the_encoded_layer_is_the_lru_on_the_encoders_gelu_output():
    # The registered layer: v_t = GELU(W_e u_t + b_e), then LRULayer(H, H) on v. Checked
    # against the two applied by hand, and its sequential form against its scan (float64:
    # the scan's and the loop's sums differ by rounding only, ~T ulps of the state).
    torch.manual_seed(3)
    layer = EncodedLRULayer(3, 8).double()
    u = torch.randn(4, 30, 3, dtype=torch.float64)
    v = torch.nn.functional.gelu(u @ layer.encoder.weight.T + layer.encoder.bias)
    assert torch.equal(layer(u), layer.lru(v))
    assert torch.equal(layer.unroll(u).h, layer(u))
    assert torch.allclose(layer.sequential(u), layer(u), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="expected input"):
        layer(torch.randn(4, 30, 5, dtype=torch.float64))


# --- 6. it learns ------------------------------------------------------------------------------


def test_it_learns_the_recall_task():
    from core.config import TrainConfig
    from core.train import EvalRecord, ProbeRecord, Trainer

    t = Trainer(TrainConfig(arch="lru", task="recall", seq_len=50, hidden_size=32,
                            batch_size=32, steps=250, lr=3e-3, eval_every=125, eval_size=256,
                            probe_every=125))
    recs = list(t.run())
    evals = [r.loss for r in recs if isinstance(r, EvalRecord)]
    assert any(isinstance(r, ProbeRecord) for r in recs)
    # Baseline: log 8 = 2.08 (chance). Measured (seed 0): 0.005 after 250 steps.
    assert evals[-1] < 0.25 * t.task.baseline_loss, evals


def test_explain_jacobian_of_the_state_is_the_rotation_scaling_power():
    """∂h_{T−1}/∂h_t (core.explain.jacobians, through the Scanned totals) is, unit by unit,
    the 2×2 block |λ|^k R(kθ), k = T − 1 − t: the linear recurrence's exact Jacobian.
    Each entry is one autograd path of ≤ 2⌈log₂ T⌉ + 2 complex products of powers of λ
    (each power within 4u·2^j of exact, ≤ 4uT): ≤ (8T + 8)u apart from cos/sin here."""
    from core.explain.jacobians import state_jacobians
    from core.models import SequenceModel

    layer, u = make(seed=7, T_=20)
    model = SequenceModel("lru", layer, 1)
    J = state_jacobians(model, u)[("h", "h")]  # (T, B, 2N, 2N)
    mod = torch.exp(-torch.exp(layer.nu_log.detach()))
    th = torch.exp(layer.theta_log.detach())
    k = torch.arange(19, -1, -1, dtype=torch.float64)[:, None]  # T − 1 − t
    pk, ck, sk = mod**k, torch.cos(k * th), torch.sin(k * th)
    want = torch.zeros(20, 2 * N, 2 * N, dtype=torch.float64)
    n = torch.arange(N)
    want[:, n, n] = pk * ck  # ∂Re x_{T−1}/∂Re x_t
    want[:, n, n + N] = -pk * sk  # ∂Re/∂Im
    want[:, n + N, n] = pk * sk  # ∂Im/∂Re
    want[:, n + N, n + N] = pk * ck  # ∂Im/∂Im
    tol = (8 * 20 + 8) * U64 + 4 * U64 * k.max().item() * th.max().item()  # + kθ's rounding
    assert ((J - want[:, None]).abs() <= tol).all()

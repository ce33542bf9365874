"""sLSTM (core/modern/slstm.py) against the xLSTM paper's equations written out here.

The reference loop below is independent of the layer's code: it reads W, R, b from the
layer, slices the gates by hand, takes log f = log(σ(f̃)) instead of logsigmoid, writes the
max with ``torch.where``, and treats the first step as the NX-AI reference code does
(m_1 = ĩ_1 because n_0 = 0) instead of the layer's m_0 = −∞.

Tolerances. float64 rounding is u = 2⁻⁵³ ≈ 1.1e-16 per operation (EPS below is 2u); a
step does ~20 operations and the per-step gains of these small layers (f′ ≤ 1, tanh′ ≤ 1,
σ′ ≤ 1/4, |R| ≲ 1) keep the error from growing much over T steps, so two orders of the
same equations agree to ~20·T·EPS relative: each bound below is that times a stated margin.
"""

from __future__ import annotations

import math

import pytest
import torch

from core.modern.slstm import SLSTMLayer, powerlaw_forget_bias

EPS = torch.finfo(torch.float64).eps  # 2.2e-16
F64 = torch.float64


def _layer(n_in=3, H=4, seed=0, r_scale=0.6, dtype=F64):
    """A layer with every parameter random (R ≠ 0, biases spread), so all paths are live."""
    torch.manual_seed(seed)
    layer = SLSTMLayer(n_in, H).to(dtype)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        layer.weight_ih.copy_(torch.randn(4 * H, n_in, generator=g, dtype=F64))
        layer.weight_hh.copy_(r_scale * torch.randn(4 * H, H, generator=g, dtype=F64))
        layer.bias.copy_(torch.randn(4 * H, generator=g, dtype=F64))
        layer.bias[H : 2 * H] += 1.5  # some units carry (forget branch), some are overwritten
    return layer


def _x(B=3, T=8, n_in=3, seed=5, dtype=F64):
    return torch.randn(B, T, n_in, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def reference(W, R, b, x, inject=None, stabilise=True):
    """The paper's sLSTM, step by step. ``inject``: {(quantity, t): (B, H) tensor} added to
    that quantity right after it is computed, before any use of it (the probe's q_t).
    Returns h (B, T, H) and the per-step lists of every quantity, f′ included."""
    inject = inject or {}
    B, T, _ = x.shape
    H = R.shape[1]
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    n = x.new_zeros(B, H)
    m = x.new_zeros(B, H)
    rec = {q: [] for q in ("h", "c", "n", "m", "i", "f", "z", "o", "ip", "fp", "og")}

    def put(q, t, v):
        v = v + inject[(q, t)] if (q, t) in inject else v
        rec[q].append(v)
        return v

    for t in range(T):
        pre = x[:, t] @ W.T + h @ R.T + b  # W x_t + R h_{t−1} + b
        ii = put("i", t, pre[:, 0:H])
        ff = put("f", t, pre[:, H : 2 * H])
        zz = put("z", t, pre[:, 2 * H : 3 * H])
        oo = put("o", t, pre[:, 3 * H : 4 * H])
        z, o = torch.tanh(zz), torch.sigmoid(oo)
        if stabilise:
            log_f = torch.log(torch.sigmoid(ff))
            if t == 0:
                m_new = ii  # the reference: n_0 = 0 ⇒ m_1 = log i_1
            else:
                m_new = torch.where(log_f + m > ii, log_f + m, ii)  # max(log f + m_{t−1}, log i)
            m_new = put("m", t, m_new)
            ip = torch.exp(ii - m_new)  # i′
            # f′ = exp(log f + m_{t−1} − m_t); at t = 0 nothing is carried (c_0 = n_0 = 0): 0
            fp = torch.zeros_like(ii) if t == 0 else torch.exp(log_f + m - m_new)
            m = m_new
        else:
            ip, fp = torch.exp(ii), torch.sigmoid(ff)  # i = exp(ĩ), f = σ(f̃)
        c = put("c", t, fp * c + ip * z)
        n = put("n", t, fp * n + ip)
        h = put("h", t, o * c / n)
        rec["ip"].append(ip)
        rec["fp"].append(fp)
        rec["og"].append(o)
    return torch.stack(rec["h"], 1), rec


def _ref(layer, x, **kw):
    return reference(layer.weight_ih, layer.weight_hh, layer.bias, x, **kw)


# --- 1. forward = the paper's equations; forward = unroll ------------------------------


def test_forward_equals_the_papers_equations_and_unroll():
    layer, x = _layer(), _x()
    with torch.no_grad():
        h_ref, _ = _ref(layer, x)
        h = layer(x)
        u = layer.unroll(x, record=True)
    # ~20 ops × T = 8 steps × EPS ≈ 3.5e-14 relative; 30x margin. |h| < 1 (|c/n| ≤ max |z|).
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(h, u.h)  # the same operations; the training path only detaches m
    assert torch.equal(layer.unroll(x).h, h)


def test_stabilised_form_equals_the_unstabilised_equations():
    """c/n without m (float64; exp(ĩ) stays far from overflow here): the stabiliser cancels."""
    layer, x = _layer(), _x(T=12)
    with torch.no_grad():
        h_naive, _ = _ref(layer, x, stabilise=False)
        h = layer(x)
    # The same 20·T·EPS ≈ 5e-14 bound as above, 20x margin.
    torch.testing.assert_close(h, h_naive, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("i_bias", [100.0, -120.0])
def test_stabilised_float32_stays_finite_where_the_naive_form_overflows(i_bias):
    """ĩ ≈ 100: exp(ĩ) overflows float32 (largest finite exp argument ln(3.4e38) = 88.7);
    ĩ ≈ −120: exp(ĩ) underflows to 0 (smallest subnormal 1.4e-45 = e^−103.3), so the naive
    c̄/n̄ is ∞/∞ or 0/0. (ĩ = 80 would not show it: e^80 = 5.5e34 is finite in float32.)"""
    layer, x = _layer(), _x()
    with torch.no_grad():
        layer.bias[: layer.hidden_size] = i_bias
        layer.weight_ih[: layer.hidden_size] *= 0.1  # ĩ within ±a few of the bias
    l32, x32 = _layer(dtype=torch.float32), x.float()
    l32.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    with torch.no_grad():
        h_naive32, _ = _ref(l32, x32, stabilise=False)
        h32 = l32(x32)
        h64, _ = _ref(layer, x, stabilise=False)  # float64's exp reaches 709: exact reference
    assert not torch.isfinite(h_naive32).all()
    assert torch.isfinite(h32).all()
    # float32, u = 6e-8: the conditioning is |ĩ| ≈ 100, since exp(ĩ − m) turns ĩ's absolute
    # rounding u·|ĩ| ≈ 6e-6 into a relative error of that size in i′ (and W, b, x were rounded
    # to float32 too); |h| < 1 (o times a weighted mean of z). Measured 3e-6; bound 1e-4.
    torch.testing.assert_close(h32.double(), h64, rtol=1e-4, atol=1e-4)


# --- 2. the probe's total derivatives = finite differences of the reference -------------

QUANTITIES = ("h", "c", "n", "m", "i", "f", "z", "o")


def _readout_loss(h, A):
    return ((h @ A) ** 2).sum()  # sum of squares of a readout at every step


def test_recorded_gradients_are_total_derivatives():
    layer, x = _layer(), _x()
    B, T, H = x.shape[0], x.shape[1], layer.hidden_size
    A = torch.randn(H, 2, generator=torch.Generator().manual_seed(9), dtype=F64)
    u = layer.unroll(x, record=True)
    nodes = {**u.states, **u.gates}
    assert set(nodes) == set(QUANTITIES)
    grads = dict(zip(QUANTITIES, [torch.autograd.grad(_readout_loss(u.h, A), nodes[q],
                                                      retain_graph=True) for q in QUANTITIES]))
    with torch.no_grad():
        _, rec = _ref(layer, x)
        loss = float(_readout_loss(torch.stack(rec["h"], 1), A))
        # The max must not sit on its kink within the perturbation (else FD differs).
        logf_m = [torch.log(torch.sigmoid(rec["f"][t])) + rec["m"][t - 1] for t in range(1, T)]
        assert min(float((a - rec["i"][t + 1]).abs().min()) for t, a in enumerate(logf_m)) > 1e-3

    eps_fd = 1e-6
    # Central difference: truncation ε²/6·|ℓ‴| ~ 1e-12·|ℓ|; rounding ~ 20·T·EPS·|ℓ|/ε ≈
    # 4e-8·|ℓ|. Bound 1e-6·|ℓ|: 25x over the rounding estimate.
    tol = 1e-6 * abs(loss)
    for q in QUANTITIES:
        for t in (0, T // 2, T - 1):
            for b, k in ((0, 0), (B - 1, H - 1)):
                e = torch.zeros(B, H, dtype=F64)
                e[b, k] = eps_fd
                with torch.no_grad():
                    lp = _readout_loss(_ref(layer, x, inject={(q, t): e})[0], A)
                    lm = _readout_loss(_ref(layer, x, inject={(q, t): -e})[0], A)
                fd = float(lp - lm) / (2 * eps_fd)
                ad = float(grads[q][t][b, k])
                assert abs(fd - ad) <= tol, (q, t, b, k, fd, ad)


def test_m_total_derivative_is_zero_to_rounding():
    """h does not depend on m at all, so ∂ℓ/∂m_t is a sum of terms that cancel: of the size of
    ∂ℓ/∂c_t ⊙ c_t + ∂ℓ/∂n_t ⊙ n_t (what it cancels against) × rounding, ~20·T·EPS."""
    layer, x = _layer(), _x()
    u = layer.unroll(x, record=True)
    loss = (u.h ** 2).sum()
    gm = torch.autograd.grad(loss, u.states["m"], retain_graph=True)
    gc = torch.autograd.grad(loss, u.states["c"], retain_graph=True)
    gn = torch.autograd.grad(loss, u.states["n"])
    scale = max(float((a * c.detach()).abs().max() + (b * n.detach()).abs().max())
                for a, b, c, n in zip(gc, gn, u.states["c"], u.states["n"]))
    assert scale > 0.1
    assert max(float(g.abs().max()) for g in gm) <= 20 * x.shape[1] * EPS * scale * 10


def _probe_and_autograd():
    from core.models import build_model
    from core.probe import probe
    from core.tasks import make_task

    task = make_task("adding", 10)
    torch.manual_seed(0)
    model = build_model("slstm", task.input_size, 4, task.output_size).double()
    model.recurrent.load_state_dict(_layer(n_in=task.input_size, H=4).state_dict())
    x, y = task.sample(3, torch.Generator().manual_seed(2))
    x = x.double()
    res = probe(model, task, x, y)
    out, u = model.unroll(x, record=True)
    per_seq = task.loss(out, y).sum()
    want = {}
    for q, lst in {**u.states, **u.gates}.items():
        gs = torch.autograd.grad(per_seq, lst, retain_graph=True, allow_unused=True)
        want[q] = [0.0 if g is None else float(g.norm(dim=1).mean()) for g in gs]
    return res.profile, want


def test_core_probe_profile_is_the_norm_of_these_gradients():
    profile, want = _probe_and_autograd()
    assert set(profile.quantity) <= set(QUANTITIES)
    for q in set(profile.quantity):
        got = profile[profile.quantity == q].sort_values("t").grad_norm.to_numpy()
        # The same autograd graph run twice: equal up to the norm's rounding (~H·EPS).
        assert got == pytest.approx(want[q], rel=1e-12, abs=1e-14), q


def test_core_probe_reports_every_state_and_gate():
    """The state n shares its name with the GRU's gate block n; the probe must not split it."""
    profile, _ = _probe_and_autograd()
    assert set(profile.quantity) == set(QUANTITIES)


# --- 3. parameter gradients of the training path ---------------------------------------


def test_forward_parameter_gradients_equal_the_references():
    """forward holds m constant in backward; the reference differentiates through the max:
    the same gradients, because ∂ℓ/∂m_t = 0 in total."""
    layer, x = _layer(), _x()
    w = torch.randn(3, 8, 4, generator=torch.Generator().manual_seed(3), dtype=F64)
    g_ours = torch.autograd.grad((layer(x) * w).sum(), list(layer.parameters()))
    h_ref, _ = _ref(layer, x)
    g_ref = torch.autograd.grad((h_ref * w).sum(), list(layer.parameters()))
    for a, b in zip(g_ours, g_ref):
        # Sums of T·B terms each ~20·T·EPS relative, plus the m-path's cancelled terms in
        # the reference: ~1e-13 of the largest gradient; 100x margin.
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11 * float(b.abs().max()))


class _UnrollH(torch.nn.Module):
    """The probe's path as a module: x → unroll(x).h."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer.unroll(x).h


@pytest.mark.parametrize("path", ["forward", "unroll"])
def test_gradcheck_on_a_tiny_layer(path):
    layer = _layer(n_in=2, H=3)
    module = layer if path == "forward" else _UnrollH(layer)
    params = {k: p.detach().clone().requires_grad_() for k, p in module.named_parameters()}
    x = _x(B=2, T=4, n_in=2).requires_grad_()

    def fn(x, *ps):
        return torch.func.functional_call(module, dict(zip(params, ps)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params.values()))


# --- 4. the recorded activations ---------------------------------------------------------


def test_gain_and_activations_equal_their_definitions():
    layer, x = _layer(), _x()
    with torch.no_grad():
        u = layer.unroll(x, record=True)
        _, rec = _ref(layer, x)
    fp = torch.stack(rec["fp"])  # (T, B, H): f′_t, 0 at the first step
    expect = {
        "gain": fp.mean((1, 2)),  # mean over batch and units of ∂c_t/∂c_{t−1}'s direct term
        "gain_max": fp.mean(1).max(1).values,  # the most carrying unit's batch mean
        "f": fp.mean((1, 2)),
        "i": torch.stack(rec["ip"]).mean((1, 2)),
        "o": torch.stack(rec["og"]).mean((1, 2)),
    }
    assert set(u.activations) == set(expect)
    for k, v in expect.items():
        torch.testing.assert_close(u.activations[k], v, rtol=1e-12, atol=1e-14)
    assert float(u.activations["gain"][0]) == 0.0  # nothing carried into step 1
    assert (fp <= 1).all() and (fp > 0)[1:].all()


def test_forget_branch_gives_gain_exactly_one_and_n_at_least_one():
    layer, x = _layer(seed=3), _x(T=30)
    with torch.no_grad():
        u = layer.unroll(x, record=True)
        _, rec = _ref(layer, x)
    n = torch.stack(u.states["n"])
    assert (n >= 1).all()  # so h = o c / n needs no ε (module docstring's induction)
    fp = torch.stack(rec["fp"])[1:]
    m_prev = torch.stack(u.states["m"])[:-1]
    # log f_t + m_{t−1} with the layer's own operations (logsigmoid, then +), bit for bit:
    carried = torch.nn.functional.logsigmoid(torch.stack(u.gates["f"])[1:]) + m_prev
    forget_branch = carried > torch.stack(u.gates["i"])[1:]
    assert forget_branch.any() and (~forget_branch).any()
    # The layer's f′ on the forget branch: m_t is that very number, so exp(a − a) = 1 exactly.
    f_layer = torch.exp(carried - torch.stack(u.states["m"])[1:])
    assert (f_layer[forget_branch] == 1.0).all()
    assert (fp[~forget_branch] < 1).all()


# --- 5. init ---------------------------------------------------------------------------


def test_init_is_the_references_default():
    n_in, H = 16, 64
    torch.manual_seed(0)
    layer = SLSTMLayer(n_in, H)
    b = layer.bias.detach()
    assert (layer.weight_hh == 0).all()  # R = 0
    for rows in (slice(0, H), slice(2 * H, 3 * H), slice(3 * H, 4 * H)):
        assert (b[rows] == 0).all()  # b_i = b_z = b_o = 0
    bf = b[H : 2 * H].double()
    k = torch.arange(H, dtype=F64) / (H - 1)
    # float32 storage of values |b| ≤ 7: half an ulp is 4.8e-7.
    torch.testing.assert_close(bf, 5 - 12 * k ** 0.3, rtol=0, atol=1e-6)
    assert float(bf[0]) == 5.0 and abs(float(bf[-1]) + 7.0) < 1e-6
    assert (bf[1:] < bf[:-1]).all()
    # b_f > 0 only for k/(H−1) < (5/12)^(1/0.3) = 0.054: units 0..3 of 64.
    assert int((bf > 0).sum()) == int((k < (5 / 12) ** (1 / 0.3)).sum()) == 4
    # W ~ N(0, 2/(5 I)): 4096 draws, the sample std's relative s.d. is 1/√(2N) = 1.1%; 5 s.d.
    std = math.sqrt(2 / (5 * n_in))
    assert abs(float(layer.weight_ih.detach().std()) / std - 1) < 0.055
    assert abs(float(layer.weight_ih.detach().mean())) < 5 * std / math.sqrt(4 * H * n_in)
    assert float(powerlaw_forget_bias(1)[0]) == 5.0


def test_at_init_with_zero_input_the_gains_are_the_forget_gates():
    """x = 0 and R = 0: ĩ = 0 > log σ(b_f) + m_{t−1} (m stays 0), so every step takes the input
    branch and f′_t = σ(b_f) exactly: the powerlaw's gains σ(5) = 0.9933 … σ(−7) = 0.0009."""
    torch.manual_seed(0)
    layer = SLSTMLayer(2, 8).double()
    with torch.no_grad():
        u = layer.unroll(torch.zeros(2, 6, 2, dtype=F64), record=True)
    f = torch.sigmoid(layer.bias[8:16].detach())
    torch.testing.assert_close(u.activations["gain"][1:], f.mean().expand(5), rtol=1e-14, atol=0)
    torch.testing.assert_close(u.activations["gain_max"][1:], f.max().expand(5), rtol=1e-14,
                               atol=0)
    assert float(f.max()) == pytest.approx(1 / (1 + math.exp(-5)), rel=1e-15)


# --- 6. it learns ----------------------------------------------------------------------


def test_it_learns_the_adding_task():
    from core.config import TrainConfig
    from core.train import EvalRecord, Trainer

    cfg = TrainConfig(arch="slstm", task="adding", seq_len=20, hidden_size=32, steps=250,
                      lr=0.01, batch_size=32, probe_every=50, eval_every=250, eval_size=256,
                      seed=0)
    trainer = Trainer(cfg)
    evals = [r for r in trainer.run() if isinstance(r, EvalRecord)]
    assert trainer.status == "finished"
    # Measured: 0.0035 at step 250 (baseline 0.167, the loss of predicting the mean).
    assert evals[-1].loss < 0.25 * trainer.task.baseline_loss

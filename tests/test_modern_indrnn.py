"""IndRNN (core/modern/indrnn.py) against the paper's equations, written out here.

Li et al. 2018: a_t = W x_t + u ⊙ h_{t−1} + b, h_t = relu(a_t), |u| ≤ 2^{1/T}.

Every comparison is in float64 (unit roundoff u₆₄ = 2⁻⁵³ ≈ 1.1e-16). The tolerances say
where they come from: the number of roundings on the way × the size of what is summed.
The test weights are of order 1 (the init's W ~ N(0, 0.001²) would leave every h near
1e-3 and every comparison trivial) and u takes both signs, strictly inside the bound.
"""

from __future__ import annotations

import pytest
import torch

from core.cells import Scanned, graph_nodes, stack_gradients
from core.modern.indrnn import DEFAULT_T_MAX, IndRNNLayer, _Recurrence

D = torch.float64
U64 = 2.0**-53  # float64 unit roundoff
B, T, N_IN, H = 3, 12, 3, 5


def _layer(seed: int = 0, b: int = B, t: int = T, i: int = N_IN, h: int = H) -> IndRNNLayer:
    torch.manual_seed(seed)
    layer = IndRNNLayer(i, h, t_max=t).double()
    with torch.no_grad():
        layer.weight_ih.normal_(0.0, 1.0)
        layer.bias_ih.normal_(0.0, 0.5)
        layer.weight_hh.uniform_(-0.95, 0.95).mul_(layer.recurrent_max)
    return layer


def _x(seed: int = 1, b: int = B, t: int = T, i: int = N_IN) -> torch.Tensor:
    return torch.randn(b, t, i, dtype=D, generator=torch.Generator().manual_seed(seed))


def _params(layer: IndRNNLayer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """W, u, b read from the layer, as fresh leaves (the reference never calls the layer)."""
    return tuple(p.detach().clone().requires_grad_() for p in
                 (layer.weight_ih, layer.weight_hh, layer.bias_ih))


def paper_indrnn(x, W, u, b, inject=None):
    """The paper's recurrence, one step at a time: a_t = W x_t + u ⊙ h_{t−1} + b,
    h_t = relu(a_t). ``inject = (t, b, k, e)`` adds e to h_t[b, k] before step t + 1 and
    the output see it. Returns h (B, T, H) and a (B, T, H)."""
    h = torch.zeros(x.shape[0], W.shape[0], dtype=x.dtype)
    hs, pres = [], []
    for t in range(x.shape[1]):
        a = x[:, t] @ W.T + u * h + b  # a_t = W x_t + u ⊙ h_{t−1} + b
        h = torch.where(a > 0, a, torch.zeros_like(a))  # h_t = relu(a_t)
        if inject is not None and inject[0] == t:
            e = torch.zeros_like(h)
            e[inject[1], inject[2]] = inject[3]
            h = h + e
        hs.append(h)
        pres.append(a)
    return torch.stack(hs, 1), torch.stack(pres, 1)


def _readout(h_dim: int = H, out: int = 2) -> torch.Tensor:
    return torch.randn(h_dim, out, dtype=D, generator=torch.Generator().manual_seed(7))


def _loss(h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """ℓ = Σ_{b,t} ‖h_{b,t} R‖²: a sum of squares over a fixed readout."""
    return ((h @ r) ** 2).sum()


def _recorded_h_gradients(rec, loss: torch.Tensor) -> torch.Tensor:
    """∂ℓ/∂h_t for every t as the probe takes it (through the recorded graph nodes), (T, B, H)."""
    nodes = graph_nodes(rec.states["h"])
    return stack_gradients(rec.states["h"], list(torch.autograd.grad(loss, nodes)))


# --- 1. forward ---------------------------------------------------------------------------------


def test_forward_equals_the_papers_equations_stepped():
    layer, x = _layer(), _x()
    W, u, b = _params(layer)
    want, a = paper_indrnn(x, W, u, b)
    got = layer(x)
    # The same sums in another order (one matmul for all steps vs one per step): each
    # a_{t,k} has N_IN + 2 terms, each rounding ≤ u₆₄ of the running |sum|, and an earlier
    # error reaches step t multiplied by ∏|u| ≤ 2 (the bound). So |error| ≤ 2T(N_IN + 2)u₆₄ ×
    # max|terms| ≈ 1.3e-14 × max|a|; atol 1e-12 × max|a| leaves ~100x.
    scale = a.abs().max().item() + 1.0
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12 * scale)
    assert (want > 0).any() and (want == 0).any()  # both relu branches are exercised


def test_forward_equals_unroll_h_and_both_follow_the_modules_dtype():
    layer, x = _layer(), _x()
    assert torch.equal(layer(x), layer.unroll(x).h)  # the same operations in the same order
    assert torch.equal(layer(x), layer.unroll(x, record=True).h)
    f32 = layer.float()
    y = f32(x.float())
    assert y.dtype == torch.float32 and f32.unroll(x.float(), record=True).h.dtype == torch.float32


# --- 2. total derivatives against finite differences inside the loop ----------------------------

# (t, b, k): early, middle and last steps; relu-active units (an inactive unit's h_t = 0
# also has a well-defined total derivative, checked at the end of the list).
_POINTS = [(0, 0, 0), (3, 1, 2), (6, 2, 4), (9, 0, 1), (11, 1, 3)]


def test_recorded_h_gradients_equal_finite_differences_injected_in_the_loop():
    layer, x = _layer(), _x()
    r = _readout()
    rec = layer.unroll(x, record=True)
    assert set(rec.states) == {"h"} and rec.gates == {} and layer.gate_names == ()
    assert isinstance(rec.states["h"], Scanned)  # through the probe input z of the Function
    grads = _recorded_h_gradients(rec, _loss(rec.h, r))
    W, u, b = (p.detach() for p in _params(layer))
    _, a0 = paper_indrnn(x, W, u, b)
    points = _POINTS + [tuple(int(v) for v in (t_, b_, k_)) for t_, b_, k_ in
                        ((a0 <= 0).nonzero()[:2, [1, 0, 2]])]
    eps = 1e-4
    for t, bb, k in points:
        lp, ap = paper_indrnn(x, W, u, b, inject=(t, bb, k, eps))
        lm, am = paper_indrnn(x, W, u, b, inject=(t, bb, k, -eps))
        # No pre-activation changes sign under ±ε: inside one activation pattern h is
        # linear in the injected e and ℓ quadratic, so the central difference has no
        # truncation error, only rounding: each ℓ is a sum of positive terms computed to
        # ≲ 10T(N_IN + H)u₆₄ relative, so |error| ≲ 10T(N_IN + H)u₆₄ ℓ / ε ≈ 2e-11 ℓ.
        assert torch.equal(ap > 0, a0 > 0) and torch.equal(am > 0, a0 > 0)
        fd = (_loss(lp, r) - _loss(lm, r)) / (2 * eps)
        tol = 10 * T * (N_IN + H) * U64 * _loss(lp, r).item() / eps
        assert abs(grads[t][bb, k].item() - fd.item()) <= tol, (t, bb, k)


def test_core_probe_reports_the_norms_of_the_recorded_h_gradients():
    from core.models import build_model
    from core.probe import probe
    from core.tasks import make_task

    task = make_task("adding", T)
    torch.manual_seed(0)
    model = build_model("indrnn", task.input_size, H, task.output_size, t_max=task.steps)
    model.double()
    x, y = task.sample(B, torch.Generator().manual_seed(0))
    x = x.double()
    res = probe(model, task, x, y)
    out, rec = model.unroll(x, record=True)
    want = _recorded_h_gradients(rec, task.loss(out, y).sum()).norm(dim=2).mean(1)
    got = torch.tensor(res.profile.query("quantity == 'h'").sort_values("t")["grad_norm"].values)
    # The same graph differentiated twice: equal up to the order of a few sums (H terms).
    torch.testing.assert_close(got, want, rtol=10 * H * U64, atol=0)
    assert set(res.activations["gate"]) == {"gain", "gain_max"}


def _plain_autograd_h_gradients(x, W, u, b, r):
    """The old probe: the paper's loop with every h_t a graph node of its own, every later
    use of h_t going through it, and autograd's ∂ℓ/∂h_t (total) for each. Also G_t, the
    direct ∂ℓ/∂h_t (ℓ's own dependence on h_t, no later step)."""
    h = torch.zeros(x.shape[0], W.shape[0], dtype=x.dtype)
    hs = []
    for t in range(x.shape[1]):
        h = torch.relu(x[:, t] @ W.T + u * h + b)  # h_t = relu(W x_t + u ⊙ h_{t−1} + b)
        hs.append(h)
    total = torch.stack(torch.autograd.grad(_loss(torch.stack(hs, 1), r), hs))
    h_leaf = torch.stack(hs, 1).detach().requires_grad_()
    (direct,) = torch.autograd.grad(_loss(h_leaf, r), h_leaf)
    return total, direct.transpose(0, 1)


def test_recorded_totals_equal_plain_autograd_through_a_per_step_loop():
    layer, x = _layer(), _x()
    r = _readout()
    rec = layer.unroll(x, record=True)
    got = _recorded_h_gradients(rec, _loss(rec.h, r))
    want, direct = _plain_autograd_h_gradients(x, *_params(layer), r)
    # Both run δ_{t−1} = G_{t−1} + u ⊙ relu′(a_t) δ_t, in their own order: ≤ 2 roundings a
    # step, each ≤ u₆₄ of a term ≤ max|G| + max|δ|, and an error carried back to step t is
    # multiplied by ∏|u| ≤ 2 (the bound): |difference| ≤ 2 · 2 · 2T u₆₄ × that scale; ×10.
    scale = direct.abs().max().item() + want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=0, atol=10 * 8 * T * U64 * scale)
    assert (want != direct).any()  # later steps do contribute: the totals are not G


def test_the_probe_input_leaves_forward_bit_identical_and_the_training_path_without_it():
    layer, x = _layer(), _x()
    g = torch.nn.functional.linear(x, layer.weight_ih, layer.bias_ih).transpose(0, 1).contiguous()
    u = layer.weight_hh
    with torch.no_grad():
        plain = _Recurrence.apply(g, u)
        probed = _Recurrence.apply(g, u, torch.zeros_like(g))
    assert torch.equal(plain, probed)  # relu(a_t) + 0.0 is relu(a_t), bit for bit
    assert torch.equal(layer(x), layer.unroll(x, record=True).h)
    # The training path asks no δ_t of the backward: its graph has no z (2 inputs).
    assert len(layer(x).grad_fn.next_functions[0][0].next_functions) == 2


def test_the_functions_backward_gives_delta_for_any_probe_input():
    """gradcheck of the Function with a nonzero z: ∂ℓ/∂z_t = δ_t holds for every z, and the
    backward's relu′ is that of a_t, not of h_t = relu(a_t) + z_t."""
    gen = torch.Generator().manual_seed(11)
    g = torch.randn(5, 2, 3, dtype=D, generator=gen).requires_grad_()
    u = torch.empty(3, dtype=D).uniform_(-1.0, 1.0, generator=gen).requires_grad_()
    z = (0.5 * torch.randn(5, 2, 3, dtype=D, generator=gen)).requires_grad_()
    h, pres, hs = torch.zeros(2, 3, dtype=D), [], []
    for t in range(5):  # the pre-activations, to keep gradcheck's ε off the relu kink
        a = g[t].detach() + u.detach() * h
        h = torch.relu(a) + z[t].detach()
        pres.append(a)
        hs.append(h)
    a = torch.stack(pres)
    assert a.abs().min() > 1e-3 and (a < 0).any() and (h < 0).any()
    assert torch.autograd.gradcheck(_Recurrence.apply, (g, u, z))
    # and its values: h_t = relu(a_t) + z_t, the loop's above. Per step ≤ 3 roundings of
    # terms ≤ max|g| + max|z| + max|h|, carried on with |u| ≤ 1: ≤ 3T u₆₄ × that; ×10.
    with torch.no_grad():
        got = _Recurrence.apply(g, u, z)
    scale = g.abs().max().item() + z.abs().max().item() + torch.stack(hs).abs().max().item()
    torch.testing.assert_close(got, torch.stack(hs), rtol=0, atol=10 * 3 * 5 * U64 * scale)


# --- 3. parameter gradients -----------------------------------------------------------------------


def test_training_paths_parameter_gradients_equal_the_papers_loop():
    layer, x = _layer(), _x()
    r = _readout()
    W, u, b = _params(layer)
    h_ref, _ = paper_indrnn(x, W, u, b)
    want = torch.autograd.grad(_loss(h_ref, r), (W, u, b))
    got = torch.autograd.grad(_loss(layer(x), r), (layer.weight_ih, layer.weight_hh, layer.bias_ih))
    # Each gradient is a sum over (b, t) of backpropagated terms, each the product of at
    # most T factors of size ≤ 2 (∏|u|) computed to ≲ 2T(N_IN + 2)u₆₄ relative; summed over
    # B·T terms: |error| ≲ 2T(N_IN + 2)·B·T u₆₄ × max|term| ≈ 1e-12 relative to the scale.
    for g, w in zip(got, want):
        scale = w.abs().max().item() + 1.0
        torch.testing.assert_close(g, w, rtol=0, atol=1e-10 * scale)


class _Unroll(torch.nn.Module):
    """unroll(x, record=True).h as a module's forward, for torch.func.functional_call."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner.unroll(x, record=True).h


@pytest.mark.parametrize("path", ["forward", "unroll"])
def test_gradcheck_on_a_tiny_layer(path):
    layer = _layer(seed=3, t=4, i=2, h=3)
    x = _x(seed=4, b=2, t=4, i=2).requires_grad_()
    names = ("weight_ih", "weight_hh", "bias_ih")
    W, u, b = _params(layer)
    _, a = paper_indrnn(x.detach(), W.detach(), u.detach(), b.detach())
    # gradcheck's central differences (ε = 1e-6) must not cross a relu kink.
    assert a.abs().min() > 1e-3

    module = layer if path == "forward" else _Unroll(layer)
    prefix = "" if path == "forward" else "inner."

    def f(x_, W_, u_, b_):
        params = {prefix + n: p for n, p in zip(names, (W_, u_, b_))}
        return torch.func.functional_call(module, params, (x_,))

    assert torch.autograd.gradcheck(f, (x, W, u, b))


# --- 4. gain and gain_max ---------------------------------------------------------------------------


def test_gain_and_gain_max_are_the_per_step_jacobians_diagonal():
    layer, x = _layer(), _x()
    rec = layer.unroll(x, record=True)
    W, u, b = (p.detach() for p in _params(layer))
    h_ref, _ = paper_indrnn(x, W, u, b)
    gains, gain_maxes = [], []
    for t in range(T):
        h_prev = h_ref[:, t - 1] if t else torch.zeros(B, H, dtype=D)

        def step(hp, t=t):
            return torch.relu(x[:, t] @ W.T + u * hp + b)  # h_t as a function of h_{t−1}

        J = torch.autograd.functional.jacobian(step, h_prev)  # (B, H, B, H)
        d = torch.einsum("bkbk->bk", J)  # ∂h_{t,b,k}/∂h_{t−1,b,k}
        # Independent units: the Jacobian is diagonal (no other unit, no other sequence).
        assert torch.count_nonzero(J) == torch.count_nonzero(d)
        gains.append(d.mean())
        gain_maxes.append(d.mean(0).max())
    # Means of the same values (u_k or 0), in possibly another order: ≤ BH u₆₄ relative.
    torch.testing.assert_close(rec.activations["gain"], torch.stack(gains), rtol=B * H * U64, atol=0)
    torch.testing.assert_close(rec.activations["gain_max"], torch.stack(gain_maxes),
                               rtol=B * U64, atol=0)
    assert set(rec.activations) == {"gain", "gain_max"}


# --- 5. init and constraint ----------------------------------------------------------------------


def test_init_follows_the_reference_adding_script():
    torch.manual_seed(0)
    t_max, n_units, n_in = 50, 4000, 4
    layer = IndRNNLayer(n_in, n_units, t_max=t_max)
    assert layer.recurrent_max == 2.0 ** (1.0 / t_max)  # |u| ≤ 2^{1/T}
    u = layer.weight_hh.detach().double()
    lo, hi = 2.0 ** (-1.0 / t_max), 2.0 ** (1.0 / t_max)
    assert lo - 1e-7 <= u.min() and u.max() <= hi + 1e-7  # float32 storage of the ends
    assert (u ** t_max).min() > 0.5 - 1e-5 and (u ** t_max).max() < 2.0 + 1e-5
    # Uniform on (lo, hi): the Kolmogorov–Smirnov distance stays below 1.95/√n (the 0.1%
    # critical value), and the draw covers the band.
    s = ((u.sort().values - lo) / (hi - lo))
    cdf = torch.arange(1, n_units + 1, dtype=D) / n_units
    assert (s - cdf).abs().max() < 1.95 / n_units**0.5
    w = layer.weight_ih.detach().double()
    n = w.numel()
    # N(0, 0.001²): the sample mean within 5 standard errors, the sample std within 5
    # standard errors of a std (σ/√(2n)).
    assert abs(w.mean().item()) < 5 * 1e-3 / n**0.5
    assert abs(w.std().item() - 1e-3) < 5 * 1e-3 / (2 * n) ** 0.5
    assert torch.count_nonzero(layer.bias_ih) == 0
    assert IndRNNLayer(2, 3).t_max == DEFAULT_T_MAX
    with pytest.raises(ValueError):
        IndRNNLayer(2, 3, t_max=0)


def test_the_constraint_holds_in_every_forward_and_a_unit_at_the_bound_can_come_back():
    layer, x = _layer(), _x()
    m = layer.recurrent_max
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)  # steps ≫ the band's width
    for _ in range(20):  # push every u up: a loss that rewards long memory
        opt.zero_grad()
        (-layer(x).sum()).backward()
        opt.step()
        layer(x)  # the next forward projects u, as the reference clips after each update
        assert layer.weight_hh.abs().max().item() <= m
    at_bound = layer.weight_hh.detach() == m
    assert at_bound.any()
    before = layer.weight_hh.detach().clone()
    for _ in range(3):  # now reward forgetting: the units at the bound must be able to leave it
        opt.zero_grad()
        (layer(x) ** 2).sum().backward()
        assert (layer.weight_hh.grad[at_bound] != 0).all()  # not a dead clamp
        opt.step()
    layer(x)
    assert (layer.weight_hh.detach()[at_bound] < before[at_bound]).all()
    # A u set out of bounds by hand is projected by the next forward and by unroll.
    with torch.no_grad():
        layer.weight_hh.fill_(1.5)
    layer.unroll(x)
    assert torch.equal(layer.weight_hh.detach(), torch.full((H,), m, dtype=D))


# --- registry and model builder ---------------------------------------------------------------------


def test_the_registry_builds_it_with_the_tasks_steps_as_t_max():
    from core.archspec import layer_class, spec
    from core.config import TrainConfig
    from core.train import make_model

    s = spec("indrnn")
    assert layer_class("indrnn") is IndRNNLayer and s.derived == ("t_max",)
    cfg = TrainConfig(arch="indrnn", seq_len=37, hidden_size=6)
    task = cfg.make_task()
    model = make_model(cfg, task)
    assert isinstance(model.recurrent, IndRNNLayer)
    assert model.recurrent.t_max == task.steps
    assert model.recurrent.uses_fused is False and model.recurrent.gate_names == s.gates
    rec = model.recurrent.unroll(torch.randn(2, 7, task.input_size), record=True)
    assert tuple(rec.states) == s.states and s.carry in rec.activations


# --- 6. it learns -----------------------------------------------------------------------------------


def test_it_learns_the_recall_task():
    from core.config import TrainConfig
    from core.train import EvalRecord, ProbeRecord, Trainer

    t = Trainer(TrainConfig(arch="indrnn", task="recall", seq_len=50, hidden_size=32,
                            batch_size=32, steps=300, lr=3e-3, eval_every=150, eval_size=256,
                            probe_every=150))
    recs = list(t.run())
    evals = [r.loss for r in recs if isinstance(r, EvalRecord)]
    assert any(isinstance(r, ProbeRecord) for r in recs)
    # Baseline: log 8 = 2.08 (chance). Measured (seed 0): 1.03 after 300 steps.
    assert evals[-1] < 0.6 * t.task.baseline_loss, evals

"""The gradient probe (core/probe.py) against INDEPENDENT computations.

Definition under test: ``profile`` has columns t (0 = first step), quantity and
grad_norm, with

    grad_norm(t, q) = mean_b ‖∂ℓ_b/∂q_{t,b}‖₂      (L2 over hidden units)

ℓ_b = task.loss(outputs, y)[b], and the derivative *total* (the gradient that
reaches q_t through every later step). Quantities: h (every arch), c (LSTM
cell), i, f, g, o (LSTM gate pre-activations), r, z, n (GRU gate
pre-activations; n's is the argument of its tanh, r ⊙ (W_hn h + b_hn) included).

References used here never call core's unroll:

1. torch.nn's fused LSTM / GRU / RNN, same weights, stepped one step at a time
   with retain_grad() on every returned state; gate gradients derived in closed
   form from those state gradients.
2. Central finite differences run through the fused torch.nn module: perturb a
   state and continue from it, or perturb one step's pre-activation by running
   that step alone with a shifted input bias.
3. Hand-made profiles for vanishing_ratio / gradient_reach.
4. The mechanism the app shows (LSTM forget gate at init), with generous bounds,
   and the probe's parameter gradients against the fused forward's.

Everything runs in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from core.models import build_model
from core.probe import (
    REACH_THRESHOLD,
    gradient_profile,
    gradient_reach,
    probe,
    summarise,
    vanishing_ratio,
)
from core.tasks import make_task

# The brief's bound on relative error against an independent reference, all in float64.
# Against torch.nn stepped by hand: the same equations in another order, ~u₆₄·(small
# conditioning) ≈ 1e-15, far inside. Against central differences (EPS below): the
# truncation error is ~EPS²·|ℓ‴|/6 ≈ 1e-12 and the rounding error (|δℓ₊| + |δℓ₋|)/(2·EPS)
# ≈ c·u₆₄·|ℓ|/EPS ≈ 1e-10·c·|ℓ| per component (c: the loss evaluation's own condition
# number, ~1 for these 3-unit nets), which is large relative to a small gradient: worst
# measured 7.9e-6 and 3.0e-6 (∂ℓ/∂h_0 of the relu and tanh RNNs on adding, the smallest
# gradients checked), so REL leaves ≥ 12x; a wrong gradient is off by O(1).
REL = 1e-4

QUANTITIES = {
    "rnn_tanh": {"h"},
    "rnn_relu": {"h"},
    "lstm": {"h", "c", "i", "f", "g", "o"},
    "gru": {"h", "r", "z", "n"},
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: intra-op threads only add contention (10x slower on a
    busy 2-core box). Restored afterwards so other test modules are unaffected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



def _setup(arch, task_name, seq_len, hidden, batch, seed=0, **options):
    task = make_task(task_name, seq_len)
    torch.manual_seed(seed)
    model = build_model(arch, task.input_size, hidden, task.output_size, **options).double()
    x, y = task.sample(batch, torch.Generator().manual_seed(seed + 100))
    return model, task, x.double(), y


def _fused(model) -> nn.RNNBase:
    """A plain torch.nn module (not our subclass) holding the model's weights."""
    rec = model.recurrent
    if model.arch in ("rnn_tanh", "rnn_relu"):
        m = nn.RNN(rec.input_size, rec.hidden_size, nonlinearity=model.arch[4:], batch_first=True)
    elif model.arch == "lstm":
        m = nn.LSTM(rec.input_size, rec.hidden_size, batch_first=True)
    else:
        m = nn.GRU(rec.input_size, rec.hidden_size, batch_first=True)
    m = m.double()
    m.load_state_dict(rec.state_dict())
    assert type(m) in (nn.RNN, nn.LSTM, nn.GRU)
    return m


def _step(fused, x_t, state):
    """One fused step: x_t (B, 1, in), state h or (h, c) of shape (1, B, H)."""
    _, new_state = fused(x_t, state)
    return new_state


def _zero_state(fused, batch):
    z = torch.zeros(1, batch, fused.hidden_size, dtype=torch.float64)
    return (z, z.clone()) if isinstance(fused, nn.LSTM) else z


def _profile_dict(profile: pd.DataFrame) -> dict[tuple[int, str], float]:
    return {(int(r.t), r.quantity): float(r.grad_norm) for r in profile.itertuples()}


def _mean_norm(v: torch.Tensor) -> float:
    """mean over batch of the L2 norm over units; v is (B, width)."""
    return float(v.norm(dim=-1).mean())


def _assert_rel(ours, ref, what, rel=REL):
    ours, ref = float(ours), float(ref)
    scale = max(abs(ref), 1e-300)
    assert abs(ours - ref) <= rel * scale or (ours == 0.0 and ref == 0.0), (
        f"{what}: ours={ours!r} reference={ref!r} rel.err={abs(ours - ref) / scale:.3e}"
    )


def _assert_vec_rel(ours: torch.Tensor, ref: torch.Tensor, what, rel=REL):
    """Relative error of the whole vector: ‖ours − ref‖ ≤ rel · ‖ref‖."""
    err = (ours - ref).norm().item()
    scale = ref.norm().item()
    assert scale > 0, f"{what}: reference gradient is identically zero"
    assert err <= rel * scale, f"{what}: ‖ours−ref‖/‖ref‖ = {err / scale:.3e}\nours={ours}\nref={ref}"


# ------------------------------------------------ 1. torch.nn stepped one step at a time


def _torch_nn_stepwise_reference(model, task, x, y) -> dict[tuple[int, str], torch.Tensor]:
    """(t, quantity) → (B, H) total gradient ∂ℓ_b/∂q_{t,b}, from torch.nn alone."""
    fused = _fused(model)
    B, T, _ = x.shape
    H = fused.hidden_size
    is_lstm = isinstance(fused, nn.LSTM)
    state = _zero_state(fused, B)
    hs, cs = [], []
    for t in range(T):
        state = _step(fused, x[:, t : t + 1], state)
        if is_lstm:
            h, c = state
            h.retain_grad()
            c.retain_grad()
            hs.append(h)
            cs.append(c)
        else:
            state.retain_grad()
            hs.append(state)
    outputs = model.readout(torch.stack([h[0] for h in hs], 1))
    task.loss(outputs, y).sum().backward()

    def grad(v):  # a returned state nobody used afterwards (the last c) gets no .grad
        return torch.zeros_like(v[0]) if v.grad is None else v.grad[0]

    ref: dict[tuple[int, str], torch.Tensor] = {}
    w_ih, w_hh = fused.weight_ih_l0.detach(), fused.weight_hh_l0.detach()
    b_ih, b_hh = fused.bias_ih_l0.detach(), fused.bias_hh_l0.detach()
    zeros = torch.zeros(B, H, dtype=torch.float64)
    for t in range(T):
        dh = grad(hs[t])
        ref[(t, "h")] = dh
        h_prev = hs[t - 1][0].detach() if t else zeros
        x_t = x[:, t]
        if is_lstm:
            c_t = cs[t][0].detach()
            c_prev = cs[t - 1][0].detach() if t else zeros
            pre = x_t @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh
            pi, pf, pg, po = pre.chunk(4, 1)
            i, f, g, o = torch.sigmoid(pi), torch.sigmoid(pf), torch.tanh(pg), torch.sigmoid(po)
            tc = torch.tanh(c_t)
            # The fused kernel forms h_t = o ⊙ tanh(c_t) from its internal c_t, so the
            # returned c_t's .grad lacks the path through h_t: add it.
            dc = grad(cs[t]) + dh * o * (1 - tc**2)
            ref[(t, "c")] = dc
            ref[(t, "i")] = dc * g * i * (1 - i)
            ref[(t, "f")] = dc * c_prev * f * (1 - f)
            ref[(t, "g")] = dc * i * (1 - g**2)
            ref[(t, "o")] = dh * tc * o * (1 - o)
        elif isinstance(fused, nn.GRU):
            gi = x_t @ w_ih.T + b_ih
            hn_lin = h_prev @ w_hh[2 * H :].T + b_hh[2 * H :]
            rz_pre = gi[:, : 2 * H] + h_prev @ w_hh[: 2 * H].T + b_hh[: 2 * H]
            r, z = torch.sigmoid(rz_pre).chunk(2, 1)
            n = torch.tanh(gi[:, 2 * H :] + r * hn_lin)
            dn_pre = dh * (1 - z) * (1 - n**2)
            ref[(t, "n")] = dn_pre
            ref[(t, "z")] = dh * (h_prev - n) * z * (1 - z)
            ref[(t, "r")] = dn_pre * hn_lin * r * (1 - r)
    # The LSTM pitfall is real: the last returned c_t has no .grad at all.
    if is_lstm:
        assert cs[-1].grad is None
    return ref


CASES = [
    # (task, seq_len, hidden, batch, seed): adding = loss on the last step only,
    # copy = loss on every step (copy always has seq_len + 20 steps).
    ("adding", 8, 6, 3, 0),
    ("adding", 12, 5, 4, 1),
    ("copy", 1, 8, 3, 2),
]


def _check_against_stepwise(arch, task_name, seq_len, hidden, batch, seed):
    model, task, x, y = _setup(arch, task_name, seq_len, hidden, batch, seed)
    profile = gradient_profile(model, task, x, y)
    T = x.shape[1]

    assert list(profile.columns) == ["t", "quantity", "grad_norm"]
    assert set(profile["quantity"]) == QUANTITIES[arch]
    for q, rows in profile.groupby("quantity"):
        assert sorted(rows["t"]) == list(range(T)), q
    assert np.isfinite(profile["grad_norm"]).all()

    ref = _torch_nn_stepwise_reference(model, task, x, y)
    ours = _profile_dict(profile)
    assert set(ours) == set(ref)
    for key, g in ref.items():
        _assert_rel(ours[key], _mean_norm(g), f"{arch}/{task_name} t={key[0]} q={key[1]}")
    # The gradient is not trivially zero anywhere it should not be.
    assert ours[(T - 1, "h")] > 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-T{c[1]}-H{c[2]}")
def test_lstm_probe_matches_torch_nn_stepwise(case):
    _check_against_stepwise("lstm", *case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-T{c[1]}-H{c[2]}")
def test_gru_probe_matches_torch_nn_stepwise(case):
    _check_against_stepwise("gru", *case)


@pytest.mark.parametrize("arch", ["rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-T{c[1]}-H{c[2]}")
def test_rnn_probe_matches_torch_nn_stepwise(arch, case):
    _check_against_stepwise(arch, *case)


def test_lstm_cell_gradient_is_total_not_the_fused_partial():
    """At the last step c_T only acts through h_T: a probe reporting the fused
    module's c.grad (the partial) would show 0 there; the total is not 0."""
    model, task, x, y = _setup("lstm", "adding", 6, 5, 3)
    ours = _profile_dict(gradient_profile(model, task, x, y))
    assert ours[(5, "c")] > 1e-3 * ours[(5, "h")]


# ------------------------------------------------------------ 2. finite differences

EPS = 1e-6  # ≈ u₆₄^(1/3): balances central differences' truncation (EPS²) and rounding (u/EPS)


class _FusedRollout:
    """Per-sequence losses ℓ_b from the fused torch.nn module, with one intervention
    at step t. The unperturbed run is computed once; a perturbed run restarts at t."""

    def __init__(self, model, task, x, y):
        self.model, self.task, self.x, self.y = model, task, x, y
        self.fused = _fused(model)
        self.is_lstm = isinstance(self.fused, nn.LSTM)
        B, T, _ = x.shape
        with torch.no_grad():
            state = _zero_state(self.fused, B)
            self.before = []  # state entering step s
            self.h = []  # h_s of the unperturbed run, (B, H)
            for s in range(T):
                self.before.append(state)
                state = _step(self.fused, x[:, s : s + 1], state)
                self.h.append(state[0][0] if self.is_lstm else state[0])

    @torch.no_grad()
    def loss(self, t, state_in=None, state_out=None, bias_ih_shift=None):
        """ℓ (B,) with step t run from ``state_in`` (default: unperturbed), optionally
        with bias_ih shifted for that step only (= a shift of step t's gate
        pre-activations; for the GRU's n it lands outside r ⊙ (…)), and the state
        after step t replaced by ``state_out(state)`` (the readout at t sees it)."""
        fused, x = self.fused, self.x
        state = self.before[t] if state_in is None else state_in
        if bias_ih_shift is not None:
            fused.bias_ih_l0.add_(bias_ih_shift)
        try:
            state = _step(fused, x[:, t : t + 1], state)
        finally:
            if bias_ih_shift is not None:
                fused.bias_ih_l0.sub_(bias_ih_shift)
        if state_out is not None:
            state = state_out(state)
        hs = self.h[:t]
        for s in range(t, x.shape[1]):
            if s > t:
                state = _step(fused, x[:, s : s + 1], state)
            hs.append(state[0][0] if self.is_lstm else state[0])
        return self.task.loss(self.model.readout(torch.stack(hs, 1)), self.y)


def _central(fn, width):
    """(B, width) matrix of ∂ℓ_b/∂(component k) from fn(k, ±EPS) → ℓ (B,).

    Every sequence in the batch gets the same perturbation; since sequences do not
    interact, ℓ_b only sees its own and the column is ∂ℓ_b/∂q_{t,b,k}."""
    cols = [(fn(k, EPS) - fn(k, -EPS)) / (2 * EPS) for k in range(width)]
    return torch.stack(cols, 1)


def _fd_state_grad(run: _FusedRollout, t, which):
    """Total ∂ℓ_b/∂h_t (or ∂ℓ_b/∂c_t) by central differences through torch.nn."""
    H = run.fused.hidden_size

    if which == "h":

        def fn(k, e):
            def bump(state):
                if run.is_lstm:  # h_t moved, c_t held: exactly ∂ℓ/∂h_t
                    h, c = state
                    h = h.clone()
                    h[0, :, k] += e
                    return (h, c)
                state = state.clone()
                state[0, :, k] += e
                return state

            return run.loss(t, state_out=bump)

        return _central(fn, H)

    # which == "c": shift c_t by e·e_k *and* let the kernel recompute h_t from it.
    # c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t is affine in c_{t−1} with slope f_t (and no
    # gate depends on c_{t−1}), so feeding c_{t−1} + e·e_k / f_t into step t moves
    # c_t by exactly e·e_k, and h_t = o_t ⊙ tanh(c_t) follows inside the kernel.
    assert run.is_lstm
    fused = run.fused
    h_prev, c_prev = run.before[t]
    with torch.no_grad():
        pre = (
            run.x[:, t] @ fused.weight_ih_l0.T + fused.bias_ih_l0
            + h_prev[0] @ fused.weight_hh_l0.T + fused.bias_hh_l0
        )
        f_t = torch.sigmoid(pre[:, H : 2 * H])  # (B, H)

    def fn(k, e):
        c_in = c_prev.clone()
        c_in[0, :, k] += e / f_t[:, k]
        return run.loss(t, state_in=(h_prev, c_in))

    return _central(fn, H)


def _fd_gate_grad(run: _FusedRollout, t):
    """∂ℓ_b/∂(pre-activations of step t), all gate rows, via a bias shift at step t."""
    width = run.fused.bias_ih_l0.shape[0]

    def fn(k, e):
        shift = torch.zeros(width, dtype=torch.float64)
        shift[k] = e
        return run.loss(t, bias_ih_shift=shift)

    return _central(fn, width)


def _our_vectors(model, task, x, y):
    """Per-component gradients from our unroll's recorded graph nodes."""
    out, u = model.unroll(x, record=True)
    per_seq = task.loss(out, y)
    names, nodes = [], []
    for name, lst in list(u.states.items()) + list(u.gates.items()):
        names.append(name)
        nodes.append(lst)
    flat = [v for lst in nodes for v in lst]
    grads = torch.autograd.grad(per_seq.sum(), flat, allow_unused=True)
    result, i = {}, 0
    for name, lst in zip(names, nodes):
        result[name] = [
            torch.zeros_like(v) if g is None else g for g, v in zip(grads[i : i + len(lst)], lst)
        ]
        i += len(lst)
    return result


FD_TASKS = [("adding", 5), ("copy", 1)]  # copy: 21 steps, loss at every step


@pytest.mark.parametrize("task_name,seq_len", FD_TASKS)
@pytest.mark.parametrize("arch", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
def test_state_gradients_match_finite_differences_through_torch_nn(arch, task_name, seq_len):
    # seed 1: with 3 units, some seeds (e.g. 3) leave every relu unit dead, so the
    # gradient at early steps is exactly 0 both ways, a comparison that proves nothing.
    model, task, x, y = _setup(arch, task_name, seq_len, hidden=3, batch=2, seed=1)
    ours = _our_vectors(model, task, x, y)
    profile = _profile_dict(gradient_profile(model, task, x, y))
    run = _FusedRollout(model, task, x, y)
    T = x.shape[1]
    steps = range(T) if T <= 6 else [0, 1, T // 2, T - 2, T - 1]
    for t in steps:
        for q in ("h", "c") if arch == "lstm" else ("h",):
            fd = _fd_state_grad(run, t, q)
            _assert_vec_rel(ours[q][t].detach(), fd, f"{arch}/{task_name} ∂ℓ/∂{q}_{t}")
            _assert_rel(profile[(t, q)], _mean_norm(fd), f"{arch}/{task_name} profile {q}_{t}")


@pytest.mark.parametrize("task_name,seq_len", FD_TASKS)
@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_gate_preactivation_gradients_match_finite_differences(arch, task_name, seq_len):
    model, task, x, y = _setup(arch, task_name, seq_len, hidden=3, batch=2, seed=4)
    H = 3
    ours = _our_vectors(model, task, x, y)
    profile = _profile_dict(gradient_profile(model, task, x, y))
    run = _FusedRollout(model, task, x, y)
    T = x.shape[1]
    steps = range(T) if T <= 6 else [0, T // 2, T - 1]
    for t in steps:
        fd = _fd_gate_grad(run, t)  # (B, 4H) or (B, 3H) in torch's row order
        if arch == "lstm":
            mine = ours["ifgo"][t].detach()
            names = ("i", "f", "g", "o")
        else:
            mine = torch.cat([ours["rz"][t], ours["n"][t]], 1).detach()
            names = ("r", "z", "n")
        _assert_vec_rel(mine, fd, f"{arch}/{task_name} gates at t={t}")
        for j, q in enumerate(names):
            block = fd[:, j * H : (j + 1) * H]
            _assert_rel(profile[(t, q)], _mean_norm(block), f"{arch}/{task_name} profile {q}_{t}")


# -------------------------------------------------- 3. ratio / reach on hand-made profiles


def _h_profile(values, extra_quantity=True, shuffle=True):
    T = len(values)
    rows = pd.DataFrame({"t": np.arange(T), "quantity": "h", "grad_norm": np.asarray(values, float)})
    if extra_quantity:  # other quantities must be ignored by ratio / reach
        rows = pd.concat(
            [rows, pd.DataFrame({"t": np.arange(T), "quantity": "c", "grad_norm": 1e9})],
            ignore_index=True,
        )
    if shuffle:  # row order must not matter: both sort by t
        rows = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return rows


def test_vanishing_ratio_and_reach_of_geometric_decay():
    T = 30
    values = [0.5 ** (T - 1 - t) for t in range(T)]  # ‖∂ℓ/∂h_t‖ = 0.5^k, k steps back
    p = _h_profile(values)
    assert vanishing_ratio(p) == pytest.approx(0.5**29, rel=1e-12)
    expected_reach = sum(v >= REACH_THRESHOLD * max(values) for v in values)
    assert expected_reach == 10  # 0.5^9 ≈ 2e-3 ≥ 1e-3 > 0.5^10
    assert gradient_reach(p) == expected_reach
    assert gradient_reach(p, threshold=0.3) == 2  # 1, 0.5 (0.25 < 0.3)


def test_flat_gradient_reaches_every_step():
    p = _h_profile([2.0] * 17)
    assert vanishing_ratio(p) == 1.0
    assert gradient_reach(p) == 17


def test_reach_counts_back_from_the_end_to_the_last_dip():
    # A dip below the threshold cuts the reach even if the gradient recovers before it.
    p = _h_profile([1.0, 1.0, 1e-6, 1.0, 1.0])
    assert gradient_reach(p) == 2
    assert vanishing_ratio(p) == 1.0


def test_all_zero_profile_has_no_reach_and_nan_ratio():
    p = _h_profile([0.0] * 8)
    assert gradient_reach(p) == 0
    assert math.isnan(vanishing_ratio(p))


def test_nan_and_zero_last_step_handling():
    assert math.isnan(vanishing_ratio(_h_profile([1.0, 0.5, 0.0])))  # nothing at the end
    assert math.isnan(vanishing_ratio(_h_profile([1.0, 0.5, float("nan")])))
    assert gradient_reach(_h_profile([1.0, float("nan"), 1.0])) == 0
    assert gradient_reach(_h_profile([1.0, float("inf"), 1.0])) == 0
    empty = pd.DataFrame({"t": [], "quantity": [], "grad_norm": []})
    assert gradient_reach(empty) == 0
    assert math.isnan(vanishing_ratio(empty))


def test_summary_names_the_ratio_reach_and_gate_means():
    p = _h_profile([0.5 ** (9 - t) for t in range(10)])
    acts = pd.DataFrame(
        {"t": [0, 1, 0, 1], "gate": ["f", "f", "o", "o"], "mean": [0.4, 0.6, 0.9, 0.9]}
    )
    s = summarise(p, acts)
    assert s["steps"] == 10
    assert s["vanishing_ratio"] == pytest.approx(0.5**9)
    assert s["gradient_reach"] == 10
    assert s["h_grad_first"] == pytest.approx(0.5**9)
    assert s["h_grad_last"] == 1.0
    assert s["mean_f"] == pytest.approx(0.5)
    assert "mean_z" not in s


def test_probe_summary_agrees_with_its_own_profile():
    model, task, x, y = _setup("gru", "adding", 10, 6, 3, seed=5)
    result = probe(model, task, x, y)
    h = result.profile[result.profile["quantity"] == "h"].sort_values("t")["grad_norm"].to_numpy()
    assert result.summary["vanishing_ratio"] == pytest.approx(h[0] / h[-1], rel=1e-12)
    assert result.summary["gradient_reach"] == gradient_reach(result.profile)
    assert result.summary["steps"] == 10
    assert 0 < result.summary["mean_z"] < 1


# ---------------------------------------------- 4. the mechanism, measured (LSTM at init)


def _c_ratio(result):
    c = result.profile[result.profile["quantity"] == "c"].sort_values("t")["grad_norm"].to_numpy()
    return c[0] / c[-1]


def test_lstm_forget_gate_at_init_halves_the_cell_gradient_every_step():
    model, task, x, y = _setup("lstm", "recall", 100, 32, 16, seed=0)
    result = probe(model, task, x, y)
    f = result.activations[result.activations["gate"] == "f"]["mean"]
    assert len(f) == 100
    assert abs(f.mean() - 0.5) < 0.05  # σ(≈0) at torch's default init
    assert result.summary["mean_f"] == pytest.approx(f.mean())
    ratio = _c_ratio(result)
    assert 0 < ratio < 1e-10  # ~0.5^99 ≈ 1.6e-30, give or take the other paths


def test_lstm_without_forget_gate_carries_the_cell_gradient():
    model, task, x, y = _setup("lstm", "recall", 100, 32, 16, seed=0, no_forget_gate=True)
    result = probe(model, task, x, y)
    assert _c_ratio(result) > 1e-2
    f = result.activations[result.activations["gate"] == "f"]["mean"]
    assert np.allclose(f, 1.0)  # f ≡ 1: the constant error carousel
    assert "f" not in set(result.profile["quantity"])  # no forget gate, no f row


@pytest.mark.parametrize("arch", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_probe_param_grads_equal_fused_forward_gradients_of_the_mean_loss(arch):
    model, task, x, y = _setup(arch, "adding", 9, 6, 4, seed=6)
    assert model.recurrent.uses_fused
    result = probe(model, task, x, y)
    params = list(model.parameters())
    loss = task.loss(model(x), y).mean()  # model(x) is torch.nn's fused forward here
    ref = torch.autograd.grad(loss, params)
    assert float(result.loss) == pytest.approx(loss.item(), rel=1e-12)
    assert len(result.param_grads) == len(params)
    for (name, _), ours, r in zip(model.named_parameters(), result.param_grads, ref):
        assert ours is not None, name
        # float64, torch.nn's fused forward and the probe's unroll: ~1e-15 (as REL's note)
        _assert_vec_rel(ours, r, f"{arch} param {name}", rel=1e-6)


def test_an_exploding_gradient_reaches_every_step():
    """Growing backwards (ratio ≫ 1) must count as reaching, not as reach 0."""
    import pandas as pd

    from core.probe import gradient_reach, vanishing_ratio

    prof = pd.DataFrame({"t": range(30), "quantity": "h",
                         "grad_norm": [2.0 ** (29 - t) for t in range(30)]})
    assert gradient_reach(prof) == 30
    assert vanishing_ratio(prof) == 2.0 ** 29


@pytest.mark.parametrize("arch, gate", [("lstm", "f"), ("gru", "z")])
def test_gate_activations_equal_gates_recomputed_from_torch_nn_states(arch, gate):
    """Heatmap C's rows (mean over batch and units, and the most open unit) against
    the gate recomputed from torch.nn's own hidden states and the weights."""
    from core.bptt import fast_probe

    model, task, x, y = _setup(arch, "adding", 7, 5, 6, seed=4)
    fused = _fused(model).double()
    hs, _ = fused(x)                                    # (B, T, H) from torch.nn
    H = model.recurrent.hidden_size
    h_prev = torch.cat([torch.zeros_like(hs[:, :1]), hs[:, :-1]], dim=1)
    rec = model.recurrent
    pre = x @ rec.weight_ih_l0.T + rec.bias_ih_l0 + h_prev @ rec.weight_hh_l0.T + rec.bias_hh_l0
    rows = slice(H, 2 * H)  # f is torch's 2nd LSTM block (i, f, g, o); z is the GRU's 2nd (r, z, n)
    g = torch.sigmoid(pre[..., rows]).detach()          # (B, T, H)
    expected = {gate: g.mean(dim=(0, 2)), f"{gate}_max": g.mean(dim=0).max(dim=1).values}
    for result in (probe(model, task, x, y), fast_probe(model, task, x, y)):
        acts = result.activations
        for name, want in expected.items():
            got = acts[acts["gate"] == name].sort_values("t")["mean"].to_numpy()
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-9)
        assert result.summary[f"mean_{gate}_max"] == pytest.approx(float(expected[f"{gate}_max"].mean()))

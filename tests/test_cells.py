"""Our explicit unrolled cells against torch.nn's fused modules, same weights."""

import pytest
import torch

from core.models import build_model

FUSED = {
    "rnn_tanh": lambda i, h: torch.nn.RNN(i, h, batch_first=True, nonlinearity="tanh"),
    "rnn_relu": lambda i, h: torch.nn.RNN(i, h, batch_first=True, nonlinearity="relu"),
    "lstm": lambda i, h: torch.nn.LSTM(i, h, batch_first=True),
    "gru": lambda i, h: torch.nn.GRU(i, h, batch_first=True),
}


def _pair(arch, input_size=3, hidden=5, seed=0):
    torch.manual_seed(seed)
    fused = FUSED[arch](input_size, hidden).double()
    model = build_model(arch, input_size, hidden, 2).double()
    model.recurrent.load_state_dict(fused.state_dict())
    return fused, model


@pytest.mark.parametrize("arch", list(FUSED))
def test_unrolled_cell_matches_torch_nn_outputs_and_gradients(arch):
    fused, model = _pair(arch)
    x = torch.randn(4, 9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h_ref = fused(x)[0]
    h_ours = model.recurrent.unroll(x).h
    # float64, the same equations in another order over 9 steps: each rounding ≤ u₆₄ =
    # 1.1e-16, amplified by ≲ 10 at torch's init (contracting): ≲ 1e-14 relative to |h|
    # ≤ 1; the bounds leave ≥ 100x (atol for elements near 0, relative to |h| ≤ 1).
    torch.testing.assert_close(h_ours, h_ref, rtol=1e-10, atol=1e-12)

    w = torch.randn_like(h_ref)
    g_ref = torch.autograd.grad((h_ref * w).sum(), list(fused.parameters()))
    g_ours = torch.autograd.grad((h_ours * w).sum(), list(model.recurrent.parameters()))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("arch", list(FUSED))
def test_state_dict_moves_both_ways_between_ours_and_torch_nn(arch):
    fused, model = _pair(arch)
    assert set(model.recurrent.state_dict()) == {
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"
    }
    other = FUSED[arch](3, 5).double()
    other.load_state_dict(model.recurrent.state_dict())
    for k, v in other.state_dict().items():
        assert torch.equal(v, model.recurrent.state_dict()[k])


@pytest.mark.parametrize("arch", list(FUSED))
def test_model_forward_fast_path_equals_unroll(arch):
    _, model = _pair(arch)
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    out, _ = model.unroll(x)
    torch.testing.assert_close(model(x), out)
    assert model(x).shape == (2, 7, 2)


def test_forget_bias_sets_the_sum_of_both_forget_biases():
    model = build_model("lstm", 3, 4, 1, forget_bias=1.0)
    r = model.recurrent
    total = r.bias_ih_l0[4:8] + r.bias_hh_l0[4:8]
    assert torch.allclose(total, torch.ones(4))


def test_no_forget_gate_keeps_the_cell_a_running_sum():
    model = build_model("lstm", 2, 3, 1, no_forget_gate=True).double()
    x = torch.randn(2, 6, 2, dtype=torch.float64)
    u = model.recurrent.unroll(x, record=True)
    c = torch.stack(u.states["c"], 1)
    # c_t − c_{t−1} = i_t ⊙ g_t, with no decay of c_{t−1}
    pre = torch.stack(u.gates["ifgo"], 1)
    i, _, g, _ = pre.chunk(4, 2)
    inc = torch.sigmoid(i) * torch.tanh(g)
    torch.testing.assert_close(c, inc.cumsum(1))
    assert not model.recurrent.uses_fused


def test_coupled_gates_tie_input_to_one_minus_forget():
    model = build_model("lstm", 2, 3, 1, coupled_gates=True).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    u = model.recurrent.unroll(x, record=True)
    pre = torch.stack(u.gates["ifgo"], 1)
    _, f, g, _ = pre.chunk(4, 2)
    f, g = torch.sigmoid(f), torch.tanh(g)
    c_prev = torch.zeros(2, 3, dtype=torch.float64)
    for t in range(5):
        c_prev = f[:, t] * c_prev + (1 - f[:, t]) * g[:, t]
        torch.testing.assert_close(u.states["c"][t], c_prev)


@pytest.mark.parametrize("init", ["default", "orthogonal", "identity"])
def test_rnn_spectral_radius_is_rescaled_exactly(init):
    model = build_model("rnn_relu", 2, 16, 1, init=init, spectral_radius=1.5)
    w = model.recurrent.weight_hh_l0.detach().double()
    # W is float32 (scaled by 1.5/ρ in float32: a few u₃₂ = 6e-8 per element); the
    # spectral radius moves by κ_eig·‖δW‖/‖W‖ with κ_eig ≤ ~10 for these 16x16 matrices:
    # ≲ 1e-6. Measured < 1e-7.
    assert torch.linalg.eigvals(w).abs().max().item() == pytest.approx(1.5, rel=1e-5)


def test_identity_init_is_the_irnn():
    model = build_model("rnn_relu", 2, 4, 1, init="identity")
    assert torch.equal(model.recurrent.weight_hh_l0.detach(), torch.eye(4))
    assert torch.count_nonzero(model.recurrent.bias_hh_l0) == 0


def test_options_that_do_not_apply_are_refused_by_name():
    with pytest.raises(ValueError, match="forget_bias"):
        build_model("gru", 2, 4, 1, forget_bias=1.0)
    with pytest.raises(ValueError, match="arch must be one of"):
        build_model("transformer", 2, 4, 1)

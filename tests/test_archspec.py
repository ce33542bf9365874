"""core.archspec is the one table of architectures: everything else agrees with it."""

from __future__ import annotations

import pytest
import torch

from core import archspec
from core.archspec import ARCHS, MODERN, SPEC
from core.cells import Scanned, graph_nodes, per_step, stack_gradients
from core.charts.style import ARCH_COLOURS, arch_of
from core.config import FIELD_BY_NAME, TrainConfig
from core.identity import ROOT, training_sources
from core.models import ARCH_OPTIONS, build_model
from core.presets import COMPARE_MODELS


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_builds_records_its_states_and_gates_and_trains_one_step(arch):
    cfg = TrainConfig(arch=arch, task="adding", seq_len=12, hidden_size=8, batch_size=4)
    task = cfg.make_task()
    model = build_model(arch, task.input_size, 8, task.output_size, **cfg.model_options())
    x, y = task.sample(4, torch.Generator().manual_seed(0))
    out, u = model.unroll(x, record=True)
    assert out.shape == (4, 12, task.output_size)
    assert torch.allclose(model(x), out, rtol=1e-5, atol=1e-6)   # float32: one rounding path apart
    assert set(u.states) == set(SPEC[arch].states)
    gates = set(u.gates)
    if gates == {"ifgo"} or gates == {"rz", "n"}:                  # the classic cells' blocks
        gates = set(model.recurrent.gate_names)
    assert gates == set(SPEC[arch].gates)
    for q in u.states.values():
        assert per_step(q).shape[:2] == (12, 4)
    carry = SPEC[arch].carry
    if carry is not None:
        assert carry in u.activations and u.activations[carry].shape == (12,)
    task.loss(out, y).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_options_choices_and_colours_come_from_the_registry():
    assert FIELD_BY_NAME["arch"].choices == ARCHS
    assert ARCH_OPTIONS == {s.name: s.options for s in archspec.SPECS}
    assert set(ARCH_COLOURS) == set(ARCHS) and len(set(ARCH_COLOURS.values())) == len(ARCHS)
    assert all(COMPARE_MODELS[a] == {"arch": a} for a in MODERN)
    for f in FIELD_BY_NAME.values():                # an option names an arch the registry has
        if f.applies_to and f.applies_to[0] not in ("recall",):
            assert set(f.applies_to) <= set(ARCHS)


@pytest.mark.parametrize("label, arch", [("mingru", "mingru"), ("a1 · slstm", "slstm"),
                                         ("LSTM, chrono init", "lstm"), ("minLSTM", "minlstm"),
                                         ("Orthogonal RNN", "orthogonal"), ("RNN tanh", "rnn_tanh"),
                                         ("gru (chrono init)", "gru"), ("IndRNN", "indrnn")])
def test_a_label_names_its_own_architecture_not_one_inside_its_name(label, arch):
    assert arch_of(label) == arch


def test_derived_t_max_is_the_tasks_steps_and_only_for_the_archs_that_take_it():
    for arch in ARCHS:
        options = TrainConfig(arch=arch, task="copy", seq_len=30).model_options()
        assert ("t_max" in options) == ("t_max" in SPEC[arch].derived)
        if "t_max" in options:
            assert options["t_max"] == TrainConfig(task="copy", seq_len=30).make_task().steps


def test_the_run_identity_hashes_every_architectures_layer_module():
    names = {p.relative_to(ROOT).as_posix() for p in training_sources()}
    for s in archspec.SPECS:
        module = s.layer.split(":")[0]
        assert module.replace(".", "/") + ".py" in names


def test_scanned_state_gradients_are_the_totals_node_and_lists_stack_by_step():
    # h_t = a h_{t−1} + b_t, scalar a: h_t's total derivative is ∂ℓ/∂b_t; checked against
    # the per-step list form of the same recurrence, by autograd, in float64.
    torch.manual_seed(0)
    B, T, W, a = 3, 6, 2, 0.7
    b = torch.randn(B, T, W, dtype=torch.float64, requires_grad=True)
    weights = torch.arange(1.0, T + 1, dtype=torch.float64).view(1, T, 1)
    lags = (torch.arange(T).view(T, 1) - torch.arange(T).view(1, T)).clamp(min=0)
    powers = torch.tensor(a, dtype=torch.float64) ** lags
    mask = torch.tril(torch.ones(T, T, dtype=torch.float64))
    h = torch.einsum("ts,bsw->btw", powers * mask, b)          # the scan, all at once
    scanned = Scanned(values=h, totals=b)
    grads = torch.autograd.grad((weights * h ** 2).sum(), graph_nodes(scanned))
    g_scan = stack_gradients(scanned, list(grads))
    b2 = b.detach().requires_grad_(True)
    hs, prev = [], torch.zeros(B, W, dtype=torch.float64)
    for t in range(T):
        prev = a * prev + b2[:, t]              # every later use goes through hs[t]
        hs.append(prev)
    loss = sum(((t + 1) * hs[t] ** 2).sum() for t in range(T))
    g_list = stack_gradients(hs, list(torch.autograd.grad(loss, graph_nodes(hs))))
    assert torch.equal(per_step(scanned), h.transpose(0, 1))
    # float64, sums of at most T terms of size ≤ max|g|: a few ulps of the largest entry.
    assert torch.allclose(g_scan, g_list, rtol=0, atol=1e-13 * float(g_list.abs().max()))

"""Explain section 6: every architecture's path measured, and words only the numbers support."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from core.archspec import ARCHS, SPEC
from core.cells import per_step
from core.explain.jacobians import per_step_factor, sample_batch, untrained_model
from core.explain.principle import VARIANTS, principle
from core.narrate.principle import NEAR_ONE, SHRINKS, cost_sentence, principle_sentence


@pytest.fixture(scope="module")
def measured():
    return principle(seq_len=20, hidden=8, seed=0)


def test_every_architecture_and_the_chrono_pair_is_measured(measured):
    table, curves = measured
    assert list(table["label"]) == [v[0] for v in VARIANTS]
    assert set(table["arch"]) == set(ARCHS)
    assert (curves.groupby("label").size() == 20).all()
    for row in table.itertuples():
        c = curves[curves["label"] == row.label].sort_values("lag", ascending=False)
        assert row.factor == pytest.approx(per_step_factor(c["jacobian_norm"].to_numpy()))
        assert row.path == SPEC[row.arch].path
        assert np.isnan(row.carry_mean) == (SPEC[row.arch].carry is None)
        assert row.step_ms > 0


def test_the_lrus_path_jacobian_is_its_eigenvalues_power(measured):
    # Independent of the autograd instrument: ∂x_{T−1}/∂x_t = diag(λ^{T−1−t}), so on the
    # real (Re, Im) layout its spectral norm is max_n |λ_n|^lag, the same for every sequence.
    table, curves = measured
    model, _ = untrained_model("lru", 20, 8, 0)
    mod = model.recurrent.lru.eigenvalues().detach().abs().double()
    c = curves[curves["label"] == SPEC["lru"].label].sort_values("lag")
    expected = np.array([float(mod.pow(k).max()) for k in c["lag"]])
    # float32 model: 20 rounded products, relative error a few 1e-6
    assert np.allclose(c["jacobian_norm"], expected, rtol=1e-5, atol=0)


def test_indrnns_path_jacobian_is_the_product_of_its_diagonal_gains():
    # IndRNN: ∂h_{T−1}/∂h_t = Π_j diag(u ⊙ relu′(a_j)), diagonal, so its spectral norm is the
    # largest |product| over units; computed here from the recorded pre-activations.
    from core.explain.jacobians import spectral_norms, state_jacobians
    model, task = untrained_model("indrnn", 12, 6, 0)
    model = model.double()
    x, _ = sample_batch(task, 2, 0)
    x = x.double()
    J = state_jacobians(model, x)[("h", "h")]
    layer = model.recurrent
    with torch.no_grad():
        h = per_step(layer.unroll(x, record=True).states["h"])   # (T, B, H)
    u = layer.weight_hh.detach()                          # u, within its bound 2^(1/T)
    gains = u * (h > 0).double()                          # u ⊙ relu′(a_t), a_t > 0 ⇔ h_t > 0
    T = h.shape[0]
    for t in range(T):
        prod = torch.prod(gains[t + 1:], dim=0) if t < T - 1 else torch.ones_like(gains[0])
        assert torch.allclose(J[t], torch.diag_embed(prod), rtol=1e-12, atol=1e-15)
    assert np.allclose(spectral_norms(J), [float(torch.prod(gains[t + 1:], 0).abs().max(-1)
                                                 .values.mean()) for t in range(T)])


def _table(**rows):
    base = dict(fixed=True, path="h", jac_first=0.5, carry_mean=np.nan, carry_max=np.nan,
                reach=10, ratio=0.1, step_ms=1.0, answer="", gives_up="")
    return pd.DataFrame([dict(base, label=k, arch="x", **v) for k, v in rows.items()])


def test_the_sentence_says_near_one_and_shrinking_only_from_the_factor():
    t = _table(A=dict(factor=0.99), B=dict(factor=0.5, fixed=False, carry_mean=0.5, carry_max=0.6),
               C=dict(factor=0.92))
    s = principle_sentence(t, 100)
    assert "near 1 for A (0.990)" in s and "A have it by construction" in s
    assert f"below {SHRINKS} for B (0.500)" in s and "B 0.50" in s
    assert "In between: C (0.920)" in s
    only = principle_sentence(_table(A=dict(factor=NEAR_ONE)), 100)
    assert "below" not in only and "half" not in only


def test_a_gate_not_near_a_half_is_not_called_half_open():
    s = principle_sentence(_table(B=dict(factor=0.5, fixed=False, carry_mean=0.2, carry_max=0.3)),
                           50)
    assert "half" not in s


def test_nothing_finite_is_said_as_such_and_cost_names_fastest_and_slowest():
    assert "No per-step factor" in principle_sentence(_table(A=dict(factor=np.nan)), 10)
    s = cost_sentence(_table(A=dict(factor=1.0, step_ms=2.0), B=dict(factor=1.0, step_ms=9.0),
                             **{"A (chrono init)": dict(factor=1.0, step_ms=100.0)}))
    assert "2.0 ms for A and 9.0 ms for B, 4× longer" in s


def test_reproductions_read_the_longest_t_solved_from_the_results():
    from core.archspec import MODERN
    from core.explain.principle import reproductions
    rows = []
    for arch in MODERN:
        for T, seed, solved, steps in ((50, 0, True, 100), (50, 1, True, 300), (100, 0, False, None),
                                       (100, 1, arch == "lru", 700)):
            rows.append(dict(arch=arch, seq_len=T, seed=seed, solved=solved,
                             steps_to_solve=steps if solved else None))
    rows = [r for r in rows if not (r["arch"] == "slstm")] + [
        dict(arch="slstm", seq_len=T, seed=0, solved=False, steps_to_solve=None) for T in (50, 200)]
    table = reproductions({"recall": pd.DataFrame(rows)}).set_index("model")
    assert table.loc["LRU", "recall"] == "T = 100 (1/2 seeds, median 700 steps)"
    assert table.loc["IndRNN", "recall"] == "T = 50 (2/2 seeds, median 200 steps)"
    assert table.loc["sLSTM", "recall"] == "none of T ≤ 200"
    assert "5000" in table.loc["IndRNN", "paper's claim"]

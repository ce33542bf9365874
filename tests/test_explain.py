"""The Explain page's measurements (core/explain/): the facts it states, as assertions.

Bounds are generous: they check the mechanism (geometric decay, the forget gate as the
cell path's gain, saturation), not a seed's digits. One Jacobian of each kind is
cross-checked by central finite differences in float64 through torch.nn's fused
modules (which never call core's unroll).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from core import explain, narrate
from core.config import TrainConfig
from core.probe import probe
from core.runs import RunStore
from core.train import Trainer, make_model

H = 16  # small models keep the suite fast


# ---------------------------------------------------------------- the mechanism


def test_rnn_tanh_jacobian_decays_geometrically_at_init():
    df = explain.jacobian_norms("rnn_tanh", seq_len=51, hidden=H, seed=0)
    h = df[df["quantity"] == "h"].set_index("lag")["jacobian_norm"]
    assert h[0] == pytest.approx(1.0)                  # ∂h_T−1/∂h_T−1 = I
    assert h[50] < 1e-3                                # over 50 steps
    assert h[10] > h[30] > h[50] > 0                   # shrinking with the lag …
    # … geometrically: the per-step factor is the same early and late (within a factor 2)
    early = (h[20] / h[5]) ** (1 / 15)
    late = (h[50] / h[35]) ** (1 / 15)
    assert early < 1 and late < 1 and 0.5 < early / late < 2
    # the textbook bound is a bound: measured ≤ ‖W_hh‖₂^lag
    bound = df[df["quantity"] == "h"].set_index("lag")["bound"]
    assert (h <= bound * (1 + 1e-6)).all()


def test_lstm_cell_jacobian_tracks_the_forget_gate():
    facts = explain.lstm_facts(seq_len=60, hidden=H, seed=0)
    assert 0.4 < facts["mean_f"] < 0.6                 # σ(0) = 0.5 at torch's init
    assert facts["cell_full"] < 1e-5                   # vanishes at init, all paths
    assert facts["cell_direct"] < 1e-5                 # the cell path alone too
    assert facts["cell_ratio"] < 1e-5
    assert facts["mean_f_pow"] == pytest.approx(facts["mean_f"] ** 59)


def test_forget_gate_sets_the_cell_paths_gain():
    table, profiles = explain.forget_gate_gain(seq_len=100, hidden=H, seed=0)
    t = table.set_index("variant")["cell_ratio"]
    names = list(explain.FORGET_VARIANTS)
    default, fb1, fb3, none = (t[n] for n in names)
    assert default < 1e-10                             # f ≈ 0.5: 100 steps kill it
    assert none > 1e-2                                 # f ≡ 1: it survives
    assert default < fb1 < fb3                         # more open gate, more gradient
    assert fb3 > 1e3 * default
    reach = table.set_index("variant")["gradient_reach"]
    assert reach[names[2]] > reach[names[0]] and reach[names[3]] == 100
    mean_f = table.set_index("variant")["mean_f"]
    assert mean_f[names[3]] == 1.0 and 0.9 < mean_f[names[2]] < 0.99
    assert set(profiles["run"]) == set(names) and (profiles["step"] == 0).all()
    assert {"h", "c", "f"} <= set(profiles["quantity"])


def test_gru_update_gate_bias_carries_the_gradient():
    g = explain.gru_facts(seq_len=60, hidden=H, seed=0)
    assert 0.4 < g["default_mean_z"] < 0.6 and g["biased_mean_z"] > 0.9
    assert g["default_full"] < 1e-5
    assert g["biased_full"] > 1e3 * g["default_full"]
    assert g["biased_reach"] > g["default_reach"]


def test_saturated_gates_pass_less_gradient_and_bounded_tanh_can_still_explode():
    sat = explain.saturation_effect(seq_len=30, hidden=H, seed=0).set_index("variant")
    ok, shut, fopen, rnn_ok, rnn_big = (sat.loc[v[0]] for v in explain.SATURATION_VARIANTS)
    assert ok["mean_derivative"] <= 0.25               # σ′ ≤ 1/4
    assert shut["mean_derivative"] < 0.01 and shut["saturated"] > 0.9
    assert shut["vanishing_ratio"] < 1e-3 * ok["vanishing_ratio"]
    assert shut["grad_w_hh"] < 1e-3 * ok["grad_w_hh"]  # a saturated gate barely learns
    assert fopen["gradient_reach"] == 30               # … unless it is saturated *open*
    assert rnn_ok["mean_derivative"] <= 1.0            # tanh′ ≤ 1
    assert rnn_big["vanishing_ratio"] > 1e2            # bounded outputs, exploding gradient


def test_rnn_state_depends_on_x0_while_its_gradient_vanishes():
    f = explain.rnn_facts(seq_len=100, hidden=H, seed=0)
    assert f["jac_one_step"] > 0.1                     # the state is passed on every step
    assert f["dep_x0"] > 0                             # h_T−1 does depend on x_0 …
    assert f["dep_x0"] < 1e-6 * f["dep_xlast"]         # … by a vanishing amount
    assert f["vanishing_ratio"] < 1e-6                 # and so does the gradient
    assert f["per_step"] < 1 and f["jac_full"] < 1e-6


# ---------------------------------------------------------------- against independent references


def _fused_last(layer, x_rest, h, c=None):
    """Run torch.nn's fused module on x_rest from state (h, c); return (h_last, c_last)."""
    base = {"rnn_tanh": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[layer.arch]
    if base is nn.LSTM:
        out, (hn, cn) = nn.LSTM.forward(layer.recurrent, x_rest, (h[None], c[None]))
        return hn[0], cn[0]
    out, hn = base.forward(layer.recurrent, x_rest, h[None])
    return hn[0], None


@pytest.mark.parametrize("arch,quantity", [("rnn_tanh", "h"), ("lstm", "c"), ("lstm", "h"),
                                           ("gru", "h")])
def test_state_jacobian_matches_finite_differences_float64(arch, quantity):
    model, task = explain.untrained_model(arch, seq_len=12, hidden=6, seed=3)
    model = model.double()
    x, _ = explain.sample_batch(task, 2, seed=3)
    x = x.double()
    J = explain.state_jacobians(model, x, ((quantity, quantity),))[(quantity, quantity)]
    with torch.no_grad():
        u = model.recurrent.unroll(x, record=True)
    t, eps = 4, 1e-6
    h_t = u.states["h"][t]
    c_t = u.states["c"][t] if arch == "lstm" else None
    if arch == "lstm":      # o_t, to let h_t = o_t ⊙ tanh(c_t) follow a perturbed c_t
        o_t = torch.sigmoid(u.gates["ifgo"][t][:, 18:])
    for k in range(6):
        cols = []
        for sign in (1, -1):
            h, c = h_t.clone(), None if c_t is None else c_t.clone()
            (h if quantity == "h" else c)[:, k] += sign * eps
            if quantity == "c":  # c_t's node feeds h_t: the total derivative moves h_t too
                h = o_t * torch.tanh(c)
            with torch.no_grad():
                hn, cn = _fused_last(model, x[:, t + 1:], h, c)
            cols.append(hn if quantity == "h" else cn)
        fd = (cols[0] - cols[1]) / (2 * eps)            # (B, H): column k of ∂q_T−1/∂q_t
        # float64 central differences: truncation ~eps²·|q‴|/6 ≈ 1e-12; rounding
        # ≈ c·u₆₄·|q|/eps ≈ 1.1e-10·c·|q| absolute (c: the rollout's condition number, ~1;
        # |q| ≲ 1): atol 1e-9 allows c·|q| ≤ 9. Measured: ≤ 8e-11 absolute.
        torch.testing.assert_close(J[t, :, :, k], fd, rtol=1e-5, atol=1e-9)


def test_input_jacobian_matches_finite_differences_float64():
    model, task = explain.untrained_model("rnn_tanh", seq_len=10, hidden=5, seed=1)
    model = model.double()
    x, _ = explain.sample_batch(task, 2, seed=1)
    x = x.double()
    J = explain.state_jacobians(model, x, (("h", "x"),))[("h", "x")]   # (T, B, H, I)
    eps = 1e-6
    for k in range(x.shape[2]):
        outs = []
        for sign in (1, -1):
            xp = x.clone()
            xp[:, 0, k] += sign * eps
            with torch.no_grad():
                outs.append(nn.RNN.forward(model.recurrent, xp)[0][:, -1])
        torch.testing.assert_close(J[0, :, :, k], (outs[0] - outs[1]) / (2 * eps),
                                   rtol=1e-5, atol=1e-9)  # as above: measured ≤ 6e-11


def test_cell_ratio_matches_the_probe_of_the_train_pages_model():
    """forget_gate_gain's default row is the probe of the model make_model builds."""
    cfg = TrainConfig(task="recall", seq_len=40, arch="lstm", hidden_size=H, seed=5)
    task = cfg.make_task()
    x, y = explain.sample_batch(task, explain.PROBE_BATCH, 5)
    ref = probe(make_model(cfg, task), task, x, y).summary
    table, _ = explain.forget_gate_gain(seq_len=40, hidden=H, seed=5)
    row = table.iloc[0]
    assert row["cell_ratio"] == pytest.approx(ref["cell_ratio"], rel=1e-5)
    assert row["gradient_reach"] == ref["gradient_reach"]


def test_direct_path_gain_is_the_product_of_the_gate():
    g = torch.tensor([[[0.5, 0.9]], [[0.5, 0.8]], [[0.25, 0.5]]])   # (T=3, B=1, H=2)
    gain = explain.direct_path_gain(g)
    # t=2: identity; t=1: max(0.25, 0.5); t=0: max(0.5·0.25, 0.8·0.5)
    # g is float32 (0.8 is stored as 0.800000012) and products by 0.5, 0.25 are exact:
    # the gains are the decimals to float32's representation error, ≤ u₃₂ relative
    np.testing.assert_allclose(gain, [0.4, 0.5, 1.0], rtol=2.0**-24)
    assert explain.direct_path_gain(torch.ones(50, 3, 4))[0] == 1.0


def test_per_step_factor_of_a_geometric_curve():
    curve = 0.7 ** np.arange(20)[::-1]                 # indexed by t: lag = 19 − t
    assert explain.per_step_factor(curve) == pytest.approx(0.7)


# ---------------------------------------------------------------- determinism and hygiene


def test_measurements_are_deterministic_and_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    a = explain.jacobian_norms("gru", seq_len=20, hidden=8, seed=2)
    b = explain.jacobian_norms("gru", seq_len=20, hidden=8, seed=2)
    assert torch.equal(state, torch.get_rng_state())
    pd.testing.assert_frame_equal(a, b)
    c = explain.jacobian_norms("gru", seq_len=20, hidden=8, seed=3)
    assert not np.allclose(a["jacobian_norm"], c["jacobian_norm"])


def test_one_thread_is_restored():
    before = torch.get_num_threads()
    with explain.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- verdicts follow the numbers


@pytest.fixture(scope="module")
def measured():
    kw = dict(seq_len=60, hidden=H, seed=0)
    return (explain.rnn_facts(**kw), explain.lstm_facts(**kw), explain.forget_gate_gain(**kw)[0],
            explain.saturation_effect(**kw))


def test_every_claim_is_decided_on_the_measurements(measured):
    evidence = explain.claim_evidence(*measured)
    assert evidence["checks"] == dict.fromkeys(
        ("gate_sets_gain", "lstm_vanishes_at_init", "rnn_passes_state", "both_vanish",
         "saturation_kills", "bounded_explodes", "product_shrinks", "cell_keeps_and_drops"), True)
    assert evidence["steps"] == 60 and evidence["forget"]["none"]["mean_f"] == 1.0
    assert evidence["saturation"]["lstm_shut"]["saturated"] > 0.9


def test_verdicts_of_the_three_answers(measured):
    v = narrate.verdicts(explain.claim_evidence(*measured))
    assert [x.answer for x in v] == ["Answer 1", "Answer 2", "Answer 3"]
    assert [x.verdict for x in v] == ["Confirmed", "Refuted", "Half-true"]
    assert [p[1] for p in v[2].parts] == ["Refuted", "Refuted", "Confirmed"]
    for x in v:
        assert x.verdict in narrate.VERDICTS and x.evidence


def test_verdicts_change_when_the_measurements_do(measured):
    rnn, lstm, forget, sat = measured
    sat = sat.copy()
    # Pretend saturation did nothing to the gradient and the big RNN did not explode:
    sat["vanishing_ratio"] = sat.loc[0, "vanishing_ratio"]
    sat.loc[4, "vanishing_ratio"] = 1.0
    checks = explain.claim_evidence(rnn, lstm, forget, sat)["checks"]
    assert not checks["saturation_kills"] and not checks["bounded_explodes"]
    assert narrate.verdicts(explain.claim_evidence(rnn, lstm, forget, sat))[2].parts[0][1] == \
        "Confirmed"
    # Pretend the forget gate made no difference:
    forget = forget.copy()
    forget["cell_ratio"] = forget.loc[0, "cell_ratio"]
    assert not explain.claim_evidence(rnn, lstm, forget, sat)["checks"]["gate_sets_gain"]
    assert narrate.verdicts(explain.claim_evidence(rnn, lstm, forget, sat))[0].verdict == "Refuted"


def test_decay_curves_frame(measured):
    rnn, lstm, _, _ = measured
    gru = explain.gru_facts(seq_len=60, hidden=H, seed=0)
    df = explain.decay_curves(rnn, lstm, gru)
    assert list(df.columns) == ["lag", "series", "norm", "log10_norm"]
    assert df["series"].nunique() == 5 and len(df) == 5 * 60
    assert np.isfinite(df["log10_norm"]).all()


# ---------------------------------------------------------------- the learner's run


@pytest.fixture
def tiny_run(tmp_path):
    """A finished 6-step LSTM run with probes and saved weights, in its own store."""
    store = RunStore(tmp_path / "runs")
    cfg = TrainConfig(task="recall", seq_len=20, arch="lstm", hidden_size=8, batch_size=8,
                      steps=6, probe_every=2, eval_every=3, eval_size=16, seed=0)
    writer = store.create(cfg)
    trainer = Trainer(cfg)
    for record in trainer.run():
        writer.add(record)
    writer.save_model(trainer.model)
    return store, writer.dir.name, cfg


def test_pick_run_and_run_story(tiny_run):
    store, run_id, cfg = tiny_run
    assert explain.pick_run(store) == run_id
    story = explain.run_story(store.load(run_id))
    assert story["first_step"] == 0 and story["last_step"] == 4 and story["probes"] == 3
    assert story["gate"] == "f" and 0 < story["gate_first"] < 1
    assert 0 <= story["reach_first"] <= 20 and story["cell_first"] > 0


def test_pick_run_on_an_empty_store(tmp_path):
    assert explain.pick_run(RunStore(tmp_path / "none")) is None


def test_pick_run_skips_runs_without_probes_and_prefers_lstm(tiny_run):
    store, lstm_id, _ = tiny_run
    for arch, probe_every in (("rnn_tanh", 2), ("gru", 0)):   # newer runs, created later
        cfg = TrainConfig(task="recall", seq_len=10, arch=arch, hidden_size=4, batch_size=4,
                          steps=2, probe_every=probe_every, eval_every=2, eval_size=16)
        writer = store.create(cfg, run_id=f"zz-{arch}")
        for record in Trainer(cfg).run():
            writer.add(record)
    probed = dict(explain.probed_runs(store))
    assert "zz-gru" not in probed and probed["zz-rnn_tanh"] == "rnn_tanh"
    assert explain.pick_run(store) == lstm_id
    assert explain.pick_run(store, prefer=("gru",)) == "zz-rnn_tanh"   # newest probed


def test_trained_vs_init_reads_the_saved_weights(tiny_run):
    store, run_id, cfg = tiny_run
    tv = explain.trained_vs_init(store.load(run_id), store.model_path(run_id))
    assert tv["gate"] == "f"
    for side in ("init", "trained"):
        d = tv[side]
        assert d["units"] == 8 and 0 <= d["units_open"] <= 8
        assert 0 < d["gate_mean"] <= d["gate_max_unit"] < 1
        assert 0 < d["carry_gain"] <= 1 and math.isfinite(d["ratio"])
    # step 0 is exactly the model the run started from
    task = cfg.make_task()
    x, y = explain.sample_batch(task, explain.PROBE_BATCH, cfg.seed)
    ref = probe(make_model(cfg, task), task, x, y).summary
    assert tv["init"]["ratio"] == pytest.approx(ref["vanishing_ratio"], rel=1e-5)
    # six Adam steps moved the weights, so the trained numbers differ
    assert tv["trained"]["gate_mean"] != tv["init"]["gate_mean"]


def test_trained_vs_init_reports_unreadable_weights(tiny_run, tmp_path):
    store, run_id, _ = tiny_run
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    tv = explain.trained_vs_init(store.load(run_id), bad)
    assert "could not be read" in tv["skipped"]

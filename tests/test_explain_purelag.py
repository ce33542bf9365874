"""The pure-lag measurements of the Explain page (core.explain.purelag), checked against
an independent computation: a plain loop over the LSTM equations in float64 (its own
forward pass, autograd through it), torch's own parameter gradients, core.probe, and a
second real training. Small sizes (T = 25, H = 16) keep each test to seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import narrate
from core.config import TrainConfig
from core.explain import purelag
from core.explain.jacobians import DATA_SEED_OFFSET
from core.probe import probe
from core.train import Trainer, make_model

T, H, SEED = 25, 16, 0


def plain_lstm(layer, x, offsets=None, no_forget=False):
    """The LSTM equations, one line each, in float64: returns (h per step, c per step,
    i per step, f per step, o per step). ``offsets[t]`` is added to a^f_t (to take
    ∂L/∂a^f_t as the gradient on that offset)."""
    W_ih, W_hh = layer.weight_ih_l0.detach().double(), layer.weight_hh_l0.detach().double()
    b = (layer.bias_ih_l0 + layer.bias_hh_l0).detach().double()
    n = layer.hidden_size
    h = x.new_zeros(x.shape[0], n)
    c = x.new_zeros(x.shape[0], n)
    out = {k: [] for k in "hcifo"}
    for t in range(x.shape[1]):
        a = x[:, t] @ W_ih.T + h @ W_hh.T + b
        a_i, a_f, a_g, a_o = a[:, :n], a[:, n:2 * n], a[:, 2 * n:3 * n], a[:, 3 * n:]
        if offsets is not None:
            a_f = a_f + offsets[t]
        i, g, o = torch.sigmoid(a_i), torch.tanh(a_g), torch.sigmoid(a_o)   # i_t, g_t, o_t
        f = torch.ones_like(a_f) if no_forget else torch.sigmoid(a_f)       # f_t
        c = f * c + i * g                                                   # c_t
        h = o * torch.tanh(c)                                               # h_t
        for k, v in zip("hcifo", (h, c, i, f, o)):
            out[k].append(v)
    return out


def readout(model, h):
    return F.linear(h, model.readout.weight.double(), model.readout.bias.double())


def first_batch(gate_init="default"):
    config = purelag.lag_config("recall", T, H, SEED, gate_init=gate_init)
    task = config.make_task()
    model = make_model(config, task)
    x, y = task.sample(config.batch_size, torch.Generator().manual_seed(config.seed))
    return model, task, x.double(), y


@pytest.mark.parametrize("gate_init", ["default", "chrono"])
def test_the_forget_gate_bias_gradient_and_its_parts_by_lag_match_a_plain_loop(gate_init):
    m = purelag.bias_gradient(T, H, SEED, gate_init)
    model, task, x, y = first_batch(gate_init)
    offsets = [torch.zeros(H, dtype=torch.float64, requires_grad=True) for _ in range(T)]
    states = plain_lstm(model.recurrent, x, offsets)
    loss = F.cross_entropy(readout(model, states["h"][-1]), y)
    G = torch.stack(torch.autograd.grad(loss, offsets))          # ∂L/∂a^f_t summed over batch
    total = G.sum(0)
    np.testing.assert_allclose(m["grad_bf"], total.numpy(), rtol=1e-9, atol=1e-15)
    # torch's own gradient of the bias, through its own forward (float64)
    ref = make_model(purelag.lag_config("recall", T, H, SEED, gate_init=gate_init),
                     task).double()
    task.loss(ref(x), y).mean().backward()
    np.testing.assert_allclose(m["grad_bf"], ref.recurrent.bias_ih_l0.grad[H:2 * H].numpy(),
                               rtol=1e-9, atol=1e-15)
    lag = T - 1 - np.arange(T)
    short = G[torch.as_tensor(lag < purelag.SHORT_LAG)].sum(0)
    long = G[torch.as_tensor(lag >= T // 2)].sum(0)
    assert m["short_share"] == pytest.approx(float(short.norm() / total.norm()), rel=1e-9)
    assert m["long_share"] == pytest.approx(float(long.norm() / total.norm()), rel=1e-6)
    np.testing.assert_allclose(m["by_lag"]["contribution"], G.norm(dim=1).numpy(), rtol=1e-9,
                               atol=1e-30)
    assert m["units_down"] == pytest.approx(float((total > 0).double().mean()))
    # the cell ratio by the reference probe (its own definition) on the same batch
    summary = probe(ref, task, x, y).summary
    assert m["cell_ratio"] == pytest.approx(summary["cell_ratio"], rel=1e-9)


def test_at_default_init_the_long_lags_make_almost_none_of_the_forget_gate_bias_gradient():
    """The chicken and egg at T = 100 (the page's default): at default init the lags ≥ 50
    make < 1e-6 of ∂L/∂b_f and the last 10 steps > 90 %; with chrono init > 1e-3."""
    default = purelag.bias_gradient(100, 32, SEED)
    chrono = purelag.bias_gradient(100, 32, SEED, "chrono")
    assert default["cell_ratio"] < 1e-12 and default["long_share"] < 1e-6
    assert default["short_share"] > 0.9 and default["short_cosine"] > 0.99
    assert chrono["cell_ratio"] > 0.01 and chrono["long_share"] > 1e-3


def test_the_cell_statistics_match_a_plain_loop_over_the_lstm_equations():
    table, curves = purelag.cell_drift(T, H, SEED, n=256, grad_batch=32)
    for row in table.itertuples():
        model, task, _ = purelag.variant_model(row.spec, "recall", T, H, SEED)
        x, y = task.sample(256, torch.Generator().manual_seed(SEED + DATA_SEED_OFFSET))
        s = plain_lstm(model.recurrent, x.double(), no_forget="no_forget_gate" in row.spec)
        c = torch.stack(s["c"], 1)
        rms = c.pow(2).mean((0, 2)).sqrt()
        np.testing.assert_allclose(curves[curves["variant"] == row.variant]["rms"], rms.numpy(),
                                   rtol=1e-5)
        tanh_end = torch.tanh(c[:, -1])
        assert row.saturated == pytest.approx(float((tanh_end.abs() > 0.95).double().mean()),
                                              abs=1.5 / c[:, -1].numel())
        assert row.i_distractors == pytest.approx(float(torch.stack(s["i"][1:]).mean()), rel=1e-5)
        assert row.mean_f == pytest.approx(float(torch.stack(s["f"][1:]).mean()), rel=1e-5)
        assert row.dh_dc == pytest.approx(float((s["o"][-1] * (1 - tanh_end ** 2)).mean()),
                                          rel=1e-5)
        # the gradient reaching the symbol's input, by autograd through the plain loop
        xg, yg = task.sample(32, torch.Generator().manual_seed(SEED + 2 * DATA_SEED_OFFSET))
        xg = xg.double().requires_grad_(True)
        s = plain_lstm(model.recurrent, xg, no_forget="no_forget_gate" in row.spec)
        (gx,) = torch.autograd.grad(F.cross_entropy(readout(model, s["h"][-1]), yg,
                                                    reduction="sum"), [xg])
        assert row.dx0 == pytest.approx(float(gx[:, 0].norm(dim=-1).mean()), rel=1e-6)


def test_the_input_gate_and_the_1997_drift_at_the_pages_setting():
    """T = 100, H = 32 (BENCHMARKS.md's figures at init, seed 0): opening f alone makes a
    large, saturated cell (RMS 10.8, 79 %); chrono keeps it small (0.11, none); without a
    forget gate the cell drifts (14.5, 82 %) and an input bias of −3 removes most of it."""
    table, curves = purelag.cell_drift(100, 32, SEED, n=512, grad_batch=32)
    row = {r.spec: r for r in table.itertuples()}
    f_only, chrono = row["lstm:forget_bias=5"], row["lstm:gate_init=chrono"]
    nfg, fix = row["lstm:no_forget_gate=true"], row[purelag.NFG_REMEDY]
    assert f_only.rms_end > 5 and f_only.saturated > 0.5 and f_only.dx0 > 10 * chrono.dx0
    assert chrono.rms_end < 0.5 and chrono.saturated == 0 and chrono.i_distractors < 0.1
    nfg_curve = curves[curves["variant"] == nfg.variant]["rms"].to_numpy()
    assert nfg_curve[-1] > 10 * nfg_curve[1] and nfg.saturated > 0.5
    assert fix.rms_end < nfg.rms_end / 5 and fix.saturated < 0.1


def test_the_gradient_reaching_each_marker_matches_autograd_through_a_plain_loop():
    frame, summary = purelag.marker_gradients(T, H, SEED, batch=32)
    for task_name in ("adding", "recall"):
        model, task, _ = purelag.variant_model("lstm", task_name, T, H, SEED)
        x, y = task.sample(32, torch.Generator().manual_seed(SEED + DATA_SEED_OFFSET))
        x = x.double().requires_grad_(True)
        s = plain_lstm(model.recurrent, x)
        out = readout(model, torch.stack(s["h"], 1))
        loss = task.loss(out, y).sum()
        (gx,) = torch.autograd.grad(loss, [x])
        g = gx.norm(dim=-1)
        if task_name == "recall":
            got = frame[frame["input"] == "recall: the symbol"]["ratio"].to_numpy()
            np.testing.assert_allclose(got, (g[:, 0] / g[:, -1]).numpy(), rtol=1e-7)
            assert (frame[frame["input"] == "recall: the symbol"]["lag"] == T - 1).all()
        else:
            pos = torch.stack([torch.nonzero(m).flatten() for m in x.detach()[..., 1] > 0])
            second = frame[frame["input"] == "adding: second marker"]
            np.testing.assert_allclose(second["ratio"], (g[torch.arange(32), pos[:, 1]]
                                                         / g[:, -1]).numpy(), rtol=1e-7)
            np.testing.assert_array_equal(second["lag"], (T - 1 - pos[:, 1]).numpy())
            assert (second["lag"] <= T - 1 - T // 2).all()
    assert summary["median"]["adding: second marker"] > summary["median"]["recall: the symbol"]


def test_adding_gets_a_usable_gradient_at_short_lags_where_recall_gets_none():
    """T = 100 (the page's default): a quarter of adding's second markers get ≥ 1e-3 of the
    last input's gradient at init (measured 25 %), its first marker and recall's symbol none."""
    _, s = purelag.marker_gradients(100, 32, SEED)
    assert s["usable"]["adding: second marker"] > 0.1
    assert s["usable"]["adding: first marker"] == 0 and s["usable"]["recall: the symbol"] == 0
    assert s["median"]["recall: the symbol"] < 1e-12 and 5 <= s["usable_lag"] < 30


def test_the_first_steps_are_real_training_and_adams_first_update_follows_the_gradient():
    runs = purelag.first_steps(T, H, SEED, steps=50, every=25)
    frame = runs["runs"]
    assert set(frame["step"]) == {0, 25, 50} and list(dict.fromkeys(frame["run"])) == \
        list(purelag.FIRST_RUNS)
    # the recall run, trained again on its own: the same biases after 50 steps
    config = purelag.lag_config("recall", T, H, SEED, steps=51, probe_every=25, eval_every=50,
                                eval_size=256, threads=1)
    trainer = Trainer(config)
    bf = {}
    for r in trainer.run():
        if r.kind == "probe":
            b = (trainer.model.recurrent.bias_ih_l0 + trainer.model.recurrent.bias_hh_l0)
            bf[r.step] = float(b.detach()[H:2 * H].double().mean())
    got = frame[frame["run"] == "recall, default init"].set_index("step")["bf_mean"]
    for step, value in bf.items():
        assert got[step] == pytest.approx(value, abs=1e-7)
    # Adam's first step: lr · sign(g) on b_ih and on b_hh, along −∂L/∂b_f on that batch
    update = purelag.first_update(purelag.bias_gradient(T, H, SEED), runs)
    assert update["size"] == pytest.approx(2 * runs["lr"], rel=1e-3)
    assert update["agree"] == update["units"] == H
    assert update["f_needed"] ** (T - 1) == pytest.approx(1e-3)
    sentence = narrate.first_steps_sentence(update, frame, runs["metrics"], runs["metric_names"],
                                            runs["lr"], 50, T)
    assert "= 2 × lr" in sentence and f"{update['agree']} of {H} along −∂L/∂b_f" in sentence


def test_at_t100_the_default_lstm_closes_its_forget_gate_while_chrono_opens_it():
    """The page's default setting, 150 real steps (BENCHMARKS.md: the default LSTM's b_f
    mean falls over training): the default's mean b_f falls, chrono's rises; adding's
    reach grows from its short lags while recall's does not."""
    runs = purelag.first_steps(100, 32, SEED)
    f = runs["runs"].set_index(["run", "step"])
    last = runs["steps"]
    assert f.loc[("recall, default init", last), "bf_change"] < -0.02
    assert f.loc[("recall, chrono init", last), "bf_change"] > 0.05
    assert f.loc[("adding, default init", last), "reach"] > f.loc[("adding, default init", 0),
                                                                  "reach"]
    assert f.loc[("recall, default init", last), "reach"] <= f.loc[("recall, default init", 0),
                                                                    "reach"] + 1


def test_the_sentences_read_the_measured_numbers():
    default = purelag.bias_gradient(T, H, SEED)
    chrono = purelag.bias_gradient(T, H, SEED, "chrono")
    text = narrate.pure_lag_gradient_sentence(default, chrono, purelag.SHORT_LAG)
    assert narrate.sci(default["cell_ratio"]) in text and narrate.sci(chrono["long_share"]) in text
    assert f"{default['short_share']:.1%}" in text
    table, curves = purelag.cell_drift(T, H, SEED, n=128, grad_batch=16)
    row = table.set_index("spec").loc["lstm:forget_bias=5"]
    gate = narrate.input_gate_sentence(table, T)
    assert f"{row['rms_end']:.3g}" in gate and f"{row['saturated']:.0%}" in gate
    nfg = narrate.no_forget_gate_sentence(table, curves, purelag.NFG_REMEDY)
    fix = table.set_index("spec").loc[purelag.NFG_REMEDY]
    assert "b_i = -3" in nfg and f"{fix['rms_end']:.3g}" in nfg


def test_the_bench_script_uses_the_core_tools():
    import bench.pure_lag as bench

    assert bench.parse_variant is purelag.parse_variant
    assert bench.edit_biases is purelag.edit_biases and bench.cell_stats is purelag.cell_stats
    options, edits = purelag.parse_variant("lstm:no_forget_gate=true:bias_i=stagger:-1:-4")
    assert options == {"arch": "lstm", "no_forget_gate": True} and edits == {"i": "stagger:-1:-4"}
    config = TrainConfig(task="recall", seq_len=T, hidden_size=H, **options)
    model = make_model(config, config.make_task())
    purelag.edit_biases(model, config, edits)
    b = (model.recurrent.bias_ih_l0 + model.recurrent.bias_hh_l0).detach()[:H]
    np.testing.assert_allclose(b.numpy(), np.linspace(-1, -4, H), rtol=1e-6)

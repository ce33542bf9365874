"""core.charts: every chart validates on realistic, empty and hostile data; specs are stable."""

from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd
import pytest

from core import charts as C

LSTM_Q = ("h", "c", "i", "f", "g", "o")
RUNS = ("lstm", "rnn_tanh (ρ=1.5)")


def probes(n_steps=5, T=20, runs=None, quantities=LSTM_Q, seed=0):
    """Synthetic probes: gradient decays geometrically going back in time."""
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product(
        [list(runs or [None]), np.linspace(0, 10 * n_steps, n_steps).astype(int),
         np.arange(T), list(quantities)], names=["run", "step", "t", "quantity"])
    df = idx.to_frame(index=False)
    df["grad_norm"] = 0.8 ** (T - 1 - df["t"]) * rng.uniform(0.5, 1.5, len(df))
    return df if runs else df.drop(columns="run")


def gates(n_steps=5, T=20, runs=None):
    p = probes(n_steps, T, runs, quantities=("i", "f", "o"))
    return p.rename(columns={"quantity": "gate", "grad_norm": "mean"}).assign(
        mean=lambda d: d["mean"].clip(0, 1))


def metrics(n=300, runs=None):
    frames = []
    for r in runs or [None]:
        step = np.arange(n)
        d = pd.DataFrame({"step": step, "loss": np.exp(-step / 100) + 0.05,
                          "metric": 0.5, "grad_norm": 1.0, "wall_s": step * 0.01})
        frames.append(d.assign(run=r) if r else d)
    return pd.concat(frames, ignore_index=True)


def evals(runs=None):
    return metrics(runs=runs).iloc[::25].assign(solved=False)


def summaries(n=10, runs=None):
    frames = []
    for r in runs or [None]:
        d = pd.DataFrame({"step": np.arange(n) * 10, "vanishing_ratio": np.logspace(-8, 0, n),
                          "gradient_reach": np.arange(n), "h_grad_first": 1e-3, "h_grad_last": 1.0})
        frames.append(d.assign(run=r) if r else d)
    return pd.concat(frames, ignore_index=True)


def sweep(n=4):
    rows = [{"arch": a, "seq_len": L, "rate": 0.5, "low": 0.2, "high": 0.8, "reach": L / 2}
            for a in ("lstm", "gru", "rnn_tanh") for L in (10, 20, 40, 80)[:n]]
    return pd.DataFrame(rows)


def hostile(df, col):
    """Zeros, denormals, NaN, ±inf in one column."""
    df = df.copy()
    bad = [0.0, 1e-30, np.nan, np.inf, -np.inf]
    df.loc[df.index[: len(bad)], col] = bad[: len(df)]
    return df


def build_all(kind):
    """Every chart function, fed realistic / empty / hostile frames."""
    E = pd.DataFrame()
    if kind == "empty":
        return {
            "loss": C.loss_chart(E, E, None), "loss_log": C.loss_chart(E, E, None, log_scale=True),
            "loss_runs": C.loss_chart(E, E, None, by="run"),
            "gradA": C.grad_time_heatmap(E), "gradA_runs": C.grad_time_heatmap(E, by="run"),
            "gateB": C.gate_heatmap(E), "gateB_runs": C.gate_heatmap(E, by="run"),
            "actC": C.activation_heatmap(E), "actC_runs": C.activation_heatmap(E, by="run"),
            "reach": C.reach_chart(E), "reach_runs": C.reach_chart(E, by="run"),
            "success": C.success_chart(E), "sweep": C.sweep_metric_chart(E, "reach", "reach"),
        }
    h = hostile if kind == "hostile" else (lambda df, col: df)
    return {
        "loss": C.loss_chart(h(metrics(), "loss"), h(evals(), "loss"), 0.3),
        "loss_log": C.loss_chart(h(metrics(), "loss"), h(evals(), "loss"), 0.0, log_scale=True),
        "loss_runs": C.loss_chart(h(metrics(runs=RUNS), "loss"), evals(RUNS), 0.3, by="run"),
        "gradA": C.grad_time_heatmap(h(probes(), "grad_norm")),
        "gradA_runs": C.grad_time_heatmap(h(probes(runs=RUNS), "grad_norm"), by="run"),
        "gateB": C.gate_heatmap(h(probes(), "grad_norm")),
        "gateB_runs": C.gate_heatmap(h(probes(runs=RUNS), "grad_norm"), step=20, by="run"),
        "actC": C.activation_heatmap(h(gates(), "mean")),
        "actC_runs": C.activation_heatmap(h(gates(runs=RUNS), "mean"), by="run"),
        "reach": C.reach_chart(h(summaries(), "vanishing_ratio")),
        "reach_runs": C.reach_chart(h(summaries(runs=RUNS), "vanishing_ratio"), by="run"),
        "success": C.success_chart(h(sweep(), "rate")),
        "sweep": C.sweep_metric_chart(h(sweep(), "reach"), "reach", "gradient reach"),
    }


def datasets(spec):
    """All inline value lists of a to_dict() spec (Altair consolidates them by name)."""
    return list(spec.get("datasets", {}).values())


def strip_data(obj):
    """The spec without its data: what must not change between refreshes."""
    if isinstance(obj, dict):
        return {k: strip_data(v) for k, v in obj.items() if k not in ("data", "datasets")}
    if isinstance(obj, list):
        return [strip_data(v) for v in obj]
    return obj


@pytest.mark.parametrize("kind", ["realistic", "empty", "hostile"])
def test_every_chart_validates(kind):
    for name, chart in build_all(kind).items():
        assert isinstance(chart, alt.TopLevelMixin), name
        spec = chart.to_dict()          # validates against the Vega-Lite schema
        json.dumps(spec, allow_nan=False)   # no NaN/inf leaks into the payload
        if kind == "empty":
            assert all(len(v) == 0 for v in datasets(spec)), name


def test_hostile_values_are_dropped_or_floored():
    h_only = probes(quantities=("h",))
    chart = C.grad_time_heatmap(hostile(h_only, "grad_norm"))
    g = chart.data["grad_norm"]
    assert np.isfinite(g).all() and g.min() >= C.GRAD_FLOOR
    assert len(chart.data) == len(h_only) - 3   # NaN, +inf, -inf dropped; 0 and 1e-30 floored
    loss = C.loss_chart(hostile(metrics(), "loss"), evals(), 0.0, log_scale=True)
    line, rule, _ = loss.layer
    assert np.isfinite(line.data["loss"]).all() and line.data["loss"].min() >= C.LOSS_FLOOR
    assert rule.data["baseline"].tolist() == [C.LOSS_FLOOR]       # baseline 0 on a log axis


def test_clamp_log_and_latest_step():
    s = C.clamp_log(pd.Series([0.0, 1e-30, 0.5, np.nan, np.inf, -np.inf]))
    assert s.tolist()[:3] == [1e-12, 1e-12, 0.5] and s.iloc[3:].isna().all()
    assert C.latest_step(probes()) == 50
    assert C.latest_step(pd.DataFrame()) is None
    assert C.latest_step(pd.DataFrame({"step": []})) is None


def test_heatmap_a_downsamples_to_200_steps_keeping_first_and_last():
    p = probes(n_steps=1000, T=5, quantities=("h",))
    steps = np.sort(p["step"].unique())
    kept = C.grad_time_heatmap(p).data["step"].unique()
    assert len(kept) <= 200 and {steps[0], steps[-1]} <= set(kept)
    runs = C.grad_time_heatmap(probes(n_steps=1000, T=3, runs=RUNS, quantities=("h",)), by="run")
    assert runs.data.groupby("run")["step"].nunique().max() <= 200


def test_downsample_steps_bounds_rows_per_key():
    m = metrics(n=5000, runs=RUNS)
    d = C.downsample_steps(m, 500)
    assert (d.groupby("run").size() <= 500).all()
    assert set(d.groupby("run")["step"].max()) == {4999} and set(d.groupby("run")["step"].min()) == {0}
    assert C.downsample_steps(m.iloc[:10], 500).equals(m.iloc[:10].reset_index(drop=True))


def test_loss_chart_is_bounded_and_labels_the_baseline():
    chart = C.loss_chart(metrics(n=20000), evals(), 0.3)
    line = chart.layer[0].data
    assert (line["series"] == "train (smoothed)").sum() <= 500
    assert "baseline (input-independent)" in json.dumps(chart.to_dict(), ensure_ascii=False)


@pytest.mark.parametrize("make", [
    lambda n: C.loss_chart(metrics(n * 50), evals(), 0.3),
    lambda n: C.loss_chart(metrics(n * 50, RUNS), evals(RUNS), 0.3, by="run"),
    lambda n: C.grad_time_heatmap(probes(n, T=n)),
    lambda n: C.grad_time_heatmap(probes(n, runs=RUNS), by="run"),
    lambda n: C.gate_heatmap(probes(n, T=n)),
    lambda n: C.activation_heatmap(gates(n, runs=RUNS), by="run"),
    lambda n: C.reach_chart(summaries(n, RUNS), by="run"),
    lambda n: C.success_chart(sweep(n)),
])
def test_spec_is_stable_when_only_data_changes(make):
    small, large = make(2), make(4)
    assert strip_data(small.to_dict()) == strip_data(large.to_dict())


@pytest.mark.parametrize("fn", [C.grad_time_heatmap, C.gate_heatmap])
def test_small_multiples_share_one_log_colour_scale(fn):
    spec = fn(probes(runs=RUNS), by="run").to_dict()
    assert spec["resolve"]["scale"]["color"] == "shared"
    assert [p["title"]["text"] for p in spec["hconcat"]] == list(RUNS)
    for panel in spec["hconcat"]:
        colour = panel["encoding"]["color"]
        assert colour["scale"]["type"] == "log" and "log" in colour["title"]


def test_panels_follow_the_order_given_and_each_shows_only_its_own_rows():
    lstm = probes(runs=["lstm (CIFG)"], quantities=LSTM_Q)
    gru = probes(runs=["gru"], quantities=("h", "r", "z", "n"))
    rnn = probes(runs=["rnn_tanh"], quantities=("h",))
    both = pd.concat([lstm, gru, rnn], ignore_index=True)
    order = ["rnn_tanh", "lstm (CIFG)", "gru"]            # as picked, not alphabetical
    spec = C.gate_heatmap(both, by="run", order=order).to_dict()
    assert [p["title"]["text"] for p in spec["hconcat"]] == order
    assert spec["resolve"]["scale"]["y"] == "independent"    # no blank rows for other models
    filters = [p["transform"][0]["filter"] for p in spec["hconcat"]]
    assert [f["equal"] for f in filters] == order
    # a model without gates gets no panel in C
    g = pd.concat([gates(runs=["lstm"]), gates(runs=["gru"])], ignore_index=True)
    spec = C.activation_heatmap(g, by="run", order=["rnn_tanh", "gru", "lstm"]).to_dict()
    assert [p["title"]["text"] for p in spec["hconcat"]] == ["gru", "lstm"]


def test_a_gate_gradient_of_exactly_zero_is_blank_and_a_state_gradient_is_floored():
    p = probes(T=4, quantities=("h", "f"))
    p.loc[(p["t"] == 0), "grad_norm"] = 0.0      # f at t = 0 has no path; h underflowed
    d = C.gate_heatmap(p).data
    first = d[d["t"] == 0]
    assert set(first["quantity"]) == {"h"} and (first["grad_norm"] == C.GRAD_FLOOR).all()


def test_one_colour_per_architecture_and_its_variants_share_its_hue():
    colours = C.model_colours(["lstm (CIFG)", "gru", "lstm", "rnn_tanh (ρ=1.5)", "lstm (forget bias 1)"])
    assert colours["lstm"] == C.ARCH_COLOURS["lstm"]          # the plain arch, wherever it is
    assert colours["gru"] == C.ARCH_COLOURS["gru"]
    assert colours["rnn_tanh (ρ=1.5)"] == C.ARCH_COLOURS["rnn_tanh"]   # first of its arch
    assert len(set(colours.values())) == len(colours)
    for variant in ("lstm (CIFG)", "lstm (forget bias 1)"):
        assert _hue(colours[variant]) == pytest.approx(_hue(C.ARCH_COLOURS["lstm"]), abs=0.02)
    assert C.arch_of("RNN tanh: h") == "rnn_tanh" and C.arch_of("a1b2 · gru") == "gru"
    assert C.arch_of("lstm:forget_bias=1") == "lstm" and C.arch_of("mlp") is None
    # the same model gets the same colour on every page: Compare's loss chart and heatmaps
    order = ["gru", "lstm"]
    loss = C.loss_chart(metrics(runs=order), evals(order), 0.3, by="run", order=order).to_dict()
    scale = loss["layer"][0]["encoding"]["color"]["scale"]
    assert scale == {"domain": order, "range": [C.ARCH_COLOURS["gru"], C.ARCH_COLOURS["lstm"]]}


def _hue(colour: str) -> float:
    import colorsys
    return colorsys.rgb_to_hls(*(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)))[0]


def test_the_sweep_legend_lists_only_what_is_drawn_and_markers_do_not_hide_each_other():
    spec = C.success_chart(sweep()).to_dict()
    for layer in spec["layer"]:
        enc = layer["encoding"]
        assert enc["color"]["scale"]["domain"] == ["rnn_tanh", "lstm", "gru"]   # no rnn_relu
        assert enc["xOffset"]["field"] == "arch"       # side by side at equal rates
    shapes = [layer["encoding"]["shape"]["scale"]["range"] for layer in spec["layer"]
              if "shape" in layer["encoding"]]
    assert shapes and len(set(shapes[0])) == 3


def test_loss_axis_reads_huge_numbers_and_steps_are_whole():
    spec = C.loss_chart(metrics(), evals(), 0.3).to_dict()
    enc = spec["layer"][0]["encoding"]
    assert enc["x"]["axis"]["tickMinStep"] == 1 and enc["x"]["axis"]["format"] == "d"
    assert "1e" in enc["y"]["axis"]["labelExpr"] or ".1e" in enc["y"]["axis"]["labelExpr"]


def test_colour_legend_titles_are_short_enough_to_show():
    for chart in (C.grad_time_heatmap(probes()), C.gate_heatmap(probes()),
                  C.activation_heatmap(gates())):
        title = chart.to_dict()["encoding"]["color"]["title"]
        assert len(title) <= 18, title


def test_activation_colour_domain_is_fixed_to_unit_interval():
    spec = C.activation_heatmap(gates()).to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 1]


def test_exports_png_and_svg():
    chart = C.gate_heatmap(probes())
    assert C.chart_to_png(chart).startswith(b"\x89PNG")
    assert "<svg" in C.chart_to_svg(C.loss_chart(metrics(), evals(), 0.3))


def test_a_diverging_probe_keeps_its_time_axis_and_an_undefined_reach_is_not_drawn():
    p = probes(n_steps=2, T=6, quantities=("h",))
    p.loc[(p["step"] == p["step"].max()) & (p["t"] < 5), "grad_norm"] = np.inf
    spec = C.gate_heatmap(p).to_dict()
    assert spec["encoding"]["x"]["scale"]["domain"] == list(range(6))   # not one wide cell
    assert "scale" not in C.gate_heatmap(probes(T=6)).to_dict()["encoding"]["x"]
    s = summaries(n=4).assign(gradient_reach=[20, 20, 0, 0],
                              vanishing_ratio=[30.0, 40.0, np.inf, np.nan])
    reach = C.reach_chart(s).hconcat[0].data
    assert reach["gradient_reach"].tolist() == [20, 20]     # reach 0 there means undefined


def test_one_run_is_drawn_in_its_architectures_colour():
    spec = C.loss_chart(metrics(), evals(), 0.3, colour=C.ARCH_COLOURS["lstm"]).to_dict()
    enc = spec["layer"][0]["encoding"]
    assert enc["color"] == {"value": C.ARCH_COLOURS["lstm"]}
    assert enc["strokeDash"]["field"] == "series"
    reach = C.reach_chart(summaries(), colour=C.ARCH_COLOURS["gru"]).to_dict()
    assert all(p["mark"]["color"] == C.ARCH_COLOURS["gru"] for p in reach["hconcat"])


def test_an_architecture_keeps_its_colour_and_marker_in_charts_that_omit_others():
    order = ["rnn_tanh", "lstm", "lstm:forget_bias=1", "gru"]
    full = C.success_chart(sweep(), order=order).to_dict()["layer"][0]["encoding"]
    gru_only = C.sweep_metric_chart(sweep().query("arch == 'gru'"), "reach", "reach",
                                    order=order).to_dict()["layer"][0]["encoding"]
    assert gru_only["color"]["scale"]["domain"] == ["gru"]
    i = full["color"]["scale"]["domain"].index("gru")
    assert gru_only["color"]["scale"]["range"] == [full["color"]["scale"]["range"][i]]
    assert gru_only["shape"]["scale"]["range"] == [full["shape"]["scale"]["range"][i]]

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
    assert spec["facet"]["column"]["field"] == "run"
    colour = spec["spec"]["encoding"]["color"]
    assert colour["scale"]["type"] == "log" and "(log" in colour["title"]


def test_activation_colour_domain_is_fixed_to_unit_interval():
    spec = C.activation_heatmap(gates()).to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 1]


def test_exports_png_and_svg():
    chart = C.gate_heatmap(probes())
    assert C.chart_to_png(chart).startswith(b"\x89PNG")
    assert "<svg" in C.chart_to_svg(C.loss_chart(metrics(), evals(), 0.3))

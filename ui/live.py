"""Drawing a run (or several side by side) from snapshots of its records.

The worker thread only appends records; these functions read copies
(``RunData.table``) and draw them with the one chart module, ``core.charts``.
While a job is alive, ``live_view`` redraws inside ``st.fragment(run_every=…)``.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core import charts
from core.jobs import TrainingJob
from core.narrate import describe_gradient, sci
from core.runs import RunData

REFRESH_S = 1.0


def show_chart(chart, key: str) -> None:
    """st.altair_chart without Altair's JSON-schema validation on every redraw.

    Validation is most of the cost of a redraw (≈ 0.1 s per chart, on the script
    thread, once a second while training); the chart module's specs are validated
    once in tests/test_charts.py instead, and their structure does not depend on data.
    """
    to_dict = chart.to_dict
    object.__setattr__(chart, "to_dict", lambda *a, **kw: to_dict(*a, **{**kw, "validate": False}))
    st.altair_chart(chart, key=key)


def _fmt_eta(status: dict) -> str:
    rate, step, steps = status.get("steps_per_s"), status.get("step", 0), status.get("steps", 0)
    if not rate or status.get("status") != "running":
        return "—"
    left = (steps - step) / rate
    return f"{left:.0f} s" if left < 120 else f"{left / 60:.1f} min"


def status_header(data: RunData, job: TrainingJob | None = None) -> dict:
    """Status line, progress bar and headline numbers; returns the status dict."""
    s = data.status_copy()
    state = s.get("status", "?")
    line = f"Status: {state}"
    if state == "queued" and job is not None:
        pos = job.queue_position
        line += f" — waiting for a free training slot{f' (#{pos} in the queue)' if pos else ''}"
    st.markdown(f"**{line}**")
    steps = max(1, int(s.get("steps") or 1))
    st.progress(min(1.0, s.get("step", 0) / steps))
    st.caption(f"Step {s.get('step', 0)} / {steps}")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Steps per second", f"{s['steps_per_s']:.1f}" if s.get("steps_per_s") else "—")
    c2.metric("Time left", _fmt_eta(s))
    metric_name = s.get("metric_name", "metric")
    c3.metric(f"Held-out {metric_name}", sci(s.get("eval_metric")))
    c4.metric("Solved", f"at step {s['steps_to_solve']}" if s.get("solved") else "not yet")
    if s.get("message"):
        (st.error if state == "diverged" else st.info)(s["message"])
    if job is not None and job.save_error:
        st.warning(f"{job.save_error}. The charts below are kept in memory for this session.")
    return s


def _probe_step_picker(probes: pd.DataFrame, key: str) -> int | None:
    """A slider over probe steps that follows the latest probe unless moved back."""
    steps = sorted(int(v) for v in probes["step"].unique()) if len(probes) else []
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    follow_key = f"{key}_latest"
    if key not in st.session_state or st.session_state[key] not in steps or (
        st.session_state[key] == st.session_state.get(follow_key)
    ):
        st.session_state[key] = steps[-1]
    st.session_state[follow_key] = steps[-1]
    return st.select_slider("Probe at training step", options=steps, key=key,
                            help="Scrub back through earlier probes")


def run_charts(data: RunData, key: str) -> None:
    """Loss curve and the three heatmaps of one run, with the sentence that reads them."""
    s = data.status_copy()
    metrics, evals = data.table("metrics"), data.table("evals")
    probes, gates = data.table("probes"), data.table("gates")
    summaries = data.table("summaries")
    arch = data.config.arch
    log = st.toggle("Log-scale loss", key=f"{key}_log")
    show_chart(charts.loss_chart(metrics, evals, s.get("baseline_loss"), log_scale=log), f"{key}_loss")
    if probes.empty:
        st.info("The gradient heatmaps appear after the first probe"
                + (" (probing is off for this run)." if data.config.probe_every == 0 else "."))
        return
    latest = summaries.iloc[-1].to_dict() if len(summaries) else {}
    step = charts.latest_step(probes)
    latest.update(_gate_means(gates, step), steps=int(probes["t"].max()) + 1)
    latest.update(_cell_ratio(probes, step))
    st.markdown(f"**At training step {step}:** {describe_gradient(latest, arch)}")
    st.subheader("A · Gradient reaching each time step, over training")
    st.caption("‖∂ℓ/∂h_t‖ by time step t (x) and training step (y), log colour scale. "
               "Dark on the left = the gradient from the loss never reaches the early steps.")
    show_chart(charts.grad_time_heatmap(probes, "h"), f"{key}_heatA")
    if arch == "lstm":
        st.caption("The same for the cell state c_t: the additive path whose gain is the forget gate.")
        show_chart(charts.grad_time_heatmap(probes, "c"), f"{key}_heatA_c")
    st.subheader("B · Gradient by time step and gate")
    chosen = _probe_step_picker(probes, f"{key}_probe_step")
    show_chart(charts.gate_heatmap(probes, step=chosen), f"{key}_heatB")
    if not gates.empty:
        st.subheader("C · Mean gate activation by time step")
        st.caption("What the gates do: f near 1 keeps the cell (and its gradient); "
                   "z near 1 carries the GRU state.")
        show_chart(charts.activation_heatmap(gates, step=chosen), f"{key}_heatC")
    st.subheader("Gradient reach over training")
    show_chart(charts.reach_chart(summaries), f"{key}_reach")


def _gate_means(gates: pd.DataFrame, step: int | None) -> dict:
    if gates.empty or step is None:
        return {}
    g = gates[gates["step"] == step]
    return {f"mean_{k}": float(v) for k, v in g.groupby("gate")["mean"].mean().items()}


def _cell_ratio(probes: pd.DataFrame, step: int | None) -> dict:
    c = probes[(probes["step"] == step) & (probes["quantity"] == "c")].sort_values("t")
    if c.empty or not c["grad_norm"].iloc[-1] > 0:
        return {}
    return {"cell_ratio": float(c["grad_norm"].iloc[0] / c["grad_norm"].iloc[-1])}


def live_view(job: TrainingJob | None, datas: list[RunData], key: str, draw) -> None:
    """Redraw ``draw(datas)`` every second while ``job`` trains; once otherwise.

    When the job ends, the whole page reruns once so buttons and tables update.
    """
    alive = job is not None and job.alive

    @st.fragment(run_every=REFRESH_S if alive else None)
    def _view():
        draw(datas)
        if alive and not job.alive:
            st.rerun(scope="app")

    _view()


def is_finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)

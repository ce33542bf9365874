"""Compare: two to four models trained together on identical batches."""

import functools

import pandas as pd
import streamlit as st

from core import charts
from core.narrate import sci
from core.presets import COMPARE_MODELS, DEFAULT_COMPARE
from core.runs import RunData
from ui.config_form import config_sidebar
from ui.live import cached_chart, data_key, live_view, templated_chart
from ui.state import attached_runs, start_stop_buttons
from ui.bootstrap import ensure_app

ensure_app("compare")

st.title("Compare architectures side by side")
st.caption(
    "One task, one seed, one data stream: every model sees exactly the same batches, in "
    "lockstep, so differences in the curves come from the architecture alone."
)

job, datas, problem = attached_runs("compare")
config = config_sidebar("compare", show_arch=False)

if "models" in st.query_params and "compare_models" not in st.session_state:
    wanted = [m for m in st.query_params["models"].split(",") if m in COMPARE_MODELS]
    st.session_state["compare_models"] = wanted or list(DEFAULT_COMPARE)
models = st.multiselect("Models", list(COMPARE_MODELS), default=list(DEFAULT_COMPARE),
                        key="compare_models", max_selections=4,
                        help="Pick two to four architectures or variants")
st.query_params["models"] = ",".join(models)

job, datas, started = start_stop_buttons(
    "compare", job, datas, lambda: [config.replace(**COMPARE_MODELS[m]) for m in models],
    label="Train together", can_start=len(models) >= 2, widths=(1.4, 1, 5))
if started:
    problem = None
if len(models) < 2:
    st.info("Pick at least two models to compare.")
if problem:
    st.error(problem)


def _label(d: RunData) -> str:
    return d.config.label()


def _stack(ds: list[RunData], table: str) -> pd.DataFrame:
    frames = [d.table(table).assign(run=_label(d)) for d in ds]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summary_table(ds: list[RunData]) -> pd.DataFrame:
    rows = []
    for d in ds:
        s = d.status_copy()
        rows.append({
            "model": _label(d), "status": s.get("status"), "step": s.get("step"),
            "vanishing ratio": sci(s.get("vanishing_ratio")),
            "gradient reach": s.get("gradient_reach"),
            f"held-out {s.get('metric_name', 'metric')}": s.get("eval_metric"),
            "held-out loss": s.get("eval_loss"),
            "solved": bool(s.get("solved")),
            "steps to solve": s.get("steps_to_solve"),
        })
    return pd.DataFrame(rows)


def draw(ds: list[RunData]) -> None:
    statuses = {d.status_copy().get("status") for d in ds}
    step = min(d.status_copy().get("step", 0) for d in ds)
    steps = ds[0].config.steps
    st.markdown(f"**Status: {', '.join(sorted(statuses))}**")
    st.progress(min(1.0, step / max(1, steps)))
    st.caption(f"Step {step} / {steps}")
    st.dataframe(summary_table(ds), hide_index=True)
    baseline = ds[0].status_copy().get("baseline_loss")
    log = st.toggle("Log-scale loss", key="compare_log")
    # Charts are rebuilt only when the tables they draw have grown (see cached_chart); the
    # loss curves, which grow every second, only get new data in a spec built once.
    templated_chart(("cmp_loss", log, baseline) + data_key(ds, "metrics", "evals"),
                    "compare_loss", ("cmp_loss", log),
                    lambda: charts.loss_frames(_stack(ds, "metrics"), _stack(ds, "evals"),
                                               baseline, log_scale=log, by="run"),
                    lambda frames: charts.loss_layers(frames, log_scale=log, by="run"))
    probed = data_key(ds, "probes", "gates", "summaries")
    if not any(d.versions()["probes"] for d in ds):
        st.info("The gradient heatmaps appear after the first probe.")
        return
    probes = functools.cache(lambda: _stack(ds, "probes"))  # built only if a chart needs it
    st.subheader("A · Gradient reaching each time step, over training")
    st.caption("One colour scale for all models: darker means less gradient.")
    cached_chart(("cmp_heatA",) + probed, "compare_heatA",
                 lambda: charts.grad_time_heatmap(probes(), "h", by="run"))
    st.subheader("B · Gradient by time step and gate, at the latest probe")
    cached_chart(("cmp_heatB",) + probed, "compare_heatB",
                 lambda: charts.gate_heatmap(probes(), by="run"))
    if any(d.versions()["gates"] for d in ds):
        st.subheader("C · Mean gate activation")
        cached_chart(("cmp_heatC",) + probed, "compare_heatC",
                     lambda: charts.activation_heatmap(_stack(ds, "gates"), by="run"))
    st.subheader("Gradient reach over training")
    cached_chart(("cmp_reach",) + probed, "compare_reach",
                 lambda: charts.reach_chart(_stack(ds, "summaries"), by="run"))


if datas:
    live_view(job if job is not None and job.alive else None, datas, "compare", draw)
else:
    st.info("Pick models and press **Train together**.")

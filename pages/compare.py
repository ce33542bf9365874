"""Compare: two to four models trained together on identical batches."""

import functools

import pandas as pd
import streamlit as st

from core import charts
from core.narrate import compare_sentence, ratio_band, ratio_scale, sci
from core.presets import COMPARE_MODELS, COMPARISONS, DEFAULT_COMPARE
from core.runs import RunData
from ui.config_form import config_sidebar
from ui.live import cached_chart, data_key, live_note, live_view, templated_chart
from ui.state import attached_runs, start_stop_buttons
from ui.bootstrap import ensure_app

ensure_app("compare")

st.title("Compare architectures side by side")
st.caption(
    "One task, one seed, one data stream: every model sees exactly the same batches, in "
    "lockstep, so differences in the curves come from the architecture alone."
)

st.markdown("Ready-made: " + " · ".join(f"[{name}]({c.link()}) ({c.what})"
                                         for name, c in COMPARISONS.items()))

job, datas, problem = attached_runs("compare")
config = config_sidebar("compare", show_arch=False)

MAX_MODELS = 4
if "models" in st.query_params and "compare_models" not in st.session_state:
    asked = [m for m in st.query_params["models"].split(",") if m]
    unknown = [m for m in asked if m not in COMPARE_MODELS]
    wanted = list(dict.fromkeys(m for m in asked if m in COMPARE_MODELS))
    notes = []
    if unknown:
        notes.append(f"The link names {', '.join(repr(m) for m in unknown)}, which "
                     f"{'is not a model' if len(unknown) == 1 else 'are not models'} of this "
                     f"page (models: {', '.join(COMPARE_MODELS)}).")
    if len(wanted) > MAX_MODELS:
        notes.append(f"The link names {len(wanted)} models; this page compares at most "
                     f"{MAX_MODELS}, so it shows the first {MAX_MODELS}: "
                     f"{', '.join(wanted[:MAX_MODELS])}.")
        wanted = wanted[:MAX_MODELS]
    st.session_state["compare_models"] = wanted or list(DEFAULT_COMPARE)
    # Shown until the models are changed (the URL is rewritten to the models kept).
    st.session_state["compare_link_notes"] = (tuple(st.session_state["compare_models"]), notes)
kept, notes = st.session_state.get("compare_link_notes", ((), []))
if notes and tuple(st.session_state.get("compare_models", ())) == kept:
    for note in notes:
        st.warning(note)
models = st.multiselect("Models", list(COMPARE_MODELS), default=list(DEFAULT_COMPARE),
                        key="compare_models", max_selections=MAX_MODELS,
                        help="Pick two to four architectures or variants; they are shown in "
                             "the order picked")
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


def _solved(s: dict) -> str:
    if s.get("solved"):
        return f"at step {s.get('steps_to_solve')}"
    return "no" if s.get("status") in ("finished", "stopped", "diverged") else "not yet"


def model_rows(ds: list[RunData]) -> list[dict]:
    """The measured numbers of each model, in the order shown (for the table and sentence)."""
    rows = []
    for d in ds:
        s = d.status_copy()
        rows.append({
            "label": _label(d), "status": s.get("status"), "step": s.get("step"),
            "steps": s.get("steps"), "solved": bool(s.get("solved")),
            "steps_to_solve": s.get("steps_to_solve"), "eval_loss": s.get("eval_loss"),
            "eval_metric": s.get("eval_metric"), "metric_name": s.get("metric_name", "metric"),
            "baseline": s.get("baseline_loss"), "vanishing_ratio": s.get("vanishing_ratio"),
            "gradient_reach": s.get("gradient_reach"), "seq_steps": d.config.make_task().steps,
        })
    return rows


def summary_table(rows: list[dict]) -> pd.DataFrame:
    """One row per model, numbers as people read them (narrate.sci), "—" where there is
    none yet; one held-out column when the task's metric is its loss (adding: the MSE)."""
    same = all(r["eval_metric"] == r["eval_loss"] for r in rows)
    out = []
    for r in rows:
        band = ratio_band(r["vanishing_ratio"]) if r["vanishing_ratio"] is not None else None
        reach = r["gradient_reach"]
        row = {
            "model": r["label"], "status": r["status"] or "—", "step": r["step"] or 0,
            "ratio h₀/h_T−1": sci(r["vanishing_ratio"]),
            "at step 0": band.name if band else "—",
            "reach": f"{int(reach)} / {r['seq_steps']}" if reach is not None else "—",
        }
        metric = f"held-out {r['metric_name']}"
        row[metric] = sci(r["eval_metric"])
        if not same:
            row["held-out loss"] = sci(r["eval_loss"])
        row["solved"] = _solved(r)
        out.append(row)
    return pd.DataFrame(out)


narrate_scale = ratio_scale()


def draw(ds: list[RunData]) -> None:
    statuses = {d.status_copy().get("status") for d in ds}
    step = min(d.status_copy().get("step", 0) for d in ds)
    steps = ds[0].config.steps
    order = [_label(d) for d in ds]       # the order picked
    live = bool(statuses & {"queued", "running"})
    st.markdown(f"**Status: {', '.join(sorted(statuses))}**{live_note(live)}")
    st.progress(min(1.0, step / max(1, steps)))
    st.caption(f"Step {step} / {steps}")
    rows = model_rows(ds)
    st.dataframe(summary_table(rows), hide_index=True, column_config={
        "ratio h₀/h_T−1": st.column_config.TextColumn(
            help="‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖ at the latest probe"),
        "at step 0": st.column_config.TextColumn(help=narrate_scale),
        "reach": st.column_config.TextColumn(help="Gradient reach: steps back from the last "
                                             "whose gradient stays ≥ 1e-3 of the largest "
                                             "after them")})
    same = all(r["eval_metric"] == r["eval_loss"] for r in rows)
    st.caption(f"Baseline loss {sci(rows[0]['baseline'])}: what a model that ignores its "
               "inputs scores." + (f" The held-out {rows[0]['metric_name']} is the held-out "
                                   "loss." if same else ""))
    st.markdown(compare_sentence(rows))
    baseline = ds[0].status_copy().get("baseline_loss")
    log = st.toggle("Log-scale loss", key="compare_log")
    # Charts are rebuilt only when the tables they draw have grown (see cached_chart); the
    # loss curves, which grow every second, only get new data in a spec built once per
    # structure (the colours follow the models' order, so it is part of the structure).
    templated_chart(("cmp_loss", log, baseline) + data_key(ds, "metrics", "evals"),
                    "compare_loss", ("cmp_loss", log, tuple(order)),
                    lambda: charts.loss_frames(_stack(ds, "metrics"), _stack(ds, "evals"),
                                               baseline, log_scale=log, by="run"),
                    lambda frames: charts.loss_layers(frames, log_scale=log, by="run",
                                                      order=order))
    probed = data_key(ds, "probes", "gates", "summaries")
    if not any(d.versions()["probes"] for d in ds):
        st.info("The gradient heatmaps appear after the first probe.")
        return
    probes = functools.cache(lambda: _stack(ds, "probes"))  # built only if a chart needs it
    st.subheader("A · Gradient reaching each time step, over training")
    st.caption("‖∂ℓ/∂h_t‖ by time step t and training step, one log colour scale for all "
               "models: darker means less gradient.")
    cached_chart(("cmp_heatA",) + probed, "compare_heatA",
                 lambda: charts.grad_time_heatmap(probes(), "h", by="run", order=order))
    st.subheader("B · Gradient by time step and gate, at the latest probe")
    st.caption("Each model with its own rows: h, the LSTM's cell c and the gates' "
               "pre-activations (i f g o; the GRU's r z n). A blank gate cell is a gradient "
               "of exactly 0: a path that does not exist (f at t = 0 multiplies c₋₁ = 0).")
    cached_chart(("cmp_heatB",) + probed, "compare_heatB",
                 lambda: charts.gate_heatmap(probes(), by="run", order=order))
    if any(d.versions()["gates"] for d in ds):
        st.subheader("C · Gate values, at the latest probe")
        st.caption("Mean over units and sequences; f_max / z_max: the most open unit. Models "
                   "without gates (the vanilla RNN) have no panel.")
        cached_chart(("cmp_heatC",) + probed, "compare_heatC",
                     lambda: charts.activation_heatmap(_stack(ds, "gates"), by="run",
                                                       order=order))
    st.subheader("Gradient reach over training")
    cached_chart(("cmp_reach",) + probed, "compare_reach",
                 lambda: charts.reach_chart(_stack(ds, "summaries"), by="run", order=order))


if datas:
    live_view(job if job is not None and job.alive else None, datas, "compare", draw)
else:
    st.info("Pick models and press **Train together**.")

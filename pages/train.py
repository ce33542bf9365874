"""Train: one model on one task, with live loss curves and gradient heatmaps."""

import streamlit as st

from ui.config_form import config_sidebar
from ui.live import live_view, run_charts, status_header, task_example
from ui.state import attached_runs, start_stop_buttons
from ui.bootstrap import ensure_app

ensure_app("train")

st.title("Train a recurrent network and watch its gradient")
st.caption(
    "Pick a task and an architecture (or a preset in the sidebar), press **Train**, and "
    "watch how much of the loss gradient reaches each earlier time step."
)

job, datas, problem = attached_runs("train")
# A link to one run (?run=<id>, from the Runs page or a lesson) opens the form at its settings.
config = config_sidebar("train", disabled=False,
                        initial=datas[0].config if len(datas) == 1 else None)
task = config.make_task()
st.markdown(f"**{task.name}**, T = {config.seq_len}: {task.description} "
            f"Baseline loss (input-independent): {task.baseline_loss:.4g}.")
task_example(task, config.seed, expanded=not datas)

job, datas, started = start_stop_buttons("train", job, datas, lambda: [config])
if started:
    problem = None
if problem:
    st.error(problem)
if not datas:
    st.info("No run yet: press **Train**.")
else:
    def draw(ds):
        status_header(ds[0], job)
        run_charts(ds[0], key="train")

    live_view(job if job is not None and job.alive else None, datas, "train", draw)

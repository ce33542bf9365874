"""Train: one model on one task, with live loss curves and gradient heatmaps."""

import streamlit as st

from ui.config_form import config_sidebar
from ui.live import live_view, run_charts, status_header
from ui.state import LimitReached, attached_runs, start_job
from ui.bootstrap import ensure_app

ensure_app("train")

st.title("Train a recurrent network and watch its gradient")
st.caption(
    "Pick a task and an architecture (or a preset in the sidebar), press **Train**, and "
    "watch how much of the loss gradient reaches each earlier time step."
)

job, datas, problem = attached_runs("train")
running = job is not None and job.busy
config = config_sidebar("train", disabled=False)
task = config.make_task()
st.markdown(f"**{task.name}**, T = {config.seq_len}: {task.description} "
            f"Baseline loss (input-independent): {task.baseline_loss:.4g}.")

c1, c2, _ = st.columns([1, 1, 6])
if c1.button("Train", type="primary", disabled=running):
    try:
        job = start_job("train", [config])
        datas, running, problem = [r.data for r in job.runs], True, None
    except LimitReached as e:
        st.error(str(e))
if c2.button("Stop", disabled=not running):
    job.stop()
    job.join(timeout=5)
    running = job.busy

if problem:
    st.error(problem)
if not datas:
    st.info("No run yet: press **Train**.")
else:
    def draw(ds):
        status_header(ds[0], job)
        run_charts(ds[0], key="train")

    live_view(job if job is not None and job.alive else None, datas, "train", draw)

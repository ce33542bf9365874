"""Learn (the address "/"): the question, one button, the answer's picture; and the lesson.

Without ``?lesson``: the landing. One click races a vanilla RNN, an LSTM and a GRU in
lockstep on identical batches (core.lessons.RACE) and shows heatmap A of the three on one
colour scale, their loss curves and one caption per model that reads its numbers: all
above the fold at 1280×720. The settings sit behind "Advanced".

``?lesson=N`` (1…7): one step of the guided lesson (core.lessons.STEPS), with what to
do, what to look at and what it means, its one button and its own live charts, and
previous/next links, so a presenter can step through and any step can be shared.
"""

import streamlit as st

from core import captions, lessons
from core.presets import COMPARE_MODELS
from ui.bootstrap import ensure_app
from ui.config_form import url_params
from ui.learn_view import (
    draw_step,
    heatmap_a,
    loss_chart,
    model_captions,
    status_line,
    three_answers,
    verdict_md,
)
from ui.live import live_view, task_example
from ui.state import attached_runs, results_label, start_stop_buttons

ensure_app("learn")

PAGE = "pages/learn.py"
LANDING_HEIGHT = 230   # px per heatmap panel and loss chart: all of it above a 720 px fold
# The landing is made to fit one 1280×720 screen: less empty space above the question.
COMPACT = """<style>
.stMainBlockContainer { padding-top: 3.2rem; padding-bottom: 2rem; }
</style>"""


def accepts(step: lessons.Step):
    """Runs belong to ``step`` only if they were trained with its settings, in its order."""
    wanted = step.configs()

    def accept(configs) -> bool:
        return len(configs) == len(wanted) and all(
            captions.same_settings(a, b) for a, b in zip(configs, wanted))
    return accept


def lesson_link(number: int, label: str, **kw) -> None:
    st.page_link(PAGE, label=label, query_params={"lesson": str(number)} if number else None,
                 **kw)


def start(step: lessons.Step, key: str, widths=(2.2, 0.8, 0.1)):
    """The step's button and Stop, and the runs to show (only ever the step's own)."""
    job, datas, problem = attached_runs(key, accept=accepts(step))
    job, datas, started = start_stop_buttons(key, job, datas, step.configs, label=step.button,
                                             widths=widths, lesson=True)
    if problem and not started:
        st.info(problem)
    return job, datas


def advanced(step: lessons.Step) -> None:
    """The race's settings, and links that open them where every setting can be changed."""
    configs = step.configs()
    with st.popover("Advanced", icon=":material/tune:", help="The settings of the race"):
        st.markdown("Every model trains with these settings and stops "
                    f"{lessons.SOLVED_TAIL} steps after it has solved the task:")
        for model, config in zip(step.models, configs):
            st.caption(f"**{model.label}**: {captions.settings_line(config)}")
        params = url_params(configs[0].replace(arch="lstm"))
        params.pop("arch", None)
        models = [m for m in ("rnn_tanh", "lstm", "gru") if m in COMPARE_MODELS]
        st.page_link("pages/compare.py", label="Change any setting on the Compare page",
                     icon=":material/compare:",
                     query_params={**params, "models": ",".join(models)})
        for model, config in zip(step.models, configs):
            st.page_link("pages/train.py", label=f"Train the {model.label} alone",
                         icon=":material/model_training:", query_params=url_params(config))


def landing() -> None:
    step = lessons.RACE
    st.html(COMPACT)
    task = step.configs()[0].make_task()
    st.markdown(f"### {step.title}")
    top = st.columns([3, 1.5, 0.9], vertical_alignment="center")
    with top[0]:
        job, datas, problem = attached_runs("learn-race", accept=accepts(step))
        job, datas, _ = start_stop_buttons("learn-race", job, datas, step.configs,
                                           label=step.button, widths=(1.9, 0.8, 1.6),
                                           label_results=False, lesson=True)
    with top[1]:
        lesson_link(1, "Step by step: the lesson", icon=":material/school:")
    with top[2]:
        advanced(step)
    if not datas:
        if problem:
            st.info(problem)
        st.markdown(
            f"The button trains a vanilla RNN, an LSTM and a GRU side by side on the same "
            f"batches of the **{task.name}** task (T = {task.seq_len}): {task.description} "
            "Then watch how much of the loss's gradient reaches each earlier time step — "
            "live, measured by real training.")
        task_example(task, step.configs()[0].seed)
        return
    labels = step.labels()

    def draw(ds):
        status_line(ds, labels)
        left, right = st.columns([2.3, 1], gap="medium")
        with left:
            st.markdown("**A · Gradient reaching each time step t** (‖∂ℓ/∂h_t‖, one colour "
                        "scale; rows: training steps, latest on top)")
            # The containers' keys (CSS classes st-key-landing_*) are the browser tests' hooks.
            with st.container(key="landing_heatA"):
                drawn = heatmap_a(ds, labels, "landing", height=LANDING_HEIGHT)
            if not drawn:
                st.info("The heatmaps appear with the first gradient probe, in a moment.")
        with right:
            st.markdown("**Loss** (lower is better)")
            with st.container(key="landing_loss"):
                loss_chart(ds, labels, "landing", height=LANDING_HEIGHT + 45, log=True,
                           compact=True)
        if drawn:
            model_captions(ds, labels)

    live_view(job if job is not None and job.alive else None, datas, "landing", draw)
    results_label(datas)
    st.markdown(f"{step.look} {step.means}")
    lesson_link(1, "Next: the lesson, step 1 — the vanilla RNN forgets",
                icon=":material/arrow_forward:")


def lesson(step: lessons.Step) -> None:
    n = step.number
    st.html(COMPACT)
    st.caption(f"Lesson · step {n} of {lessons.LAST}")
    st.markdown(f"## {n} · {step.title}")
    nav = st.columns([1.1, 1.1, 1.4, 5], vertical_alignment="center")
    with nav[0]:
        if n > 1:
            lesson_link(n - 1, f"Step {n - 1}", icon=":material/arrow_back:")
        else:
            lesson_link(0, "The race", icon=":material/arrow_back:")
    with nav[1]:
        if n < lessons.LAST:
            lesson_link(n + 1, f"Step {n + 1}", icon=":material/arrow_forward:")
    with nav[2]:
        with st.popover("All steps", icon=":material/list:"):
            lesson_link(0, "The race (first page)")
            for other in lessons.STEPS.values():
                lesson_link(other.number, f"{other.number}. {other.title}")
    cols = st.columns(3)
    for col, (head, text) in zip(cols, (("What to do", step.do), ("What to look at", step.look),
                                        ("What it means", step.means))):
        col.markdown(f"**{head}**")
        col.markdown(text)
    for label, path in step.links:
        st.page_link(f"pages/{path}.py", label=label, icon=":material/functions:")
    key = f"learn-{n}"
    if step.trains:
        job, datas = start(step, key, widths=(1.4, 0.5, 5))
        if datas:
            live_view(job if job is not None and job.alive else None, datas, key,
                      lambda ds: draw_step(step, ds, key))
    else:
        answers(step)


def answers(step: lessons.Step) -> None:
    """Step 6: the Explain page's three verdicts, measured when asked."""
    flag = f"learn-{step.number}-asked"
    if st.button(step.button, type="primary"):
        st.session_state[flag] = True
    if not st.session_state.get(flag):
        return
    verdicts = three_answers()
    st.markdown("**In short:** " + "; ".join(f"{v.answer} {verdict_md(v.verdict)}"
                                             for v in verdicts) + ".")
    for v in verdicts:
        with st.container(border=True):
            st.markdown(f"**{v.answer}:** {v.claim}")
            st.markdown(f"Verdict: {verdict_md(v.verdict)} — {v.evidence}")
            for claim, verdict, evidence in v.parts:
                st.markdown(f"- {claim}: {verdict_md(verdict)}. {evidence}")


number = st.query_params.get("lesson")
chosen = lessons.step(number) if number is not None else None
if number is not None and chosen is None:
    st.warning(f"There is no lesson step {number!r}: the steps are numbered 1 to "
               f"{lessons.LAST}. Here is the first page instead.")
if chosen is None:
    landing()
else:
    lesson(chosen)

"""Sweep: success rate against sequence length, per architecture, over seeds."""

import os

import pandas as pd
import streamlit as st

from core import charts, narrate, settings
from core.archspec import MODERN
from core.measured import LIVE_PROBE_EVERY, shipped_sweeps
from core.narrate import sci
from core.sweeps import SWEEP_PRESETS, SweepError, SweepSpec, list_sweeps, load_sweep, summarise_sweep
from core.sweep_job import SweepJob
from core.tasks import TASK_NAMES
from ui.config_form import url_params
from ui.state import run_store
from ui.runtime import shipped
from ui.bootstrap import ensure_app

ensure_app("sweep")

MAX_CELLS = settings.get("RNNLAB_MAX_SWEEP_RUNS")
VARIANTS = ["rnn_tanh", "rnn_relu", "lstm", "gru", "lstm:forget_bias=1",
            "lstm:no_forget_gate=true", "lstm:coupled_gates=true", "lstm:gate_init=chrono",
            *MODERN]
LENGTHS = [5, 10, 20, 30, 50, 75, 100, 150, 200, 300]

st.title("Sweep: how far back can each architecture learn?")
st.caption("A grid of short trainings (each stops once solved). Success rate against "
           "sequence length, with 95% Wilson intervals over seeds: the law behind a single run. "
           "First the sweeps measured once and shipped with the app; below, run your own.")


@st.cache_resource(scope="session", on_release=lambda h: h.stop(), show_spinner=False)
def _session_sweep() -> "_Holder":
    return _Holder()


class _Holder:
    job: SweepJob | None = None

    def stop(self) -> None:
        if self.job is not None:
            self.job.stop()


def _apply_preset():
    spec = SWEEP_PRESETS[st.session_state["sweep_preset"]]
    st.session_state.update(sweep_task=spec.tasks[0], sweep_variants=[v["name"] for v in spec.variants],
                            sweep_lens=list(spec.seq_lens), sweep_seeds=len(spec.seeds),
                            sweep_steps=spec.steps)


if "sweep_task" not in st.session_state:
    st.session_state["sweep_preset"] = next(iter(SWEEP_PRESETS))
    _apply_preset()

holder = _session_sweep()
job = holder.job
running = job is not None and job.alive

with st.sidebar:
    st.selectbox("Sweep preset", list(SWEEP_PRESETS), key="sweep_preset", on_change=_apply_preset)
    st.selectbox("Task", TASK_NAMES, key="sweep_task")
    names = VARIANTS + [v for v in st.session_state["sweep_variants"] if v not in VARIANTS]
    st.multiselect("Architectures / variants", names, key="sweep_variants")
    lengths = sorted(set(LENGTHS) | set(st.session_state["sweep_lens"]))
    st.multiselect("Sequence lengths", lengths, key="sweep_lens")
    st.number_input("Seeds", 1, 10, key="sweep_seeds")
    st.number_input("Step budget per run", 50, 5000, step=50, key="sweep_steps")
    st.number_input("Worker processes", 1, os.cpu_count() or 1, value=os.cpu_count() or 1,
                    key="sweep_workers")

SHIPPED_ANCHOR = "measured"


def shipped_section() -> None:
    """The shipped sweeps' measured results, how they were measured, and a link that
    re-runs any of their trainings live on the Train page."""
    names = shipped_sweeps()
    if not names:
        return
    st.header("Measured with the app", anchor=SHIPPED_ANCHOR)
    name = st.radio("Shipped sweep", names, horizontal=True, key="shipped_name",
                    format_func=lambda n: shipped(n).meta.get("preset", n))
    try:
        sw = shipped(name)
    except SweepError as e:
        st.error(str(e))
        return
    meta = sw.meta
    n_runs = len(sw.results)
    st.markdown(f"**Grid:** {sw.spec.describe()}")
    st.info(f"Measured by `{meta['command']}` on {meta['cpu']}, {meta['date']}, commit "
            f"`{str(meta['commit'])[:7]}`: {n_runs} real trainings"
            + (f", {narrate.duration(meta['wall_s'])} in all" if meta.get("wall_s") else "")
            + f". {meta['load'][:1].upper()}{meta['load'][1:]}. Nothing here is re-run or "
            "simulated: the page reads the sweep's results file.",
            icon=":material/science:")
    summary, labels = sw.summary(), sw.labels()
    st.subheader("Success rate against sequence length")
    st.caption("One panel per model: the share of its seeds that solved the task at each T, "
               "with the Wilson 95% interval; the number above a point is the median steps "
               "to solve of the seeds that solved it.")
    st.altair_chart(charts.sweep_panels(summary, labels, sw.order), key=f"shipped_{name}_success")
    st.subheader("Gradient reach of the final network")
    st.caption("Steps back from the last whose gradient stays ≥ 1e-3 of the largest after "
               "them, probed once on each final network (median over seeds, log axis); "
               "dashed: T, the whole sequence.")
    st.altair_chart(charts.reach_panels(summary, labels, sw.order), key=f"shipped_{name}_reach")
    table = summary_table(summary)
    table["architecture"] = [labels.get(a, a) for a in summary["arch"]]
    rank = {v: i for i, v in enumerate(sw.order)}
    table = table.iloc[sorted(range(len(table)), key=lambda i: (rank.get(summary["arch"][i], 99),
                                                                 summary["seq_len"][i]))]
    st.dataframe(table.rename(columns={"architecture": "model"}), hide_index=True)
    st.caption("Per model and T, over seeds: medians of the runs' final numbers (steps to "
               "solve: of the runs that solved it; reach and ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖: at the "
               "final probe).")
    st.markdown("**Per seed:** seeds that solved the task, then the steps each took in seed "
                "order (a dash: not solved within the budget).")
    st.table(sw.seed_table())
    rerun_cell(name, sw)


def rerun_cell(name: str, sw) -> None:
    st.subheader("Re-run any of these trainings live")
    labels = sw.labels()
    c1, c2, c3 = st.columns([2, 1, 1])
    variant = c1.selectbox("Model", sw.order, format_func=labels.get, key=f"rerun_{name}_model")
    T = c2.selectbox("Sequence length T", sw.spec.seq_lens, key=f"rerun_{name}_T")
    seed = c3.selectbox("Seed", sw.spec.seeds, key=f"rerun_{name}_seed")
    row = sw.cell(variant, T, seed)
    config = sw.live_config(variant, T, seed)
    st.markdown(narrate.shipped_cell_sentence(row.to_dict(), config.make_task()))
    if st.button("Re-run this training live", type="primary", icon=":material/play_circle:",
                 key=f"rerun_{name}_go"):
        st.switch_page("pages/train.py", query_params=url_params(config))
    st.caption(f"Opens the Train page with this training's settings ({config.label()}, "
               f"{sw.spec.steps} steps, seed {seed}); press **Train** there. Train probes the "
               f"gradient every {LIVE_PROBE_EVERY} steps so that its heatmaps draw (the sweep "
               "probed only the final network) and trains the whole budget instead of "
               "stopping once solved.")


# Drawn first on the page, filled once sweep_charts (below) is defined.
shipped_box = st.container()
st.divider()
st.header("Run a sweep", anchor="run")

spec, problem = None, None
try:
    spec = SweepSpec(tasks=(st.session_state["sweep_task"],),
                     variants=tuple(st.session_state["sweep_variants"]),
                     seq_lens=tuple(st.session_state["sweep_lens"]),
                     seeds=int(st.session_state["sweep_seeds"]),
                     steps=int(st.session_state["sweep_steps"]))
    if len(spec.cells) > MAX_CELLS:
        problem = f"{len(spec.cells)} runs is more than this server allows ({MAX_CELLS})."
except SweepError as e:
    problem = str(e)
if problem:
    st.error(problem)
elif spec is not None:
    st.markdown(f"**Grid:** {spec.describe()}")

c1, c2, _ = st.columns([1.2, 1, 5])
if c1.button("Run sweep", type="primary", disabled=running or spec is None or bool(problem)):
    job = holder.job = SweepJob(spec, root=str(run_store().root),
                                workers=int(st.session_state["sweep_workers"])).start()
    running = True
if c2.button("Stop", disabled=not running):
    job.stop()


def summary_table(summary) -> pd.DataFrame:
    """The sweep's summary as people read it: rates in %, the Wilson interval beside its
    rate, every other number through narrate.sci, "—" where there is none."""
    def pct(x):
        return "—" if x != x else f"{x:.0%}"

    table = pd.DataFrame({
        "task": summary["task"], "architecture": summary["arch"], "T": summary["seq_len"],
        "solved": [f"{int(k)} / {int(n)}" for k, n in zip(summary["successes"], summary["n"])],
        "success (95% CI)": [f"{pct(r)} ({pct(lo)}–{pct(hi)})" for r, lo, hi in
                             zip(summary["rate"], summary["low"], summary["high"])],
        "steps to solve": summary["median_steps_to_solve"].map(sci),
        "reach": summary["median_gradient_reach"].map(sci),
        "ratio h₀/h_T−1": summary["median_vanishing_ratio"].map(sci),
        "held-out loss": summary["median_eval_loss"].map(sci),
    })
    if summary["task"].nunique() == 1:     # named in the sweep's description
        table = table.drop(columns="task")
    extra = [c for c in summary.columns if c not in (
        "task", "arch", "seq_len", "n", "successes", "rate", "low", "high",
        "median_steps_to_solve", "median_gradient_reach", "median_vanishing_ratio",
        "median_eval_loss", "mean_wall_s", "errors")]
    for c in extra:                       # --param dimensions
        table.insert(2, c, summary[c].astype(str))
    if summary["errors"].sum():
        table["errors"] = summary["errors"]
    return table


def sweep_charts(results, key: str, order=None) -> None:
    summary = summarise_sweep(results)
    if summary.empty:
        st.info("The charts fill in as runs finish.")
        return
    st.subheader("Success rate against sequence length")
    st.caption("Each marker: the share of seeds that solved the task, with its Wilson 95% "
               "interval; architectures side by side at each length, so equal rates do not "
               "hide each other.")
    st.altair_chart(charts.success_chart(summary, order=order), key=f"{key}_success")
    c1, c2 = st.columns(2)
    with c1:
        st.altair_chart(charts.sweep_metric_chart(summary, "median_steps_to_solve",
                                                  "steps to solve (median)",
                                                  order=order),
                        key=f"{key}_steps")
    with c2:
        st.altair_chart(charts.sweep_metric_chart(summary, "median_gradient_reach",
                                                  "gradient reach (median)",
                                                  order=order),
                        key=f"{key}_reach")
    st.dataframe(summary_table(summary), hide_index=True)
    st.caption("Per architecture and length, over seeds: medians of the runs' final numbers "
               "(steps to solve: of the runs that solved it; reach and ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖: "
               "at the final probe).")


with shipped_box:
    shipped_section()

if job is not None:
    @st.fragment(run_every=1.0 if running else None)
    def live():
        state = job.state
        label = {"queued": "waiting for the server's sweep slot (one sweep at a time)"}.get(state, state)
        st.markdown(f"**Sweep status: {label}** — {job.done} / {job.total} runs")
        st.progress(job.done / max(1, job.total))
        if job.error:
            st.error(job.error)
        sweep_charts(job.results(), "sweep_live", [v["name"] for v in job.spec.variants])
        if running and not job.alive:
            st.rerun(scope="app")

    live()

st.divider()
st.subheader("Past sweeps")


# Redrawn every 2 s while a sweep runs: drawn once, the table kept the state it had
# at the Run click (the sweep's folder barely created) until the sweep ended.
@st.fragment(run_every=2.0 if running else None)
def past_sweeps():
    past = list_sweeps(run_store().root)
    if past.empty:
        st.info("No sweeps saved yet.")
    else:
        # Fits the page: runs as "done / total", times to the minute (the id is in the
        # picker below).
        shown = pd.DataFrame({
            "sweep": past["description"], "state": past["state"],
            "runs done": [f"{d} / {t}" for d, t in zip(past["done"], past["total"])],
            "solved": past["solved"],
            "updated": past["updated"].dt.strftime("%Y-%m-%d %H:%M").fillna("—")})
        st.dataframe(shown, hide_index=True, column_config={
            "sweep": st.column_config.TextColumn(width="large")})
    return past


past = past_sweeps()
if not past.empty:
    chosen = st.selectbox("Open sweep", past["sweep_id"].tolist(), index=None,
                          placeholder="choose a sweep")
    if chosen:
        try:
            data = load_sweep(run_store().root, chosen)
            st.caption(data.spec.describe())
            sweep_charts(data.results, "sweep_past", [v["name"] for v in data.spec.variants])
        except SweepError as e:
            st.error(str(e))

"""Explain: how LSTM and GRU keep the gradient alive — the math, each statement measured live.

All computations are in core/explain/, their words in core/narrate.py; this page draws
them. Every number is measured by autograd when the page runs (cached per setting), on
the models the Train page would start from, or on the learner's own runs.
"""

from urllib.parse import quote

import pandas as pd
import streamlit as st

from core import charts, explain, narrate
from core.explain import purelag
from core.narrate import sci
from core.presets import COMPARISONS, PRESETS
from core.sweeps import SweepError
from core.tasks import make_task
from core.runs import RunError, RunStore
from ui import principle_view
from ui.state import load_run, run_store
from ui.runtime import shipped
from ui.bootstrap import ensure_app

ensure_app("explain")

VERDICT_COLOUR = {"Confirmed": "green", "Half-true": "orange", "Refuted": "red"}
LINK_PRESET = "LSTM remembers (same task)"


# ---------------------------------------------------------------- cached measurements

@st.cache_data(show_spinner="Measuring the vanilla RNN's Jacobians…", max_entries=16)
def rnn_facts(T: int, H: int, seed: int) -> dict:
    return explain.rnn_facts(T, H, seed)


@st.cache_data(show_spinner="Measuring the LSTM's cell path…", max_entries=16)
def lstm_facts(T: int, H: int, seed: int) -> dict:
    return explain.lstm_facts(T, H, seed)


@st.cache_data(show_spinner="Measuring the GRU's update gate…", max_entries=16)
def gru_facts(T: int, H: int, seed: int) -> dict:
    return explain.gru_facts(T, H, seed)


@st.cache_data(show_spinner="Probing four forget-gate settings…", max_entries=16)
def forget_gate_gain(T: int, H: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return explain.forget_gate_gain(T, H, seed)


@st.cache_data(show_spinner="Saturating the gates…", max_entries=16)
def saturation_effect(T: int, H: int, seed: int) -> pd.DataFrame:
    return explain.saturation_effect(T, H, seed)


@st.cache_data(show_spinner="Re-measuring your run's weights against its step 0…", max_entries=8)
def trained_vs_init(root: str, run_id: str, mtime: float) -> dict:
    store = RunStore(root)
    return explain.trained_vs_init(store.load(run_id), store.model_path(run_id))


@st.cache_data(show_spinner="Measuring where the forget-gate bias's gradient comes from…",
               max_entries=16)
def bias_gradient(T: int, H: int, seed: int, gate_init: str) -> dict:
    return explain.bias_gradient(T, H, seed, gate_init)


@st.cache_data(show_spinner="Training three LSTMs for their first steps…", max_entries=8)
def first_steps(T: int, H: int, seed: int) -> dict:
    return explain.first_steps(T, H, seed)


@st.cache_data(show_spinner="Measuring the gradient reaching each marker…", max_entries=16)
def marker_gradients(T: int, H: int, seed: int) -> tuple[pd.DataFrame, dict]:
    return explain.marker_gradients(T, H, seed)


@st.cache_data(show_spinner="Measuring the cell of six LSTM variants…", max_entries=16)
def cell_drift(T: int, H: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return explain.cell_drift(T, H, seed)


@st.cache_resource(show_spinner=False)
def shipped_pure_lag():
    """The pure-lag sweep shipped with the app (core/measured/pure-lag), or None."""
    try:
        return shipped("pure-lag")
    except SweepError:
        return None


def metric(col, label: str, value: str, help: str) -> None:
    col.metric(label, value, help=help)


def ratio(x) -> str:
    """A gradient ratio, the same way everywhere on the page: an exact 0 says why."""
    return "0 (underflow)" if x == 0 else sci(x)


def verdict_md(v: str) -> str:
    return f":{VERDICT_COLOUR.get(v, 'gray')}[**{v}**]"


# ---------------------------------------------------------------- settings

st.title("Explain: why the LSTM's and GRU's gradient survives")
st.markdown(f"The question this page tests: [“{narrate.QUESTION}”]({narrate.QUESTION_URL}) "
            "(Cross Validated, with three answers, each judged in [§4](#answers)).")
with st.sidebar:
    st.subheader("Measurement settings")
    T = st.select_slider("Sequence length T", options=[25, 50, 100], value=explain.SEQ_LEN,
                         key="explain_T", help="The lag to bridge: steps from x₀ to the loss")
    H = st.select_slider("Hidden units H", options=[16, 32], value=explain.HIDDEN,
                         key="explain_H")
    seed = int(st.number_input("Seed", 0, 99, explain.SEED, key="explain_seed",
                               help="Initial weights and the measured batch"))
    st.caption(f"Jacobians: {explain.JAC_BATCH} sequences; gradient probes: "
               f"{explain.PROBE_BATCH} sequences. Norms of Jacobians are spectral (‖·‖₂, the "
               "largest singular value), of gradients L2; both averaged over the sequences.")

rnn = rnn_facts(T, H, seed)
lstm = lstm_facts(T, H, seed)
gru = gru_facts(T, H, seed)
forget, profiles = forget_gate_gain(T, H, seed)
L = T - 1
with st.container(border=True):
    st.markdown(narrate.explain_answer(rnn, lstm, gru, forget))
    st.markdown("Thirty years of later answers (IndRNN, an orthogonal RNN, the LRU, minGRU, "
                "minLSTM, sLSTM) keep the gradient the same way, measured side by side in "
                "[§6](#principle).")
st.caption(
    "Below, each piece of the mechanism is stated in math and then measured: every number on "
    "this page is computed by autograd when the page runs, on the untrained models the Train "
    "page would start from (torch's default init, the recall task), or on your own runs."
)

# ---------------------------------------------------------------- 1. RNN

st.header("1 · The vanilla RNN: a product of Jacobians", anchor="rnn")
st.latex(r"h_t = \phi(a_t),\quad \phi = \tanh,\qquad "
         r"a_t = W_{ih}x_t + b_{ih} + W_{hh}h_{t-1} + b_{hh}")
st.latex(
    r"\begin{aligned}\frac{\partial h_t}{\partial h_k} &= \prod_{j=k+1}^{t}"
    r"\operatorname{diag}\big(\phi'(a_j)\big)\,W_{hh}\\ \Big\|\frac{\partial h_t}{\partial h_k}"
    r"\Big\|_2 &\le \big(\gamma\,\|W_{hh}\|_2\big)^{t-k},\qquad \gamma = \max|\phi'| = 1"
    r"\text{ for } \tanh\end{aligned}"
)
st.markdown(
    "The gradient from a loss at step T−1 reaches step t only through this product: one "
    "factor per step. If the factors shrink vectors (on average) by a factor below 1, the "
    "product shrinks **geometrically** in the lag; above 1 it grows (exploding gradients)."
)
c = st.columns(4)
metric(c[0], f"‖∂h_{L}/∂h_0‖₂", sci(rnn["jac_full"]),
       f"Spectral norm of the Jacobian over {L} steps, untrained RNN tanh, by autograd.")
metric(c[1], "per-step factor", f"× {rnn['per_step']:.3g}",
       "Geometric mean: (‖J at lag T−1‖ / ‖J at lag 1‖)^(1/(T−2)).")
metric(c[2], "‖W_hh‖₂", f"{rnn['w_norm']:.3g}",
       f"Largest singular value. The bound (γ‖W_hh‖₂)^{L} = {sci(rnn['bound_full'])}.")
metric(c[3], "gradient reach", f"{rnn['gradient_reach']} / {T}",
       "Steps back from the end where ‖∂ℓ/∂h_t‖ stays ≥ 1e-3 of its maximum (probe).")
st.markdown(narrate.rnn_sentence(rnn))
curves = explain.decay_curves(rnn, lstm, gru)
st.subheader("How far back a change still matters")
st.caption(
    "log₁₀ ‖∂q_T−1/∂q_t‖₂ for the state q each line names (h, or the LSTM's cell c) against "
    "the lag T−1−t (steps back from the last step), measured on untrained models; the “f path "
    "alone” line is ‖∏ diag(f)‖₂ from the measured forget-gate values. −10 means 10⁻¹⁰. "
    "One colour per architecture, as on every page; dashed: the same architecture's second "
    "line."
)
st.altair_chart(charts.decay_chart(curves), key="explain_decay")

# ---------------------------------------------------------------- 2. LSTM

st.header("2 · The LSTM: an additive cell path whose gain is the forget gate", anchor="lstm")
st.latex(r"c_t = f_t \odot c_{t-1} + i_t \odot g_t,\qquad h_t = o_t \odot \tanh(c_t)")
st.latex(
    r"\begin{aligned}\frac{\partial c_t}{\partial c_{t-1}} = \operatorname{diag}(f_t) + \Big["
    r"&\operatorname{diag}\big(c_{t-1}\odot\sigma'(a^f_t)\big)W_{hf} + "
    r"\operatorname{diag}\big(g_t\odot\sigma'(a^i_t)\big)W_{hi}\\ &+ "
    r"\operatorname{diag}\big(i_t\odot\tanh'(a^g_t)\big)W_{hg}\Big]\,"
    r"\operatorname{diag}\big(o_{t-1}\odot\tanh'(c_{t-1})\big)\end{aligned}"
)
st.caption("The bracket: the terms through h_{t−1} = o_{t−1} ⊙ tanh(c_{t−1}) in the gates "
           "(a^f, a^i, a^g are the gates' pre-activations).")
st.latex(
    r"\text{the cell path alone: }\ \frac{\partial c_{T-1}}{\partial c_t}\Big|_{\text{cell}} = "
    r"\prod_{j=t+1}^{T-1}\operatorname{diag}(f_j),\qquad \text{its gain per step is } f_j"
)
st.markdown(
    "The cell state is updated by **addition**, so its Jacobian has a diagonal term that is "
    "not squashed by any derivative: it is the forget gate itself. With f ≈ 1 the cell carries "
    "the gradient unchanged; with f < 1 it shrinks it by f at every step."
)
c = st.columns(4)
metric(c[0], f"‖∂c_{L}/∂c_0‖₂", sci(lstm["cell_full"]),
       "All paths: the total derivative by autograd, untrained LSTM.")
metric(c[1], "‖∏ diag f‖₂", sci(lstm["cell_direct"]),
       "The cell path alone, from the measured forget-gate values: max over units of ∏ f_t, "
       "mean over sequences.")
metric(c[2], "mean f", f"{lstm['mean_f']:.3f}",
       f"For comparison, mean f^{L} = {sci(lstm['mean_f_pow'])}.")
metric(c[3], "gradient reach", f"{lstm['gradient_reach']} / {T}",
       "Probe: ‖∂ℓ/∂h_t‖ ≥ 1e-3 of its maximum.")
st.markdown(narrate.lstm_sentence(lstm))
show = pd.DataFrame({
    "forget gate": forget["variant"],
    "mean f": forget["mean_f"].map(lambda v: f"{v:.3f}"),
    f"mean f^{L} (comparison)": forget["comparison_f_pow"].map(sci),
    "cell: ‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖": forget["cell_ratio"].map(ratio),
    "h: ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖": forget["vanishing_ratio"].map(ratio),
    "gradient reach": forget["gradient_reach"].map(lambda v: f"{int(v)} / {T}"),
})
st.table(show.set_index("forget gate"))
shown = list(explain.FORGET_VARIANTS)[:3]      # three facets fit a wide page
st.caption(
    "Where the gradient flows at initialisation (training step 0), by time step t and quantity "
    "(h, the cell c, and the gates' pre-activations), for f ≈ 0.5, 0.73 and 0.95: one log "
    "colour scale for all three."
)
st.altair_chart(charts.gate_heatmap(profiles[profiles["run"].isin(shown)], step=0, by="run",
                                    order=shown),
                key="explain_forget_heatmap")
st.markdown(narrate.forget_sentence(forget))

# ---------------------------------------------------------------- 2b. the learner's run

st.subheader("From your latest run: does training open the gate?")
store = run_store()
try:
    probed = [run_id for run_id, _ in explain.probed_runs(store)]
    chosen = explain.pick_run(store)
except (RunError, OSError) as e:
    probed, chosen = [], None
    st.warning(f"Could not read the run store: {e}")
if chosen is None:
    link = f"train?preset={quote(LINK_PRESET)}"
    st.info(
        "No run with gradient probes in your run store yet. Train an LSTM, for instance the "
        f"preset [{LINK_PRESET}]({link}) ({PRESETS[LINK_PRESET]['steps']} training steps), and "
        "come back: this section then compares its first and latest gradient probes, and its "
        "trained weights with its step 0."
    )
else:
    run_id = st.selectbox("Run", probed, index=probed.index(chosen) if chosen in probed else 0,
                          key="explain_run",
                          help="Newest LSTM (else GRU, else any) run with probes by default")
    try:
        data = load_run(run_id)
    except RunError as e:
        st.error(str(e))
        data = None
    story = explain.run_story(data) if data is not None else {}
    if data is not None and not story:
        st.info("This run has no gradient probe yet.")
    elif story:
        st.markdown(f"**{story['label']}** on {story['task']}, T = {story['seq_len']}: first "
                    f"probe at training step {story['first_step']}, latest at step "
                    f"{story['last_step']} ({story['probes']} probes).")
        first, last = f"first probe (step {story['first_step']})", \
            f"latest probe (step {story['last_step']})"
        rows = [("gradient reach", f"{story['reach_first']} / {story['steps']}",
                 f"{story['reach_last']} / {story['steps']}"),
                ("h: ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖", ratio(story["ratio_first"]),
                 ratio(story["ratio_last"]))]
        if "cell_last" in story:
            rows.append(("cell: ‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖", ratio(story["cell_first"]),
                         ratio(story["cell_last"])))
        if story["gate"]:
            g = story["gate"]
            rows.append((f"mean {g}, all units", f"{story['gate_first']:.3f}",
                         f"{story['gate_last']:.3f}"))
        st.table(pd.DataFrame(rows, columns=["measured", first, last]).set_index("measured"))
        st.caption("Gradient reach: steps back from the end where ‖∂ℓ/∂h_t‖ stays ≥ 1e-3 of "
                   "the largest after it. Means: over time steps, sequences and all hidden "
                   "units. A ratio of 0 means the gradient underflowed float32 on its way to "
                   "step 0.")
        weights = store.model_path(run_id)
        if story["gate"] and weights.exists():
            tv = trained_vs_init(str(store.root), run_id, weights.stat().st_mtime)
            if "skipped" in tv:
                st.caption(f"Per-unit view skipped: {tv['skipped']}")
            else:
                g, a, b = tv["gate"], tv["init"], tv["trained"]
                rows = [
                    (f"mean {g}, all units", f"{a['gate_mean']:.3f}", f"{b['gate_mean']:.3f}"),
                    (f"mean {g} of the most open unit", f"{a['gate_max_unit']:.3f}",
                     f"{b['gate_max_unit']:.3f}"),
                    (f"units with mean {g} > 0.9", f"{a['units_open']} / {a['units']}",
                     f"{b['units_open']} / {b['units']}"),
                    (f"carry path alone ‖∏ diag {g}‖₂ over T−1 steps", ratio(a["carry_gain"]),
                     ratio(b["carry_gain"])),
                    ("gradient reach", f"{a['reach']} / {story['steps']}",
                     f"{b['reach']} / {story['steps']}"),
                    ("h: ‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖", ratio(a["ratio"]), ratio(b["ratio"])),
                ]
                st.markdown("Its saved weights against the same model at step 0, on one batch:")
                st.table(pd.DataFrame(rows, columns=["measured", "step 0", "trained"])
                         .set_index("measured"))
                st.markdown(narrate.trained_sentence(tv))
        elif story["gate"]:
            st.caption(
                "The mean is over all units: it can stay near its start even when a few units "
                "open. The per-unit view appears here once the run has saved its weights "
                "(when it ends)."
            )

# ---------------------------------------------------------------- 3. GRU

st.header("3 · The GRU: the update gate carries h", anchor="gru")
st.latex(r"h_t = (1 - z_t)\odot n_t + z_t \odot h_{t-1}\qquad\text{(torch's convention)}")
st.latex(
    r"\frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(z_t) + "
    r"\operatorname{diag}(1 - z_t)\,\frac{\partial n_t}{\partial h_{t-1}} + "
    r"\operatorname{diag}(h_{t-1} - n_t)\,\frac{\partial z_t}{\partial h_{t-1}}"
)
st.markdown(
    "The same idea without a separate cell: the state is a convex mix of the old state and a "
    "candidate, so its Jacobian holds diag(z_t), the update gate itself. z → 1 carries h (and "
    "its gradient) unchanged. (Some papers write z and 1 − z the other way round.)"
)
zb = gru["z_bias"]
c = st.columns(4)
metric(c[0], f"‖∂h_{L}/∂h_0‖₂ (init)", sci(gru["default_full"]),
       "Untrained GRU, torch's default init, by autograd.")
metric(c[1], "mean z (init)", f"{gru['default_mean_z']:.3f}",
       f"Carry path alone ‖∏ diag z‖₂ = {sci(gru['default_direct'])}.")
metric(c[2], f"‖∂h_{L}/∂h_0‖₂ (z +{zb:g})", sci(gru["biased_full"]),
       f"Same weights, update-gate bias b_iz + {zb:g}; carry path alone "
       f"{sci(gru['biased_direct'])}.")
metric(c[3], f"mean z (z +{zb:g})", f"{gru['biased_mean_z']:.3f}",
       f"Gradient reach {gru['biased_reach']} of {T} (default init: {gru['default_reach']}).")
st.markdown(narrate.gru_sentence(gru))

# ---------------------------------------------------------------- 4. the three answers

st.header("4 · The three answers, put to the test", anchor="answers")
st.caption("Each claim of the original thread's three answers, quoted, and the measurement that "
           "decides it. The verdicts are computed from the numbers above.")
sat = saturation_effect(T, H, seed)
for v in narrate.verdicts(explain.claim_evidence(rnn, lstm, forget, sat)):
    with st.container(border=True):
        st.markdown(f"**{v.answer}:** {v.claim}")
        st.markdown(f"Verdict: {verdict_md(v.verdict)} — {v.evidence}")
        for claim, verdict, evidence in v.parts:
            st.markdown(f"- {claim}: {verdict_md(verdict)}. {evidence}")
        if v.answer == "Answer 3":
            st.latex(r"\sigma'(a) = \sigma(a)\,(1-\sigma(a)) \le \tfrac14,\qquad "
                     r"\tanh'(a) = 1 - \tanh^2(a) \le 1")
            st.caption("Both derivatives go to 0 as |a| grows: a saturated unit passes almost "
                       "no gradient, however bounded its output.")
            st.table(pd.DataFrame({
                "model": sat["variant"],
                "mean σ′ (LSTM gates) / tanh′ (RNN)": sat["mean_derivative"].map(sci),
                "saturated (derivative < 0.01)": sat["saturated"].map(lambda x: f"{x:.0%}"),
                "‖∂ℓ/∂h₀‖ / ‖∂ℓ/∂h_T−1‖": sat["vanishing_ratio"].map(ratio),
                "gradient reach": sat["gradient_reach"].map(lambda x: f"{int(x)} / {T}"),
                "‖∂L/∂W_hh‖": sat["grad_w_hh"].map(sci),
            }).set_index("model"))
            st.caption("A ratio of 0 (underflow) means the gradient underflowed float32 "
                       "(below ~1e-45) before reaching step 0.")

# ---------------------------------------------------------------- 5. the pure lag

st.header("5 · A pure lag: when the forget gate cannot learn to open", anchor="pure-lag")
compare_link = COMPARISONS["Three LSTM inits"].link()
st.markdown(
    "Everything above is about the gradient *at a given forget gate*. But the gate is learned, "
    "and it learns from the gradient. On **recall** the only information is the symbol at step "
    f"0, {T - 1} steps before the loss, with nothing at a shorter lag: a pure lag. Below, on "
    "the same settings (recall, T, H and seed of the sidebar; batch 64, Adam lr 0.003), why "
    "torch's default init cannot learn it, why the *adding* task can, what chrono "
    "initialisation (Tallec & Ollivier 2018) changes, and the LSTM of 1997 without a forget "
    f"gate. To watch it train: [the three LSTMs side by side on Compare]({compare_link}) "
    "(recall, T = 100: default init, chrono init, forget bias 5 alone)."
)

st.subheader("The chicken and egg at torch's default init")
st.latex(r"\frac{\partial L}{\partial b_f} = \sum_{t} \frac{\partial L}{\partial a^f_t},"
         r"\qquad \frac{\partial \ell}{\partial a^f_t} = \frac{\partial \ell}{\partial c_t}"
         r"\odot c_{t-1} \odot \sigma'(a^f_t)")
st.caption("b_f enters the forget gate's pre-activation a^f_t at every step, so its gradient "
           "is the sum of every step's. A step contributes only as much as the gradient "
           "reaching its cell, ∂ℓ/∂c_t.")
bg = bias_gradient(T, H, seed, "default")
bg_chrono = bias_gradient(T, H, seed, "chrono")
c = st.columns(4)
metric(c[0], "‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖", ratio(bg["cell_ratio"]),
       "At init, on the first training batch, float64: batch means of per-sequence norms.")
metric(c[1], f"∂L/∂b_f from the last {purelag.SHORT_LAG} steps",
       f"{bg['short_share']:.1%}",
       f"‖Σ over lags < {purelag.SHORT_LAG} of ∂L/∂a^f_t‖ / ‖∂L/∂b_f‖; its cosine with "
       f"∂L/∂b_f: {bg['short_cosine']:.5f}.")
metric(c[2], f"… from lags ≥ {T // 2}", sci(bg["long_share"]),
       "‖Σ over lags ≥ T/2 of ∂L/∂a^f_t‖ / ‖∂L/∂b_f‖: the part that could teach the gate to "
       "keep anything for half the sequence.")
metric(c[3], f"… from lags ≥ {T // 2}, chrono", sci(bg_chrono["long_share"]),
       f"With chrono init: ‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖ = {sci(bg_chrono['cell_ratio'])}.")
by_lag = pd.concat([
    bg["by_lag"].assign(series="∂L/∂a^f_t, default init"),
    bg_chrono["by_lag"].assign(series="∂L/∂a^f_t, chrono init"),
], ignore_index=True)
st.caption("Each step's contribution to the forget-gate bias's gradient, ‖∂L/∂a^f_t‖ (summed over "
           "the batch), against its lag T−1−t: log axis. At lag T−1 (t = 0) it is exactly 0, "
           "since f₀ multiplies c₋₁ = 0, and is not drawn.")
st.altair_chart(charts.series_chart(by_lag, "lag", "contribution", "series",
                                    "lag T−1−t (steps before the loss)", "‖∂L/∂a^f_t‖ (log)",
                                    log_y=True),
                key="explain_bias_by_lag")
st.markdown(narrate.pure_lag_gradient_sentence(bg, bg_chrono, purelag.SHORT_LAG))

st.subheader("What the first training steps do")
runs = first_steps(T, H, seed)
update = explain.first_update(bg, runs)
frame = runs["runs"]
st.caption(f"Three real trainings (core.train.Trainer: batch 64, Adam lr {runs['lr']:g}, H = {H}, "
           f"seed {seed}, probed every {purelag.RUN_EVERY} steps) of {runs['steps']} steps each "
           f"({runs['seconds']:.1f} s for the three here): the change of the forget-gate bias "
           "b_f (b_ih + b_hh), averaged over units, since step 0.")
st.altair_chart(charts.series_chart(frame, "step", "bf_change", "run", "training step",
                                    "Δ mean b_f since step 0", points=True,
                                    order=list(explain.FIRST_RUNS)),
                key="explain_first_steps")
rows = []
for run in explain.FIRST_RUNS:
    d = frame[frame["run"] == run].set_index("step")
    first_metric, last_metric = runs["metrics"][run]
    rows.append({"run": run,
                 "mean b_f": f"{d['bf_mean'].iloc[0]:.3f} → {d['bf_mean'].iloc[-1]:.3f}",
                 "mean f": f"{d['mean_f'].iloc[0]:.3f} → {d['mean_f'].iloc[-1]:.3f}",
                 "f of the most open unit": f"{d['mean_f_max'].iloc[0]:.3f} → "
                                            f"{d['mean_f_max'].iloc[-1]:.3f}",
                 "gradient reach": f"{d['reach'].iloc[0]} → {d['reach'].iloc[-1]} / {T}",
                 "held-out metric": f"{sci(first_metric)} → {sci(last_metric)} "
                                     f"({runs['metric_names'][run]})"})
st.table(pd.DataFrame(rows).set_index("run"))
st.caption(f"Step 0 → step {runs['steps']}. Means over the sequence, units and the probe's "
           "batch; the held-out metric on 256 sequences (recall: accuracy, chance "
           f"{1 / make_task('recall', T).output_size:.3f}; adding: mean squared error, the "
           f"baseline of a model that ignores its inputs {make_task('adding', T).baseline_loss:.3f}).")
st.markdown(narrate.first_steps_sentence(update, frame, runs["metrics"], runs["metric_names"],
                                         runs["lr"], runs["steps"], T))

st.subheader("Why adding is learnable at default init")
markers, marker_summary = marker_gradients(T, H, seed)
st.caption("At init, for each of 128 sequences: the gradient reaching each informative input, "
           "‖∂ℓ/∂x_t‖, relative to the gradient reaching the last input of the same sequence, "
           "against the input's lag. Adding's first marker lies in the first half, its second "
           "in the second half; recall's symbol is always at t = 0. Dashed: 1e-3, the gradient "
           "reach's threshold.")
st.altair_chart(charts.marker_chart(markers), key="explain_markers")
st.markdown(narrate.marker_sentence(marker_summary, frame, runs["steps"]))

st.subheader("What chrono's input-gate bias does, and the 1997 LSTM")
st.latex(r"\text{chrono: } b_f = \log u,\ \ b_i = -\log u,\ \ u \sim U(1, T_{\max}-1)"
         r"\quad\Rightarrow\quad f = \tfrac{u}{1+u},\ \ i = \tfrac{1}{1+u}")
st.latex(r"\text{no forget gate (1997): } c_t = c_{t-1} + i_t \odot g_t = "
         r"\sum_{s \le t} i_s \odot g_s")
table, curves = cell_drift(T, H, seed)
st.caption("At init, on 512 fresh recall sequences: the cell's root mean square over units and "
           "sequences at each step t (log axis). One colour per variant.")
st.altair_chart(charts.series_chart(curves[curves["t"] > 0], "t", "rms", "variant", "time step t",
                                    "cell RMS (log)", log_y=True,
                                    order=list(explain.DRIFT_VARIANTS), height=300),
                key="explain_drift")
st.table(pd.DataFrame({
    "variant": table["variant"],
    "mean f": table["mean_f"].map(lambda v: f"{v:.3f}"),
    "mean i on distractors": table["i_distractors"].map(lambda v: f"{v:.3f}"),
    "cell RMS at T−1": table["rms_end"].map(sci),
    "saturated at T−1": table["saturated"].map(lambda v: f"{v:.0%}"),
    "o·(1 − tanh² c) at T−1": table["dh_dc"].map(lambda v: f"{v:.3f}"),
    "‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖": table["cell_ratio"].map(ratio),
    "‖∂ℓ/∂x₀‖": table["dx0"].map(sci),
}).set_index("variant"))
st.caption(f"Saturated: |tanh c| > {purelag.SATURATED}. o·(1 − tanh² c): how much of the "
           "output's gradient enters the cell at the last step (mean over units and sequences). "
           f"The gradients: {purelag.GRAD_BATCH} sequences, float64, by autograd.")
pure = shipped_pure_lag()
sweep = pure.summary() if pure is not None else None
st.markdown(narrate.input_gate_sentence(table, T, sweep))
st.markdown(narrate.no_forget_gate_sentence(table, curves, purelag.NFG_REMEDY, sweep))

st.subheader("The pure-lag law, measured over 120 trainings", anchor="pure-lag-law")
if pure is None:
    st.info("The shipped pure-lag sweep (core/measured/pure-lag) is not on this server.")
else:
    st.info(f"Not measured on this page: {pure.label()}. The page reads the sweep's results "
            "file; every training can be re-run live from the [Sweep page](sweep#measured).",
            icon=":material/science:")
    st.altair_chart(charts.sweep_panels(sweep, pure.labels(), pure.order),
                    key="explain_pure_lag_law")
    st.caption("Recall, hidden 32, batch 64, Adam lr 0.003, up to 2000 steps, 3 seeds per "
               "point: the share of seeds that solved it (held-out accuracy ≥ 0.99) with the "
               "Wilson 95% interval; above a point, the median steps to solve.")
    st.markdown(narrate.pure_lag_law_sentence(sweep, pure.labels(), pure.order))

# ---------------------------------------------------------------- 6. the common principle

principle_view.render(T, H, seed)

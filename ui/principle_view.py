"""The Explain page's section 6: every architecture's answer in one frame, measured.

Thin: :func:`core.explain.principle.principle` measures, :mod:`core.narrate.principle`
words it, :func:`core.charts.decay_chart` draws it; this module lays them out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import charts
from core.explain.principle import principle, reproductions
from core.measured import shipped_sweeps
from ui.runtime import shipped
from core.narrate import sci
from core.narrate.principle import cost_sentence, principle_sentence


@st.cache_data(show_spinner="Measuring every architecture's path through time…", max_entries=8)
def measure(T: int, H: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return principle(T, H, seed)


def _gain(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.3f}"


def render(T: int, H: int, seed: int) -> None:
    st.header("6 · One principle: a path whose per-step gain is near 1", anchor="principle")
    st.latex(r"\frac{\partial \ell}{\partial p_t} = \Big(\prod_{j=t+1}^{T-1}"
             r"\frac{\partial p_j}{\partial p_{j-1}}\Big)^{\!\top}\frac{\partial \ell}"
             r"{\partial p_{T-1}}\qquad\text{carries the gradient back only if each factor "
             r"has gain}\approx 1")
    st.markdown(
        "Thirty years of answers to the vanishing gradient differ in **how** they keep that "
        "gain near 1: **fixed by construction** (an orthogonal W_hh, IndRNN's one weight per "
        "unit, the LRU's eigenvalues on a ring near |λ| = 1) or **learned through a gate** "
        "(the LSTM's f, the GRU's z, minGRU's 1 − z, minLSTM's f′, sLSTM's exponential "
        "gating). Below, each one's path p (h, or the cell c where there is one) measured on "
        "the untrained model the Train page would build, on the same recall batch.")
    table, curves = measure(T, H, seed)
    frame = curves.assign(series=curves["label"],
                          log10_norm=np.log10(curves["jacobian_norm"].clip(lower=1e-300)))
    # Two panels of at most eight lines each: thirteen on one chart cannot be told apart.
    for col, fixed, title in zip(st.columns(2), (True, False),
                                 ("Gain fixed by construction", "Gain learned through a gate")):
        labels = list(table[table["fixed"] == fixed]["label"])
        col.markdown(f"**{title}**")
        col.altair_chart(charts.decay_chart(frame[frame["label"].isin(labels)], order=labels),
                         key=f"explain_principle_decay_{'fixed' if fixed else 'gated'}")
    st.caption(f"‖∂p_{T - 1}/∂p_t‖₂ by autograd (total derivative, spectral norm, mean over "
               "4 sequences) against the lag, at init; one log scale per panel. Left, the "
               "plain RNNs for comparison: their gain is fixed too, by W_hh and tanh′, and not "
               "near 1. Dashed: the same architecture with its gate opened at init (chrono).")
    st.table(pd.DataFrame({
        "model": table["label"],
        "gain": table["fixed"].map({True: "fixed", False: "learned (gate)"}),
        "path p": table["path"],
        "per-step factor": table["factor"].map(lambda v: f"{v:.3f}"),
        f"‖∂p_{T - 1}/∂p_0‖₂": table["jac_first"].map(sci),
        "carry gain (mean / top unit)": [f"{_gain(a)} / {_gain(b)}" for a, b in
                                         zip(table["carry_mean"], table["carry_max"])],
        "gradient reach": table["reach"].map(lambda v: f"{int(v)} / {T}"),
        "training step (ms)": table["step_ms"].map(lambda v: f"{v:.1f}"),
        "gives up": table["gives_up"],
    }).set_index("model"))
    st.caption("Per-step factor: the geometric mean of the shrink per step of the curve above. "
               "Carry gain: the gate value each cell records for its carry path (LSTM f, GRU "
               "z; the later ones' per-step gain, see core/modern/), mean over units and "
               "steps / its most carrying unit. Gradient reach: probe of 16 sequences. "
               "Training step: forward and backward, batch 16, median of 5, measured on this "
               "server when the section was first computed.")
    st.markdown(principle_sentence(table, T))
    st.markdown(cost_sentence(table))
    _claims()


# The shipped sweeps that measure the later architectures, by the task they put them to.
SWEEPS = {"pure lag (recall), longest T solved here": "pure-lag-modern",
          "adding, longest T solved here": "adding-modern"}


def _shipped(name: str):
    return shipped(name) if name in shipped_sweeps() else None


def _claims() -> None:
    st.subheader("The papers' claims, and one layer here", anchor="claims")
    loaded = {col: _shipped(name) for col, name in SWEEPS.items()}
    have = {col: sw.results for col, sw in loaded.items() if sw is not None}
    if not have:
        st.info("The sweeps of the later architectures are not shipped on this server.")
        return
    st.table(reproductions(have).set_index("model"))
    sources = "; ".join(f"{col}: {sw.label()}" for col, sw in loaded.items() if sw is not None)
    st.caption("Not measured on this page: the columns read the sweeps shipped with the app "
               f"(one layer, hidden 32, batch 64, Adam lr 0.003, 2 seeds, 1500 steps; "
               f"{sources}). The papers stack layers, train far longer and tune each task: "
               "these are one layer's numbers at the lab's settings, not a re-run of theirs. "
               "Re-run any cell live from the [Sweep page](sweep#measured).")

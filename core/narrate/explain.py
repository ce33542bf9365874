"""The Explain page's sentences on its measurements of untrained and trained models.
"""

from __future__ import annotations

import pandas as pd

from core.narrate.numbers import sci
from core.narrate.gradient import ratio_band
from core.narrate.numbers import _finite


QUESTION = "How do LSTM and GRU prevent the vanishing gradient problem?"


# The question's id could not be confirmed offline: a search for its exact title finds it.
QUESTION_URL = ("https://stats.stackexchange.com/search?q="
                "%22How+do+LSTM+and+GRU+prevent+the+vanishing+gradient+problem%22")


def _band_name(r) -> str:
    band = ratio_band(r)
    return band.name if band else "not finite"


def explain_answer(rnn: dict, lstm: dict, gru: dict, forget: pd.DataFrame,
                   anchors: dict | None = None) -> str:
    """The Explain page's opening: a plain-language answer to :data:`QUESTION`, every claim
    reading a number measured further down the page (``rnn``/``lstm``/``gru``: the dicts of
    core.explain's rnn_facts, lstm_facts, gru_facts; ``forget``: forget_gate_gain's table,
    rows in FORGET_VARIANTS order), each linked to its section (``anchors``: section → the
    page's anchor, keys rnn, lstm, gru). Ratios are worded on :data:`RATIO_BANDS`."""
    a = {"rnn": "rnn", "lstm": "lstm", "gru": "gru", **(anchors or {})}
    T = rnn["steps"]
    r_rnn, r_cell = rnn["vanishing_ratio"], lstm["cell_ratio"]
    rows = forget.reset_index(drop=True)
    open_row = rows.iloc[2]                     # forget_bias = 3
    r_open = open_row["cell_ratio"]
    rnn_vanishes = _finite(r_rnn) and r_rnn < 1e-3
    text = (f"**In short, measured on this page** (untrained models, T = {T} steps): ")
    if rnn_vanishes:
        text += (f"a vanilla RNN multiplies the gradient by its recurrent Jacobian at every "
                 f"step, so over a long lag it shrinks geometrically (here × {rnn['per_step']:.2g} "
                 f"per step): the gradient reaching step 0 is {sci(r_rnn)} of the last step's: "
                 f"it {ratio_band(r_rnn).phrase} ([§1](#{a['rnn']})). ")
    else:
        text += (f"here the vanilla RNN's gradient reaching step 0 is {sci(r_rnn)} of the last "
                 f"step's ({_band_name(r_rnn)}, [§1](#{a['rnn']})). ")
    text += ("The LSTM adds a cell state updated by **addition**, c_t = f_t ⊙ c_t−1 + i_t ⊙ g_t, "
             "so along the cell the gradient is scaled at each step by the forget gate f alone. ")
    if _finite(r_cell) and r_cell < 1e-3 and _finite(r_open) and r_open >= 1e-3:
        text += (f"That is not a guarantee: at torch's default init f ≈ {lstm['mean_f']:.2f} and "
                 f"the cell's gradient reaching step 0 is still {sci(r_cell)} of the last "
                 f"step's ({_band_name(r_cell)}); the same network with f ≈ "
                 f"{open_row['mean_f']:.2f} keeps {sci(r_open)} ({_band_name(r_open)}, "
                 f"[§2](#{a['lstm']})). ")
    else:
        text += (f"With f ≈ {lstm['mean_f']:.2f} (torch's default init) the cell's gradient "
                 f"reaching step 0 is {sci(r_cell)} of the last step's ({_band_name(r_cell)}); "
                 f"with f ≈ {open_row['mean_f']:.2f}, {sci(r_open)} ([§2](#{a['lstm']})). ")
    g0, g1 = gru["default_ratio"], gru["biased_ratio"]
    text += (f"The GRU does the same with its update gate z: {sci(g0)} at default init "
             f"(z ≈ {gru['default_mean_z']:.2f}), {sci(g1)} with z ≈ {gru['biased_mean_z']:.2f} "
             f"([§3](#{a['gru']})). ")
    gate_decides = (_finite(r_cell) and _finite(r_open) and r_open > 1e3 * r_cell
                    and _finite(g0) and _finite(g1) and g1 > 1e3 * g0)
    if gate_decides:
        text += ("So they do not prevent vanishing by construction: they give the network a "
                 "gate that sets the gain of an additive path, and a gate near 1 carries the "
                 "gradient across the sequence. Training has to open it where memory is "
                 "needed, which the Train page shows live.")
    return text


def rnn_sentence(r: dict) -> str:
    """What :func:`core.explain.rnn_facts` measured, in words; every clause follows the numbers."""
    L = r["steps"] - 1
    text = (f"Measured: over {L} steps the Jacobian's norm is **{sci(r['jac_full'])}**; it "
            f"{'shrinks' if r['per_step'] < 1 else 'grows'} by × {r['per_step']:.3g} per step on "
            "average, a straight line on the log axis below. ")
    if r["w_norm"] > 1:
        text += (f"The textbook bound does not explain it: ‖W_hh‖₂ = {r['w_norm']:.3g} > 1, so "
                 f"the bound allows growth to {sci(r['bound_full'])}")
    else:
        text += (f"Here ‖W_hh‖₂ = {r['w_norm']:.3g} ≤ 1, so the bound does promise decay, but "
                 f"only to {sci(r['bound_full'])}: the measured decay is much faster")
    if r["jac_one_step"] > 1:
        text += (f", and a single step can even stretch (‖∂h_{L}/∂h_{L - 1}‖₂ = "
                 f"{r['jac_one_step']:.3g})")
    text += (f". Powers of W_hh alone shrink like its spectral radius, ρ(W_hh) = "
             f"{r['w_radius']:.3g} per step, and tanh′ ≤ 1 (mean {r['mean_phi_prime']:.3g}) scales "
             f"each factor's rows down further. The loss gradient reaching h₀ is "
             f"{sci(r['vanishing_ratio'])} of the one at h_{L}.")
    return text


def lstm_sentence(m: dict) -> str:
    """What :func:`core.explain.lstm_facts` measured at initialisation, in words."""
    L = m["steps"] - 1
    vanished = m["cell_ratio"] < 1e-3
    text = ("**At initialisation the LSTM's gradient vanishes too.** " if vanished else "")
    text += (f"torch's default init puts every gate near σ(0) = 0.5 (measured mean f = "
             f"{m['mean_f']:.3f}), so the cell path scales the gradient by about "
             f"{m['mean_f']:.2f} at every step: ‖∂c_{L}/∂c_0‖₂ = {sci(m['cell_full'])} over {L} "
             f"steps, and the loss gradient reaching c₀ is {sci(m['cell_ratio'])} of the one at "
             f"c_{L} (for h: {sci(m['vanishing_ratio'])}). The last step alone scales it by "
             f"‖∂c_{L}/∂c_{L - 1}‖₂ = {m['cell_one_step']:.3g}. What the LSTM has and the RNN "
             "lacks is a **knob**: the gain of the cell path is f, a number the network sets "
             "with its forget-gate bias and weights. The same model with only the forget gate "
             "changed:")
    return text


def forget_sentence(table: pd.DataFrame) -> str:
    """What :func:`core.explain.forget_gate_gain` measured, in words. ``table``'s rows are
    in the order of ``FORGET_VARIANTS``: default init, forget_bias 1, forget_bias 3, f ≡ 1."""
    ratios = table["cell_ratio"].tolist()
    monotone = ratios[0] < ratios[1] < ratios[2]
    text = ("The measured cell ratio follows the forget gate: the more open f, the further the "
            "gradient reaches. " if monotone else
            "Here the measured cell ratio does not simply follow the mean forget gate. ")
    none = ratios[3]
    if none > 1:
        text += (f"The terms through the gates add gradient of their own (with f ≡ 1 the ratio "
                 f"is {sci(none)}, above 1), but the diagonal f term decides whether anything "
                 "survives a long lag. ")
    text += "Training can move f, and that is what can save the LSTM:"
    return text


def gru_sentence(g: dict) -> str:
    """What :func:`core.explain.gru_facts` measured, in words."""
    L, T = g["steps"] - 1, g["steps"]
    fate = "vanishes like the others" if g["default_full"] < 1e-3 else "shrinks"
    return (f"At torch's default init z ≈ {g['default_mean_z']:.2f} and the GRU's gradient "
            f"{fate} ({sci(g['default_full'])} over {L} steps, reach {g['default_reach']} of "
            f"{T}). Push z towards 1 (update-gate bias +{g['z_bias']:g}: mean z = "
            f"{g['biased_mean_z']:.3f}) and the same weights give {sci(g['biased_full'])}, "
            f"reach {g['biased_reach']} of {T}.")


def trained_sentence(tv: dict) -> str:
    """What :func:`core.explain.trained_vs_init` measured, in words (LSTM f or GRU z)."""
    g, a, b = tv["gate"], tv["init"], tv["trained"]
    if b["gate_max_unit"] > a["gate_max_unit"] + 0.1 and b["reach"] > a["reach"]:
        k = b["units_open"]
        who = (f"of {k} of its {b['units']} units (mean {g} > 0.9)" if k
               else "of its most open unit")
        return (f"Training **opened the gate {who}**: the most open unit averages "
                f"{g} = {b['gate_max_unit']:.3f}, against {a['gate_max_unit']:.3f} at step 0, "
                f"while the mean over all units went from {a['gate_mean']:.3f} to "
                f"{b['gate_mean']:.3f}. The carry path alone, through its best unit, keeps "
                f"{sci(b['carry_gain'])} of the gradient over the whole sequence (at step 0: "
                f"{sci(a['carry_gain'])}), and the gradient reach grew from {a['reach']} to "
                f"{b['reach']} steps.")
    return (f"In this run the gate has not opened much (most open unit {g} = "
            f"{b['gate_max_unit']:.3f}, {a['gate_max_unit']:.3f} at step 0); the gradient reach "
            f"went from {a['reach']} to {b['reach']} steps.")

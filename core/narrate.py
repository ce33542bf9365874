"""Sentences that read the measured numbers for the learner.

All of the app's prose that depends on a measurement lives here: the sentence under
a run's charts (:func:`describe_gradient`, from a probe's summary, see
:func:`core.probe.summarise`), and the Explain page's sentences and verdicts (from
the dicts and tables of :mod:`core.explain`). The measuring code returns numbers;
these functions only put them into words: no number here is assumed or simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

# The Explain page's verdicts on a claim, in this order of strength.
VERDICTS = ("Confirmed", "Half-true", "Refuted")


def sci(x: float | None) -> str:
    """A compact number for prose: 3e-09, 0.42, 1.7e+04; '—' when unknown."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if x == 0:
        return "0"
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:.3g}"
    return f"{x:.0e}" if abs(x) < 1e-2 else f"{x:.1e}"


def describe_gradient(summary: dict, arch: str | None = None) -> str:
    """One or two sentences on how far the gradient reaches back, and why.

    ``summary`` needs ``vanishing_ratio``, ``gradient_reach`` and ``steps``;
    ``mean_f`` (LSTM) or ``mean_z`` (GRU) when present.
    """
    ratio = summary.get("vanishing_ratio")
    reach = summary.get("gradient_reach")
    steps = summary.get("steps")
    if ratio is None or reach is None or not steps:
        return "No gradient probe yet: the first one is taken on the first training step."
    if isinstance(ratio, float) and math.isnan(ratio):
        verdict = "No gradient reaches the last step, so the ratio is undefined."
    elif not math.isfinite(ratio) or ratio > 1e3:
        verdict = (f"The gradient reaching step 0 is {sci(ratio)} times the gradient at the "
                   "last step: it has exploded.")
    elif ratio < 1e-3:
        verdict = (f"The gradient reaching step 0 is {sci(ratio)} of the gradient at the "
                   "last step: it has vanished.")
    else:
        verdict = (f"The gradient reaching step 0 is {sci(ratio)} of the gradient at the "
                   "last step: it is carried across the whole sequence.")
    text = f"{verdict} Gradient reach: {int(reach)} of {int(steps)} steps."
    if arch == "lstm" and summary.get("mean_f") is not None:
        text += " " + _gate_clause(summary, "f", "The forget gate", "most open")
        cell = summary.get("cell_ratio")
        if cell is not None:
            text += (f"; along the cell state, ‖∂ℓ/∂c₀‖ is {sci(cell)} of ‖∂ℓ/∂c_T−1‖"
                     " (the cell path scales the gradient by f at every step).")
        else:
            text += "."
    if arch == "gru" and summary.get("mean_z") is not None:
        text += (" " + _gate_clause(summary, "z", "The update gate z", "most carrying")
                 + " (z → 1 carries h, and its gradient, unchanged).")
    return text


def _gate_clause(summary: dict, gate: str, name: str, extreme: str) -> str:
    """"The forget gate averages 0.35 over its units (its most open unit: 1.00)": the
    unit clause only when the mean hides a unit well above it, since a mean over units
    hides the few that stay open and carry the memory."""
    mean, top = summary[f"mean_{gate}"], summary.get(f"mean_{gate}_max")
    text = f"{name} averages {mean:.2f}"
    if top is not None and top - mean > 0.05:
        text += f" over its units (its {extreme} unit: {top:.2f})"
    return text


# ---------------------------------------------------------------- the Explain page's measurements


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


# ---------------------------------------------------------------- the three answers


@dataclass(frozen=True)
class Verdict:
    """One answer of the original question, judged."""

    answer: str          # "Answer 1" …
    claim: str           # a short quote of the claim
    verdict: str         # one of VERDICTS
    evidence: str        # the measurement, in words with its numbers
    parts: tuple = ()    # sub-claims: (claim, verdict, evidence) each


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _ratio_words(r: float) -> str:
    """'the gradient reaching step 0 is …' completed for a measured ratio r."""
    if r == 0:
        return "exactly 0 (it underflowed float32 on the way)"
    if not _finite(r):
        return f"{r} (it overflowed float32)"
    return f"{sci(r)} of the last step's" if r < 1 else f"{sci(r)} times the last step's"


def verdicts(evidence: dict) -> list[Verdict]:
    """Each answer of the original question, worded from
    :func:`core.explain.claim_evidence` (which decided each claim on the numbers);
    the evidence sentences quote the numbers."""
    T = evidence["steps"]
    rnn, lstm, c = evidence["rnn"], evidence["lstm"], evidence["checks"]
    default, fb3, nofg = (evidence["forget"][k] for k in ("default", "bias_3", "none"))
    lstm_ok, shut, fopen, rnn_big = (evidence["saturation"][k] for k in (
        "lstm", "lstm_shut", "lstm_open", "rnn_scaled"))

    # Answer 1: the additive cell path whose gain is the forget gate.
    gain_controls = c["gate_sets_gain"]
    v1 = "Confirmed" if gain_controls else "Refuted"
    e1 = (f"Over {T - 1} steps, the gradient reaching the first cell state, "
          f"‖∂ℓ/∂c₀‖/‖∂ℓ/∂c_T−1‖, is {sci(nofg['cell_ratio'])} with f ≡ 1 and "
          f"{sci(fb3['cell_ratio'])} with f ≈ "
          f"{fb3['mean_f']:.2f} (reach {int(fb3['gradient_reach'])} of {T} steps), against "
          f"{sci(default['cell_ratio'])} at torch's default init (f ≈ {default['mean_f']:.2f}, "
          f"reach {int(default['gradient_reach'])} steps)")
    e1 += (": the forget gate's value, which the network learns, decides how much gradient the "
           "additive path carries." if gain_controls else
           ": here the forget gate's value did not decide the gradient's reach.")
    if gain_controls and c["lstm_vanishes_at_init"]:
        e1 += (" A caveat the answer leaves out: at initialisation this LSTM's gradient vanishes "
               "too; the additive path only helps once the forget gate is near 1, which "
               "training (or a forget-gate bias) has to bring about.")

    # Answer 2: "passes the previous state … all states have information about previous states".
    v2 = "Refuted" if c["rnn_passes_state"] and c["both_vanish"] else "Half-true"
    e2 = (f"A vanilla RNN passes its previous state on too: ‖∂h_T−1/∂h_T−2‖₂ = "
          f"{sci(rnn['jac_one_step'])} at the last step, and h_T−1 depends on the first input "
          f"(‖∂h_T−1/∂x₀‖₂ = {sci(rnn['dep_x0'])}{', non-zero' if rnn['dep_x0'] > 0 else ''}). "
          f"Its gradient reaching step 0 is {sci(rnn['vanishing_ratio'])} of the last step's; an "
          f"untrained LSTM, which passes h and c, gets {sci(lstm['vanishing_ratio'])}.")
    if v2 == "Refuted":
        e2 += (" Passing the state on is what every recurrent net does, and it does not keep the "
               "gradient alive: what decides is the gain of the path it is passed along.")

    # Answer 3, claim by claim.
    shut_kills, bounded_explodes = c["saturation_kills"], c["bounded_explodes"]
    big = rnn_big["vanishing_ratio"]
    bounded_refuted = shut_kills or bounded_explodes
    e_bounded = (
        f"σ′ ≤ 1/4 and tanh′ ≤ 1, and both go to 0 in saturation. Gates saturated shut: mean σ′ "
        f"= {shut['mean_derivative']:.3g}, the gradient reaching step 0 is "
        f"{_ratio_words(shut['vanishing_ratio'])} (default init: "
        f"{sci(lstm_ok['vanishing_ratio'])}), and ‖∂L/∂W_hh‖ = {sci(shut['grad_w_hh'])} (default "
        f"{sci(lstm_ok['grad_w_hh'])})"
        + (": the saturated gate can hardly learn to reopen. " if shut_kills else ". ")
        + f"With weights × {evidence['scale']:g}, {rnn_big['saturated']:.0%} of the tanh RNN's "
        f"units saturated, the gradient reaching step 0 is {_ratio_words(big)}"
        + (": bounded outputs did not stop it from exploding." if bounded_explodes else "."))
    mult_refuted = c["product_shrinks"]
    e_mult = (f"The cell path multiplies the gradient by f at every step: with f ≈ "
              f"{default['mean_f']:.2f}, ‖∂ℓ/∂c₀‖/‖∂ℓ/∂c_T−1‖ = {sci(default['cell_ratio'])} over "
              f"{T - 1} steps (mean f^(T−1) = {sci(default['comparison_f_pow'])}, for "
              f"comparison); with f ≡ 1 it is {sci(nofg['cell_ratio'])}"
              + (": only f ≈ 1 preserves the magnitude." if mult_refuted else "."))
    keep_confirmed = c["cell_keeps_and_drops"]
    e_keep = (f"Forget gate saturated open (f ≈ {fopen['mean_f']:.3f}): the gradient reaches "
              f"{int(fopen['gradient_reach'])} of {T} steps; gates saturated shut: "
              f"{int(shut['gradient_reach'])}.")
    parts = [
        (("sigmoid/tanh outputs are bounded, so gradients can flow “without becoming too small "
         "or too large”"), "Refuted" if bounded_refuted else "Confirmed", e_bounded),
        ("“element-wise multiplication preserves the gradients' magnitude”",
         "Refuted" if mult_refuted else "Confirmed", e_mult),
        ("the memory cell can “selectively keep or drop information”",
         "Confirmed" if keep_confirmed else "Refuted", e_keep),
    ]
    short = ("bounded outputs", "multiplication preserving the magnitude", ("the memory cell's "
             "keep/drop"))
    holds = [n for n, (_, v, _) in zip(short, parts) if v == "Confirmed"]
    fails = [n for n, (_, v, _) in zip(short, parts) if v == "Refuted"]
    v3 = "Half-true" if holds and fails else ("Confirmed" if holds else "Refuted")
    e3 = " ".join(x for x in (
        f"Holds: {', '.join(holds)}." if holds else "",
        f"Does not hold: {', '.join(fails)}." if fails else "",
    ) if x) + " Claim by claim:"
    return [
        Verdict("Answer 1", "“a unique additive gradient structure that includes direct access to "
                "the forget gate's activations”", v1, e1),
        Verdict("Answer 2", "“LSTM passes the previous state's hidden weights to the current "
                "state … all states now have some information about all of the previous "
                "states”", v2, e2),
        Verdict("Answer 3", "“the gates use sigmoid and tanh … bounded output ranges … "
                "element-wise multiplication preserves the gradients' magnitude … the memory "
                "cell allows the network to selectively keep or drop information”", v3, e3,
                tuple(parts)),
    ]

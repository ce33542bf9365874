"""The three answers of the original question, each decided on the numbers
(:func:`core.explain.claims.claim_evidence`) and put into words here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.narrate.numbers import _finite, sci


@dataclass(frozen=True)
class Verdict:
    """One answer of the original question, judged."""

    answer: str          # "Answer 1" …
    claim: str           # a short quote of the claim
    verdict: str         # one of VERDICTS
    evidence: str        # the measurement, in words with its numbers
    parts: tuple = ()    # sub-claims: (claim, verdict, evidence) each


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

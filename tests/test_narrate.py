"""The sentences that read the measured numbers for the learner (core.narrate)."""

import pandas as pd

from core import narrate
from core.narrate import describe_gradient, sci


def test_vanished_exploded_and_carried_are_told_apart():
    base = {"gradient_reach": 12, "steps": 100}
    assert "it has vanished" in describe_gradient({**base, "vanishing_ratio": 3e-9})
    assert "it has exploded" in describe_gradient({**base, "vanishing_ratio": 1e6})
    assert "carried across" in describe_gradient({**base, "vanishing_ratio": 0.03})
    assert "Gradient reach: 12 of 100 steps." in describe_gradient({**base, "vanishing_ratio": 3e-9})
    assert "No gradient probe yet" in describe_gradient({})


def test_the_forget_gate_sentence_names_the_most_open_unit_when_the_mean_hides_it():
    s = {"vanishing_ratio": 0.03, "gradient_reach": 50, "steps": 50, "mean_f": 0.33,
         "mean_f_max": 0.99, "cell_ratio": 1.18}
    text = describe_gradient(s, "lstm")
    assert "The forget gate averages 0.33 over its units (its most open unit: 0.99)" in text
    assert "‖∂ℓ/∂c₀‖ is 1.18" in text
    # at init every unit sits near σ(0): no extra clause
    text = describe_gradient({**s, "mean_f": 0.50, "mean_f_max": 0.52}, "lstm")
    assert "most open unit" not in text
    gru = describe_gradient({**s, "mean_z": 0.4, "mean_z_max": 0.97}, "gru")
    assert "its most carrying unit: 0.97" in gru


def test_sci_formats():
    assert sci(None) == "—" and sci(0) == "0" and sci(0.42) == "0.42" and sci(3e-9) == "3e-09"


# ---------------------------------------------------------------- the Explain page's words
# Inputs shaped like core.explain's results, with numbers chosen for each branch.

RNN = dict(steps=60, jac_full=4.6e-12, per_step=0.64, w_norm=0.99, bound_full=0.49,
           jac_one_step=0.92, w_radius=0.69, mean_phi_prime=0.93, vanishing_ratio=5.8e-13,
           dep_x0=2e-12)
LSTM = dict(steps=60, cell_full=3e-11, cell_ratio=5.3e-12, mean_f=0.49, cell_one_step=0.71,
            vanishing_ratio=8.9e-13)


def test_rnn_and_lstm_sentences_follow_the_numbers():
    loose = narrate.rnn_sentence(dict(RNN, w_norm=1.2, bound_full=1e6, jac_one_step=1.1))
    assert "1.2 > 1" in loose and "stretch" in loose and "shrinks by × 0.64" in loose
    tight = narrate.rnn_sentence(dict(RNN, w_norm=0.9, bound_full=0.1, jac_one_step=0.8))
    assert "0.9 ≤ 1" in tight and "stretch" not in tight
    assert "grows by" in narrate.rnn_sentence(dict(RNN, per_step=1.1))
    assert narrate.lstm_sentence(dict(LSTM, cell_ratio=1e-9)).startswith(
        "**At initialisation the LSTM's gradient vanishes too.**")
    assert "vanishes too" not in narrate.lstm_sentence(dict(LSTM, cell_ratio=0.5))


def test_forget_sentence_reads_the_table_in_variant_order():
    table = pd.DataFrame({"variant": ["default", "fb1", "fb3", "none"],
                          "cell_ratio": [1e-9, 1e-5, 0.5, 2.0]})
    text = narrate.forget_sentence(table)
    assert text.startswith("The measured cell ratio follows the forget gate")
    assert "above 1" in text
    flat = narrate.forget_sentence(table.assign(cell_ratio=[1e-5, 1e-9, 0.5, 0.5]))
    assert "does not simply follow" in flat and "above 1" not in flat


def test_gru_and_trained_sentences_follow_the_numbers():
    gru = dict(steps=60, default_full=1e-9, default_mean_z=0.5, default_reach=8, z_bias=3.0,
               biased_mean_z=0.95, biased_full=0.2, biased_reach=60)
    text = narrate.gru_sentence(gru)
    assert "vanishes like the others" in text and "+3" in text and "reach 60 of 60" in text
    assert "shrinks" in narrate.gru_sentence(dict(gru, default_full=0.01))
    side = dict(gate_mean=0.5, gate_max_unit=0.55, units_open=0, units=8, carry_gain=1e-9,
                reach=10, ratio=1e-9, cell_ratio=1e-9)
    opened = dict(side, gate_max_unit=0.98, units_open=1, carry_gain=0.4, reach=50)
    assert "opened the gate of 1 of its 8 units" in narrate.trained_sentence(
        {"gate": "f", "init": side, "trained": opened})
    assert "has not opened" in narrate.trained_sentence(
        {"gate": "f", "init": side, "trained": side})


def _evidence(**checks) -> dict:
    """core.explain.claim_evidence's shape: every claim confirmed by default."""
    row = dict(cell_ratio=1e-12, mean_f=0.49, gradient_reach=10, comparison_f_pow=5e-19)
    sat = dict(vanishing_ratio=1e-12, mean_derivative=0.25, grad_w_hh=0.03, gradient_reach=10,
               saturated=0.0, mean_f=0.5)
    base = dict.fromkeys(("gate_sets_gain", "lstm_vanishes_at_init", "rnn_passes_state",
                          "both_vanish", "saturation_kills", "bounded_explodes",
                          "product_shrinks", "cell_keeps_and_drops"), True)
    return {"steps": 60, "rnn": RNN, "lstm": LSTM, "scale": 5.0,
            "forget": {"default": row, "bias_3": dict(row, cell_ratio=0.65, mean_f=0.95),
                       "none": dict(row, cell_ratio=6.5, mean_f=1.0)},
            "saturation": {"lstm": sat, "lstm_shut": dict(sat, vanishing_ratio=0.0),
                           "lstm_open": dict(sat, gradient_reach=60),
                           "rnn": sat, "rnn_scaled": dict(sat, vanishing_ratio=float("inf"))},
            "checks": {**base, **checks}}


def test_verdicts_word_the_decided_claims():
    v = narrate.verdicts(_evidence())
    assert [x.verdict for x in v] == ["Confirmed", "Refuted", "Half-true"]
    assert [p[1] for p in v[2].parts] == ["Refuted", "Refuted", "Confirmed"]
    assert "A caveat the answer leaves out" in v[0].evidence
    assert "exactly 0 (it underflowed float32" in v[2].parts[0][2]
    assert "inf (it overflowed float32)" in v[2].parts[0][2]
    assert v[2].evidence.startswith("Holds: the memory cell's keep/drop. Does not hold:")
    other = narrate.verdicts(_evidence(gate_sets_gain=False, both_vanish=False,
                                       saturation_kills=False, bounded_explodes=False,
                                       product_shrinks=False))
    assert [x.verdict for x in other] == ["Refuted", "Half-true", "Confirmed"]
    assert "did not decide the gradient's reach" in other[0].evidence
    assert all(x.verdict in narrate.VERDICTS for x in v + other)

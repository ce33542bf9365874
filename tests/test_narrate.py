"""The sentences that read the measured numbers for the learner (core.narrate)."""

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

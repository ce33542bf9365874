"""The sentences that read the measured numbers for the learner (core.narrate).

The sentence under a run's charts is checked on summaries recorded from real short
trainings (tests/record_narrate_cases.py → tests/data/narrate_cases.json: each case the
first probe of a preset's run that shows it) and on hand-built summaries only for what a
short training does not produce on demand (NaN, inf, a zero last gradient).
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import narrate
from core.narrate import RATIO_BANDS, describe_gradient, ratio_band, ratio_scale, sci
from pagetest import page_path

CASES = {c["case"]: c for c in json.loads(
    (Path(__file__).parent / "data" / "narrate_cases.json").read_text())}


def _num(v):
    """JSON has no NaN/inf: the recorder wrote them as strings."""
    return float(v) if v in ("nan", "inf", "-inf") else v


def recorded(name: str) -> tuple[dict, str, dict]:
    c = CASES[name]
    return ({k: _num(v) for k, v in c["summary"].items()}, c["arch"],
            {k: _num(v) for k, v in c["context"].items()})


def sentence(name: str) -> str:
    return describe_gradient(*recorded(name))


# (case, phrases the sentence must contain, phrases it must not): each case is a reading
# issue 15 saw go wrong.
TABLE = [
    ("rnn_vanished_at_init", ["has vanished by step 0", "above the baseline"],
     ["undiminished", "weakened", "The task is solved"]),
    # an unsolved RNN briefly reaches all 50 steps: say so, and that the loss has not moved
    ("rnn_unsolved_full_reach", ["reaches step 0 weakened", "all 50 of 50", "at the baseline",
                                 "not proof that it has been learned"],
     ["carried across", "undiminished", "The task is solved"]),
    # 5e-4 is not "vanished": it is mostly vanished, on the stated scale
    ("gru_5e-4_at_baseline", ["has mostly vanished by step 0", "at the baseline"],
     ["The gradient has vanished", "carried"]),
    # the GRU at step 125: mostly vanished at step 0 yet a reach of 46 of 50: both said
    ("gru_mostly_vanished_reach_46", ["has mostly vanished by step 0", "falls off in the first"],
     ["The gradient has vanished", "all 50 of 50"]),
    # 2e-3 while the loss sits at the baseline: weakened, and not learned yet
    ("gru_2e-3_at_baseline", ["reaches step 0 weakened", "at the baseline", "not learned yet"],
     ["carried across", "undiminished", "The task is solved"]),
    ("gru_solved", ["The task is solved", "The update gate z averages"],
     ["not learned", "not solved"]),
    # "most open unit: 1.00" beside a cell ratio of 1e-8: explained
    ("lstm_open_unit_vanished_cell",
     ["its most open unit: 1.00", "An open unit is no contradiction", "tanh′(c) ≈ 0"],
     ["The task is solved"]),
    ("lstm_below_baseline_unsolved", ["below the baseline", "but the task is not solved yet"],
     ["The task is solved"]),
    ("lstm_solved", ["The task is solved", "along the cell state"], ["An open unit"]),
    ("exploding_at_init", ["grows back through time (exploding)", "times the last step's",
                           "diverged later, at training step"], ["vanished"]),
    ("exploding_grows", ["grows back through time (exploding)"], ["vanished"]),
    # a diverged run's gradient became inf/NaN: named as such, never "no gradient reaches"
    ("exploding_nonfinite", ["The gradient exploded to", "at training step", "diverged"],
     ["No gradient reaches", "undefined", "Gradient reach:"]),
]


@pytest.mark.parametrize("name, must, never", TABLE, ids=[t[0] for t in TABLE])
def test_the_sentence_on_each_recorded_probe(name, must, never):
    text = sentence(name)
    for phrase in must:
        assert phrase in text, f"{name}: {phrase!r} missing from: {text}"
    for phrase in never:
        assert phrase not in text, f"{name}: {phrase!r} in: {text}"


def test_every_case_the_issue_names_was_recorded():
    assert {t[0] for t in TABLE} == set(CASES)
    summary, _, context = recorded("gru_mostly_vanished_reach_46")
    assert summary["vanishing_ratio"] < 1e-3 and 40 <= summary["gradient_reach"] < 50
    summary, _, _ = recorded("lstm_open_unit_vanished_cell")
    assert summary["mean_f_max"] >= 0.99 and summary["cell_ratio"] < 1e-6


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_clause_contradicts_another_number(name):
    """Whatever the probe: the band named is the ratio's own, "all T" only with a full reach,
    "solved" only when the evaluation says so, the ratio and reach quoted as measured."""
    summary, arch, context = recorded(name)
    text = describe_gradient(summary, arch, context)
    r, reach, T = summary["vanishing_ratio"], int(summary["gradient_reach"]), int(summary["steps"])
    if not math.isfinite(r) or reach == 0:
        assert "exploded to" in text
        return
    band = ratio_band(r)
    assert band.phrase in text and sci(r) in text
    others = [b.phrase for b in RATIO_BANDS if b is not band and b.phrase not in band.phrase]
    assert not any(p in text for p in others), text
    assert (f"all {T} of {T}" in text) == (reach == T)
    assert f"{reach} of {T}" in text
    assert ("The task is solved" in text) == bool(context.get("solved"))


def test_hand_built_edge_cases():
    base = {"gradient_reach": 0, "steps": 20}
    nan = describe_gradient({**base, "vanishing_ratio": math.nan, "h_grad_first": math.nan,
                             "h_grad_last": math.nan}, "rnn_relu", {"step": 7, "diverged_at": 7})
    assert nan.startswith("The gradient exploded to NaN at training step 7")
    assert "diverged" in nan and "No gradient reaches" not in nan
    inf = describe_gradient({**base, "vanishing_ratio": math.inf, "h_grad_first": math.inf,
                             "h_grad_last": 3.0}, "rnn_relu", {"step": 4})
    assert inf.startswith("The gradient exploded to inf at training step 4")
    # a NaN in the middle of the sequence: only the reach (0) betrays it
    middle = describe_gradient({**base, "vanishing_ratio": 2.0, "h_grad_first": 6.0,
                                "h_grad_last": 3.0})
    assert "exploded to inf/NaN" in middle
    # the page names what it found in the probe's rows
    named = describe_gradient({**base, "vanishing_ratio": 2.0, "h_grad_first": 6.0,
                               "h_grad_last": 3.0, "nonfinite": "NaN"})
    assert "exploded to NaN" in named
    zero_last = describe_gradient({"vanishing_ratio": math.nan, "gradient_reach": 0, "steps": 20,
                                   "h_grad_first": 0.0, "h_grad_last": 0.0})
    assert "No gradient reaches the last step" in zero_last
    underflow = describe_gradient({"vanishing_ratio": 0.0, "gradient_reach": 12, "steps": 50,
                                   "h_grad_first": 0.0, "h_grad_last": 1.0})
    assert "underflowed to exactly 0" in underflow and "12 of 50" in underflow
    grown = describe_gradient({"vanishing_ratio": 5.9, "gradient_reach": 50, "steps": 50})
    assert "even grown" in grown and "5.9 times" in grown
    assert "No gradient probe yet" in describe_gradient({})


def test_the_scale_is_stated_with_every_band():
    scale = ratio_scale()
    for band in RATIO_BANDS:
        assert band.name in scale
    assert "> 10: exploding" in scale and "< 1e-08: vanished" in scale and "inf/NaN" in scale
    lows = [b.low for b in RATIO_BANDS]
    assert lows == sorted(lows, reverse=True) and lows[-1] == 0
    assert ratio_band(1e-3).name == "weakened" and ratio_band(9.99e-4).name == "mostly vanished"
    assert ratio_band(math.nan) is None and ratio_band(math.inf) is None


def test_probe_context_reads_the_evaluation_at_or_before_the_probe():
    evals = pd.DataFrame({"step": [0, 50, 100], "loss": [1.0, 0.17, 0.004],
                          "metric": [1.0, 0.17, 0.004], "solved": [False, False, True]})
    metrics = pd.DataFrame({"step": [0, 1, 2, 3], "loss": [1.0, 2.0, math.inf, math.nan]})
    c = narrate.probe_context(evals, metrics, 75, 0.167, "mse")
    assert (c["eval_step"], c["loss"], c["solved"], c["diverged_at"]) == (50, 0.17, False, 2)
    assert narrate.probe_context(evals, None, 100, 0.167)["solved"] is True


def test_compare_sentence_reads_each_model():
    rows = [dict(label="gru", status="finished", step=300, steps=300, solved=True,
                 steps_to_solve=250, eval_loss=0.004, baseline=0.167, vanishing_ratio=0.49,
                 gradient_reach=50, seq_steps=50),
            dict(label="rnn_tanh", status="finished", step=300, steps=300, solved=False,
                 steps_to_solve=None, eval_loss=0.171, baseline=0.167, vanishing_ratio=3e-11,
                 gradient_reach=13, seq_steps=50)]
    text = narrate.compare_sentence(rows)
    assert text.startswith("After 300 of 300 training steps on identical batches:")
    assert "gru solved the task at step 250" in text
    assert "rnn_tanh did not solve it (held-out loss 0.171, at the baseline 0.167)" in text
    assert "gru: 0.49 (nearly undiminished, reach 50 of 50)" in text
    assert "rnn_tanh: 3e-11 (vanished, reach 13 of 50)" in text


def test_sci_formats():
    assert sci(None) == "—" and sci(0) == "0" and sci(0.42) == "0.42" and sci(3e-9) == "3e-09"
    assert sci(math.nan) == "—" and sci(math.inf) == "inf" and sci(8e13) == "8.0e+13"
    assert sci(3e-19) == "3e-19"


# ---------------------------------------------------------------- the sentence follows the probe shown

def _saved_run(runs_dir):
    from core.config import TrainConfig
    from core.runs import RunStore
    from core.train import Trainer

    store = RunStore(runs_dir)
    cfg = TrainConfig(task="adding", seq_len=10, arch="lstm", hidden_size=8, batch_size=16,
                      steps=21, probe_every=10, eval_every=10, eval_size=32, seed=0)
    writer = store.create(cfg)
    for record in Trainer(cfg).run():
        writer.add(record)
    writer.flush()
    return writer.dir.name, store


def test_the_sentence_reads_the_probe_scrubbed_back_to(runs_dir):
    from core.probe import summarise

    run_id, store = _saved_run(runs_dir)
    data = store.load(run_id)
    probes, gates = data.table("probes"), data.table("gates")
    at = AppTest.from_file(page_path("runs"), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]

    def reading():
        return next(m for m in at.markdown if m.value.startswith("**At training step"))

    latest = reading()
    assert latest.value.startswith("**At training step 20** (the latest probe)")
    assert latest.help == ratio_scale()          # the scale, one hover away
    at.toggle(key="runs_probe_step_follow").set_value(False).run()
    at.select_slider(key="runs_probe_step").set_value(10).run()
    earlier = reading().value
    assert earlier.startswith("**At training step 10** (the probe picked below)")
    at10 = summarise(probes[probes["step"] == 10], gates[gates["step"] == 10])
    context = narrate.probe_context(data.table("evals"), None, 10,
                                    data.status_copy()["baseline_loss"], "mse")
    assert describe_gradient(at10, "lstm", context) in earlier


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

"""core.captions: the landing's and the lesson's captions say what the numbers say."""

import math

import pandas as pd

from core import captions
from core.config import TrainConfig

LSTM = TrainConfig(task="adding", seq_len=50, arch="lstm", hidden_size=32, lr=0.02, clip=1.0,
                   steps=1000)


def test_the_settings_line_names_the_model_task_and_training():
    line = captions.settings_line(LSTM.replace(stop_when_solved=True, solved_tail=100))
    assert line == ("lstm (clip 1) · adding, T = 50 · hidden 32 · batch 64 · adam, lr 0.02 · "
                    "1000 steps · seed 0 · stops once solved (+100 steps)")


def test_a_line_of_several_runs_says_what_they_share_once_and_what_is_their_own():
    runs = [("20250101-000000-adding-rnn_tanh-aaaaaa", LSTM.replace(arch="rnn_tanh")),
            ("20250101-000000-adding-lstm-bbbbbb", LSTM)]
    line = captions.runs_line(runs)
    assert line.startswith("Showing runs aaaaaa (rnn_tanh (clip 1)), bbbbbb (lstm (clip 1)) · ")
    assert line.count("adding, T = 50") == 1 and "lr 0.02" in line
    one = captions.runs_line(runs[1:])
    assert one == f"Showing run {runs[1][0]}: {captions.settings_line(LSTM)}"


def test_config_changes_name_each_setting_that_differs_but_not_how_a_run_is_run():
    other = LSTM.replace(arch="rnn_tanh", lr=0.003, clip=None, threads=2, stop_when_solved=True)
    assert captions.config_changes(LSTM, other) == ["arch: lstm → rnn_tanh", "lr: 0.02 → 0.003",
                                                    "clip: 1 → off"]
    assert captions.same_settings(LSTM, LSTM.replace(threads=3, solved_tail=7))


def test_outcome_says_solved_not_yet_not_solved_in_n_steps_or_diverged():
    base = {"metric_name": "mse", "baseline_loss": 1 / 6, "eval_loss": 0.17}
    solved = captions.outcome(LSTM, {**base, "status": "running", "solved": True,
                                     "steps_to_solve": 275, "eval_metric": 0.0098})
    assert solved == "solved at step 275 (held-out mse 0.0098 < 0.01)"
    assert captions.outcome(LSTM, {**base, "status": "running", "step": 40}) == (
        "not solved yet (step 40) (held-out loss 0.17; baseline 0.167)")
    assert captions.outcome(LSTM, {**base, "status": "finished", "step": 1000}).startswith(
        "not solved in 1000 steps")
    assert captions.outcome(LSTM, {"status": "diverged", "step": 6}, diverged_at=5) == (
        "diverged: its loss stopped being a finite number at step 5")
    assert captions.outcome(LSTM, {"status": "queued"}) == "waiting for a free training slot"


def test_the_gradient_clause_reads_the_ratio_on_narrates_scale():
    s = {"vanishing_ratio": 0.0535, "gradient_reach": 50, "steps": 50, "h_grad_first": 0.05,
         "h_grad_last": 1.0}
    assert captions.gradient_clause(s, 350) == (
        "at step 350, t = 0 gets 0.0535 of t = 49's gradient (weakened); reach 50 of 50 steps")
    assert "35.2 times" in captions.gradient_clause({**s, "vanishing_ratio": 35.2}, 0)
    assert "(exploding)" in captions.gradient_clause({**s, "vanishing_ratio": 35.2}, 0)
    zero = captions.gradient_clause({**s, "vanishing_ratio": 0.0, "h_grad_first": 0.0}, 975)
    assert "vanishes entirely before t = 0" in zero
    inf = captions.gradient_clause({**s, "vanishing_ratio": math.inf,
                                    "h_grad_first": math.inf}, 4)
    assert "no longer a finite number" in inf
    assert captions.gradient_clause(None, None) == "no gradient probe yet"


def test_a_diverged_models_caption_says_what_its_last_finite_probe_measured():
    nan = {"vanishing_ratio": math.nan, "gradient_reach": 0, "steps": 20,
           "h_grad_first": math.nan, "h_grad_last": math.nan}
    before = {"vanishing_ratio": 23.4, "gradient_reach": 20, "steps": 20, "h_grad_first": 1.7e4,
              "h_grad_last": 733.0}
    text = captions.model_caption("RNN relu", LSTM, {"status": "diverged", "step": 6}, nan, 5,
                                  (before, 3), diverged_at=5)
    assert text.startswith("**RNN relu** — diverged")
    assert "at step 5, the gradient is no longer a finite number" in text
    assert "before that, at step 3, t = 0 got 23.4 times t = 19's gradient (exploding)" in text


def _gates(steps_means: dict) -> pd.DataFrame:
    rows = []
    for step, (f, f_max) in steps_means.items():
        for t in range(3):
            rows += [(step, t, "f", f), (step, t, "f_max", f_max), (step, t, "i", 0.5)]
    return pd.DataFrame(rows, columns=["step", "t", "gate", "mean"])


def test_the_gate_story_reads_mean_and_most_open_unit_and_explains_only_when_they_differ():
    story = captions.gate_story("LSTM", "lstm", _gates({0: (0.49, 0.58), 350: (0.37, 1.0)}), 32)
    assert story.startswith("**LSTM**, forget gate f averaged over its 32 units")
    assert "0.49 at step 0, 0.37 at step 350" in story and "0.58 → 1.00" in story
    assert "The mean hides it" in story
    open_all = captions.gate_story("LSTM", "lstm", _gates({0: (0.97, 0.99), 300: (0.97, 1.0)}), 32)
    assert "The mean hides it" not in open_all
    assert captions.gate_story("RNN", "rnn_tanh", _gates({0: (0.5, 0.5)}), 32) is None


def test_the_loss_caption_names_the_baseline():
    assert "the baseline 0.167" in captions.loss_caption(1 / 6)
    assert captions.loss_caption(None) == "Dashed: training loss (smoothed); solid: held-out loss."
    assert len(captions.loss_caption(1 / 6, short=True)) < len(captions.loss_caption(1 / 6))

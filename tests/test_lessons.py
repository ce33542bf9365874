"""core.lessons: the landing's race and the lesson's steps are valid plain data, and the
claims their texts make about their own settings hold when measured."""

import pytest

from core import lessons, presets
from core.config import TrainConfig
from core.lessons import CHARTS, LESSON_FIXED, RACE, STEPS, SOLVED_TAIL
from core.train import ProbeRecord, Trainer


def test_the_steps_are_numbered_one_to_seven_and_each_says_what_to_do_look_at_and_mean():
    assert sorted(STEPS) == list(range(1, 8)) == list(range(1, lessons.LAST + 1))
    for n, step in STEPS.items():
        assert step.number == n
        for text in (step.title, step.button, step.do, step.look, step.means):
            assert isinstance(text, str) and len(text) > 10, (n, text)
        assert step.charts and set(step.charts) <= set(CHARTS), (n, step.charts)
        assert len(set(step.labels())) == len(step.labels())


def test_every_training_step_is_valid_and_stops_once_solved_after_its_tail():
    for step in [RACE, *STEPS.values()]:
        configs = step.configs()
        assert len(configs) == len(step.models)
        for config in configs:
            assert isinstance(config, TrainConfig)
            assert config.stop_when_solved and config.solved_tail == SOLVED_TAIL
            assert config.threads == 1
    assert not STEPS[6].trains and STEPS[6].charts == ("verdicts",)


def test_the_landing_races_rnn_lstm_gru_on_identical_settings_and_step_two_is_the_race():
    configs = RACE.configs()
    assert [c.arch for c in configs] == ["rnn_tanh", "lstm", "gru"]
    assert {c.replace(arch="lstm") for c in configs} == {configs[1]}    # only the arch differs
    assert (configs[0].task, configs[0].seq_len, configs[0].seed) == ("adding", 50, 0)
    assert STEPS[2].configs() == configs and STEPS[2].button == RACE.button


def test_step_four_is_a_pure_lag_lstm_default_against_chrono():
    default, chrono = STEPS[4].configs()
    assert default.task == chrono.task == "recall" and default.seq_len == 100
    assert (default.arch, default.gate_init, chrono.gate_init) == ("lstm", "default", "chrono")
    assert default.replace(gate_init="chrono") == chrono


def test_step_five_trains_the_two_exploding_presets_by_name():
    unclipped, clipped = STEPS[5].configs()
    assert unclipped == presets.preset_config(presets.EXPLODING).replace(**LESSON_FIXED)
    assert clipped == presets.preset_config(presets.CLIPPED).replace(**LESSON_FIXED)


@pytest.mark.parametrize("text,expected", [("3", 3), (" 7 ", 7), (1, 1), ("0", None),
                                           ("8", None), ("x", None), (None, None), ("", None)])
def test_a_step_is_found_from_the_text_of_a_link(text, expected):
    found = lessons.step(text)
    assert (found.number if found else None) == expected


def _first_probe(config: TrainConfig) -> dict:
    trainer = Trainer(config.replace(steps=1, eval_size=64))
    return next(r for r in trainer.run() if isinstance(r, ProbeRecord)).summary


def test_step_two_says_the_gradient_vanishes_in_all_three_at_initialisation():
    """Its text: 'At initialisation the gradient vanishes in all three' (measured here:
    1e-10, 3e-12 and 6e-11 of the last step's gradient reach t = 0)."""
    assert "At initialisation the gradient vanishes in all three" in STEPS[2].means
    for config in STEPS[2].configs():
        s = _first_probe(config)
        assert s["vanishing_ratio"] < 1e-8 and s["gradient_reach"] < s["steps"] / 2, (config.arch, s)


def test_step_four_says_the_two_lstms_differ_before_any_learning():
    """Its text: the default LSTM's forget gate starts near 0.5 and its gradient is gone
    after 100 steps; chrono starts the gate open and the gradient reaches back."""
    default, chrono = (_first_probe(c) for c in STEPS[4].configs())
    assert abs(default["mean_f"] - 0.5) < 0.05 and default["vanishing_ratio"] < 1e-12
    assert chrono["mean_f"] > 0.9 and chrono["gradient_reach"] > 0.8 * chrono["steps"]
    assert chrono["gradient_reach"] > 4 * default["gradient_reach"]


def test_the_later_answers_step_trains_the_modern_answers_on_the_pure_lag():
    # Step 7 is Compare's "Modern answers": the same models at the same settings.
    step = STEPS[7]
    comparison = presets.COMPARISONS[presets.MODERN_ANSWERS]
    assert [c.arch for c in step.configs()] == [presets.COMPARE_MODELS[m]["arch"]
                                                 for m in ("lstm", "mingru", "orthogonal", "lru")]
    assert set(comparison.models) == {"lstm", "mingru", "orthogonal", "lru"}
    base = presets.preset_config(comparison.preset)
    for c in step.configs():
        assert c.replace(arch="lstm") == base.replace(**LESSON_FIXED)

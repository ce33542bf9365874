"""The pure-lag presets (issue 16): one source of settings for Train, Compare and the
lesson, and what they claim, measured at small scale (each test a few seconds)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from streamlit.testing.v1 import AppTest

from core import lessons
from core.config import TrainConfig
from core.presets import (
    COMPARE_MODELS,
    PRESETS,
    PURE_LAG,
    PURE_LAG_CHRONO,
    PURE_LAG_COMPARE,
    PURE_LAG_DEFAULT,
    PURE_LAG_F_ONLY,
    preset_config,
)
from core.train import ProbeRecord, Trainer, run_lockstep
from pagetest import page_path


def test_train_compare_and_the_lesson_train_the_same_three_models():
    default, chrono, f_only = (preset_config(n) for n in (PURE_LAG_DEFAULT, PURE_LAG_CHRONO,
                                                          PURE_LAG_F_ONLY))
    assert (default.task, default.seq_len, default.arch) == ("recall", 100, "lstm")
    assert (default.hidden_size, default.batch_size, default.lr) == (32, 64, 0.003)
    assert chrono == default.replace(gate_init="chrono")
    assert f_only == default.replace(forget_bias=5.0)
    # Compare: the preset's settings with each model's overrides are the three presets
    compared = [default.replace(**COMPARE_MODELS[m]) for m in PURE_LAG_COMPARE]
    assert compared == [default, chrono, f_only]
    assert [c.label() for c in compared] == list(PURE_LAG_COMPARE)
    # the lesson's step 4 reads the same settings (it adds only its stop rule)
    assert lessons.LAG_SETTINGS == PURE_LAG
    assert lessons.STEPS[4].configs() == [c.replace(**lessons.LESSON_FIXED)
                                          for c in (default, chrono)]


def _probe_at(configs: list[TrainConfig], steps: set[int]) -> list[dict]:
    """Lockstep training (as Compare runs it): each model's probe summary at ``steps``."""
    out: list[dict] = [{} for _ in configs]
    trainers = [Trainer(c) for c in configs]

    def emit(i, record):
        if isinstance(record, ProbeRecord) and record.step in steps:
            out[i][record.step] = record.summary
    run_lockstep(trainers, emit)
    return out


def test_the_three_lstms_differ_in_heatmaps_a_and_c_from_the_first_probe():
    """At step 0, before any learning: the default LSTM's gradient has vanished by t = 0
    (f ≈ 0.5), chrono's and the forget-bias-5 LSTM's reach back (f > 0.95)."""
    configs = [preset_config(n).replace(steps=1, eval_size=64, threads=1)
               for n in (PURE_LAG_DEFAULT, PURE_LAG_CHRONO, PURE_LAG_F_ONLY)]
    default, chrono, f_only = (p[0] for p in _probe_at(configs, {0}))
    assert abs(default["mean_f"] - 0.5) < 0.05 and default["vanishing_ratio"] < 1e-12
    assert default["gradient_reach"] < 20
    assert chrono["mean_f"] > 0.95 and chrono["gradient_reach"] > 80
    assert f_only["mean_f"] > 0.99 and f_only["gradient_reach"] == 100


def test_the_forget_bias_alone_loses_its_reach_while_chrono_keeps_it():
    """Seed 0, lockstep as on Compare: forget bias 5 alone reaches all 100 steps at step 0
    and has lost it by step 250 (its cell saturates: 4 of 100 measured), chrono keeps
    100 of 100."""
    configs = [preset_config(n).replace(steps=251, eval_every=1000, eval_size=64, threads=1)
               for n in (PURE_LAG_CHRONO, PURE_LAG_F_ONLY)]
    chrono, f_only = _probe_at(configs, {0, 250})
    assert f_only[0]["gradient_reach"] == 100 and f_only[250]["gradient_reach"] < 20
    assert chrono[250]["gradient_reach"] == 100


def test_chrono_beats_the_default_init_on_a_short_pure_lag_within_a_small_budget():
    """Recall T = 20 (the shipped sweep: chrono 3/3 in 150 steps, default 0/3 in 2000),
    600 steps at most: chrono solves, the default does not."""
    base = preset_config(PURE_LAG_DEFAULT).replace(
        seq_len=20, steps=600, probe_every=0, eval_every=50, eval_size=500,
        stop_when_solved=True, threads=1)
    chrono, default = Trainer(base.replace(gate_init="chrono")), Trainer(base)
    for trainer in (chrono, default):
        for _ in trainer.run():
            pass
    assert chrono.solved_at is not None and chrono.solved_at <= 300
    assert default.solved_at is None


def test_the_chrono_preset_solves_its_pure_lag_within_its_budget():
    """'Pure lag, T = 100: LSTM with chrono init': solved within its 1000 steps (seed 0: step 425)."""
    config = preset_config(PURE_LAG_CHRONO).replace(stop_when_solved=True, probe_every=0,
                                                    threads=1)
    trainer = Trainer(config)
    for _ in trainer.run():
        pass
    assert trainer.solved_at is not None and trainer.solved_at <= config.steps


def test_the_compare_link_opens_the_three_models_at_the_presets_settings(runs_dir):
    at = AppTest.from_file(page_path("compare"), default_timeout=60)
    at.query_params.update({"preset": PURE_LAG_DEFAULT, "models": ",".join(PURE_LAG_COMPARE)})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="compare_models").value == list(PURE_LAG_COMPARE)
    assert at.selectbox(key="compare_task").value == "recall"
    assert at.number_input(key="compare_seq_len").value == 100
    assert at.number_input(key="compare_hidden_size").value == 32
    assert at.number_input(key="compare_steps").value == PURE_LAG["steps"]
    assert at.number_input(key="compare_probe_every").value == PURE_LAG["probe_every"]
    # the link the Explain page builds is a valid URL query for it
    assert "models=lstm%2Clstm%20%28chrono%20init%29" in urlencode(
        {"models": ",".join(PURE_LAG_COMPARE)}, quote_via=quote)


def test_the_train_form_shows_and_keeps_the_gate_initialisation(runs_dir):
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params.update({"preset": PURE_LAG_CHRONO})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="train_gate_init").value == "chrono"
    assert at.selectbox(key="train_preset").value == PURE_LAG_CHRONO
    at.selectbox(key="train_gate_init").select("default").run()
    assert at.selectbox(key="train_preset").value == PURE_LAG_DEFAULT
    assert PURE_LAG_DEFAULT in PRESETS

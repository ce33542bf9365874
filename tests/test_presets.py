"""The Train presets: every one is a valid config, and the story they tell is measured."""

import pytest

from core.presets import PRESETS, preset_config
from core.train import EvalRecord, Trainer

REQUIRED = ("Vanilla RNN forgets (adding, T=50)", "LSTM remembers (same task)", "GRU remembers",
            "LSTM without its forget gate",
            "Exploding gradients (RNN, spectral radius 1.5, no clipping)", "… tamed by clipping")


def test_the_issue_presets_exist_and_validate():
    assert set(REQUIRED) <= set(PRESETS)
    for name in PRESETS:
        preset_config(name)  # raises on an invalid value
    with pytest.raises(KeyError, match="presets:"):
        preset_config("no such preset")


def test_lstm_presets_differ_only_in_the_forget_gate():
    base = PRESETS["LSTM remembers (same task)"]
    for name, change in (("LSTM without its forget gate", {"no_forget_gate": True}),
                         ("LSTM with forget bias 1 (Jozefowicz et al.)", {"forget_bias": 1.0})):
        assert PRESETS[name] == {**base, **change}
    rnn = PRESETS["Vanilla RNN forgets (adding, T=50)"]
    assert (rnn["task"], rnn["seq_len"]) == (base["task"], base["seq_len"])


def test_the_lstm_preset_solves_its_task_within_its_budget():
    """'LSTM remembers' must actually remember: held-out MSE below the task's threshold
    within the preset's step budget (seed 0: solved at step 850 of 2000)."""
    config = preset_config("LSTM remembers (same task)").replace(
        stop_when_solved=True, probe_every=0, eval_size=500, threads=1)
    trainer = Trainer(config)
    evals = [r for r in trainer.run() if isinstance(r, EvalRecord)]
    assert trainer.solved_at is not None, f"not solved; last held-out MSE {evals[-1].metric:.4f}"

"""One-click configurations that tell the story (used by the Train and Compare pages).

Each preset is a set of TrainConfig overrides; ``preset_config(name)`` validates it.
"""

from __future__ import annotations

from core.config import TrainConfig

_ADDING_50 = dict(task="adding", seq_len=50, hidden_size=64, batch_size=64, lr=0.003,
                  steps=2000, probe_every=25, eval_every=50)
# The LSTM presets take a 10x larger step made safe by clipping, and 32 units (half
# the cost per step, no more steps): adding at T = 100 is solved in 450-650 steps,
# 8-14 s on this 2-core machine, against 1700-2600 steps with the settings above
# (BENCHMARKS.md, "Time to solve"). The forget-gate bias stays 0: the story is that
# training opens the gate.
_LSTM = dict(_ADDING_50, arch="lstm", hidden_size=32, lr=0.03, clip=1.0)

# The exploding-gradient pair: the same ReLU RNN, adding at T = 20.
_EXPLODING = dict(task="adding", seq_len=20, arch="rnn_relu", init="orthogonal",
                  spectral_radius=1.7, hidden_size=64, batch_size=64, optimizer="sgd")
EXPLODING = "Exploding gradients (RNN, spectral radius 1.7, no clipping)"
CLIPPED = "… tamed by clipping"

PRESETS: dict[str, dict] = {
    "Vanilla RNN forgets (adding, T=50)": dict(_ADDING_50, arch="rnn_tanh"),
    "LSTM remembers (same task)": dict(_LSTM),
    "GRU remembers": dict(_ADDING_50, arch="gru"),
    "LSTM without its forget gate": dict(_LSTM, no_forget_gate=True),
    "LSTM with forget bias 1 (Jozefowicz et al.)": dict(_LSTM, forget_bias=1.0),
    # Exploding gradients (BENCHMARKS.md, "Exploding-gradient presets"). Plain SGD
    # (momentum 0.9): Adam rescales every step and would hide the explosion. A ReLU RNN
    # whose W_hh is orthogonal × 1.7: at init the gradient reaching step 0 is 35 times the
    # last step's (6.7 and 27 with seeds 1, 2: > 1 for every seed). Seed 0, lr 0.001, no
    # clipping: the ratio stays 22-35 while the loss goes 2.3, 8.4, 74, 6e3, 1e35 and is
    # NaN at step 5 (seeds 1 and 2 do not diverge within 300 steps at this rate; every
    # seed is NaN by step 2 at lr 0.01). Probed at every step: one row of heatmap A each.
    EXPLODING: dict(_EXPLODING, lr=0.001, steps=300, probe_every=1, eval_every=5),
    # The same network with the gradient norm clipped at 1 trains even with a 30x larger
    # step: solved at step 900 (seeds 1, 2: 500, 1050).
    CLIPPED: dict(_EXPLODING, lr=0.03, clip=1.0, steps=2000, probe_every=25, eval_every=50),
}


def preset_config(name: str) -> TrainConfig:
    """The preset's full config (unknown name → KeyError listing the presets)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return TrainConfig(**PRESETS[name])


# Models for the Compare page: a label → the TrainConfig overrides that make it.
COMPARE_MODELS: dict[str, dict] = {
    "rnn_tanh": dict(arch="rnn_tanh"),
    "rnn_relu (IRNN)": dict(arch="rnn_relu", init="identity"),
    "lstm": dict(arch="lstm"),
    "lstm (forget bias 1)": dict(arch="lstm", forget_bias=1.0),
    "lstm (no forget gate)": dict(arch="lstm", no_forget_gate=True),
    "lstm (CIFG)": dict(arch="lstm", coupled_gates=True),
    "gru": dict(arch="gru"),
}
DEFAULT_COMPARE = ("rnn_tanh", "lstm", "gru")

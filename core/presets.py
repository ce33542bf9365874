"""One-click configurations that tell the story (used by the Train and Compare pages).

Each preset is a set of TrainConfig overrides; ``preset_config(name)`` validates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from core.archspec import MODERN
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

# A pure lag (issue 16): recall, T = 100, the settings (hidden 32, batch 64, Adam
# lr 0.003). The one source of these settings: the Compare links, the Explain page and the
# guided lesson's step 4 (core.lessons.LAG_SETTINGS) all read PURE_LAG. Measured in
# lockstep, the three models of PURE_LAG_COMPARE (seed 0, in-process, load ≈ 6 on 2 cores):
# the first probe (step 0) is there after 0.1 s — reach 11 of 100 (default), 94 (chrono),
# 100 (forget bias 5), mean f 0.50 / 0.97 / 0.99 — chrono reaches all 100 steps from the
# probe at step 25 and is solved at step 425 (8.8 s), the default never (best held-out
# accuracy 0.15 in 1000 steps), forget bias 5 alone has lost its reach by step 250 (4 of
# 100: its cell saturated) and reaches 0.37; the 1000 steps take 22 s. Probes every 25
# steps: 40 rows of heatmap A, the first at once.
PURE_LAG = dict(task="recall", seq_len=100, arch="lstm", hidden_size=32, batch_size=64,
                lr=0.003, steps=1000, seed=0, probe_every=25, eval_every=25, eval_size=500)
PURE_LAG_DEFAULT = "Pure lag, T = 100: LSTM at torch's default init"
PURE_LAG_CHRONO = "Pure lag, T = 100: LSTM with chrono init"
PURE_LAG_F_ONLY = "Pure lag, T = 100: LSTM with forget bias 5 alone (f only)"
PRESETS.update({
    PURE_LAG_DEFAULT: dict(PURE_LAG),
    # Tallec & Ollivier 2018: b_f = log u, b_i = −log u, u ~ U(1, 99) per unit.
    PURE_LAG_CHRONO: dict(PURE_LAG, gate_init="chrono"),
    # The forget gate opened (f ≈ σ(5) = 0.993) and the input gate left at σ(0) ≈ 0.5.
    PURE_LAG_F_ONLY: dict(PURE_LAG, forget_bias=5.0),
})

# The later answers on the same pure lag (issue 17; the pure-lag-modern sweep, BENCHMARKS.md
# "The later architectures"): seed 0 at these settings, the LRU (|λ| on a ring near 1 by
# construction) solved it at step 200; minGRU (its gate starts at a half)
# was at chance after 1500 steps, its gradient reaching 13 of 100 steps.
MODERN_FIXED = "Pure lag, T = 100: the LRU (a gain fixed near 1)"
MODERN_GATED = "Pure lag, T = 100: minGRU (a gate that starts at a half)"
# minGRU with chrono (BENCHMARKS.md, "The gated ones with their gate opened"): solved at
# step 400 (seeds 0 and 1), where its default init stays at chance.
MODERN_CHRONO = "Pure lag, T = 100: minGRU with chrono init (its gate opened)"
PRESETS.update({
    MODERN_FIXED: dict(PURE_LAG, arch="lru"),
    MODERN_GATED: dict(PURE_LAG, arch="mingru"),
    MODERN_CHRONO: dict(PURE_LAG, arch="mingru", gate_init="chrono"),
})


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
    "lstm (chrono init)": dict(arch="lstm", gate_init="chrono"),
    "lstm (forget bias 5)": dict(arch="lstm", forget_bias=5.0),
    "gru (chrono init)": dict(arch="gru", gate_init="chrono"),
    # The field's later answers (issue 17, core.archspec), at their papers' inits.
    **{a: dict(arch=a) for a in MODERN},
    "mingru (chrono init)": dict(arch="mingru", gate_init="chrono"),
    "minlstm (chrono init)": dict(arch="minlstm", gate_init="chrono"),
}
DEFAULT_COMPARE = ("rnn_tanh", "lstm", "gru")


@dataclass(frozen=True)
class Comparison:
    """A ready-made Compare: the shared settings (a ``PRESETS`` name) and the models."""

    preset: str
    models: tuple[str, ...]
    what: str

    def link(self) -> str:
        """The Compare page's address for it (relative, as the pages link each other)."""
        return "compare?" + urlencode({"preset": self.preset, "models": ",".join(self.models)},
                                      quote_via=quote)
# The pure lag on Compare: the settings of the preset PURE_LAG_DEFAULT, these models.
PURE_LAG_COMPARE = ("lstm", "lstm (chrono init)", "lstm (forget bias 5)")

# The later answers on the pure lag (issue 17), where the contrast is clearest: at the
# pure-lag settings (recall, T = 100), measured by the pure-lag-modern sweep (BENCHMARKS.md,
# "The later architectures"): the fixed gains (orthogonal W_hh, LRU's ring) bridge it, the
# gates that start at a half (the LSTM's f, minGRU's 1 − z) never learn to open.
MODERN_ANSWERS = "Modern answers"
COMPARISONS: dict[str, Comparison] = {
    MODERN_ANSWERS: Comparison(
        PURE_LAG_DEFAULT, ("lstm", "orthogonal", "lru", "mingru"),
        "a pure lag (recall, T = 100): torch's LSTM and minGRU, whose gates start at a half, "
        "against a gain fixed near 1 (an orthogonal RNN, the LRU)"),
    "Three LSTM inits": Comparison(
        PURE_LAG_DEFAULT, PURE_LAG_COMPARE,
        "the same pure lag: torch's default init, chrono, and the forget bias 5 alone"),
}

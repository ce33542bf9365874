"""Ready-made sweeps: the grids the README, the CLI (--preset) and the Sweep page offer.

Each asks one question of the architectures (how far back can each learn? what
does the forget gate buy?). The demo is the smallest: about 4 1/2 minutes with
two workers on a quiet machine (BENCHMARKS.md, "Sweeps").
"""

from __future__ import annotations

from core.archspec import MODERN
from core.sweeps.spec import SweepError, SweepSpec

# The pure lag (issue 16): recall, the symbol seen at step 0 reported after T - 1
# distractors, so no marker at a short lag gives the forget gate a first gradient. The
# issue's settings: hidden 32, batch 64, Adam lr 0.003. "forget_bias=5" opens f alone
# (no input-gate bias); "gate_init=chrono" opens f and closes i (Tallec & Ollivier 2018).
PURE_LAG_PRESET = "pure-lag: recall T 10…200, 8 gate settings × 3 seeds"
PURE_LAG = SweepSpec(
    tasks=("recall",),
    variants=("rnn_tanh", "lstm", "lstm:forget_bias=1", "lstm:forget_bias=5",
              "lstm:gate_init=chrono", "lstm:no_forget_gate=true", "gru", "gru:gate_init=chrono"),
    seq_lens=(10, 20, 50, 100, 200), seeds=3, steps=2000,
    base={"hidden_size": 32, "batch_size": 64, "lr": 0.003})

# Temporal order (Hochreiter & Schmidhuber 1997, experiment 6a): two markers at ~10-20 %
# and ~50-60 % of T, so the lag to bridge is a fraction of T and some of it is short.
TEMPORAL_ORDER_PRESET = "pure-lag-temporal-order: temporal order T 20…100, 8 gate settings × 3 seeds"
TEMPORAL_ORDER = SweepSpec(
    tasks=("temporal_order",), variants=PURE_LAG.variants, seq_lens=(20, 50, 100), seeds=3,
    steps=2000, base=PURE_LAG.base)

# The later architectures (issue 17) on the same pure lag, at their papers' inits: does a
# gain near 1 by construction (IndRNN, orthogonal, LRU) bridge it where a gate at a half
# (minGRU, minLSTM, sLSTM; the LSTM's default of the sweep above) cannot learn to open?
# Two seeds and 1500 steps to keep it within a quarter of an hour on two cores.
PURE_LAG_MODERN_PRESET = "pure-lag-modern: recall T 50…200, the six later architectures × 2 seeds"
PURE_LAG_MODERN = SweepSpec(
    tasks=("recall",), variants=MODERN, seq_lens=(50, 100, 200), seeds=2, steps=1500,
    base=PURE_LAG.base)

# Adding (Hochreiter & Schmidhuber 1997, experiment 4), where short-lag markers give every
# gate its first gradient: the same architectures at T up to 400.
ADDING_MODERN_PRESET = "adding-modern: adding T 50…400, the six later architectures × 2 seeds"
ADDING_MODERN = SweepSpec(
    tasks=("adding",), variants=MODERN, seq_lens=(50, 100, 200, 400), seeds=2, steps=1500,
    base={"hidden_size": 32, "batch_size": 64, "lr": 0.003, "clip": 1.0})

DEMO_PRESET = "demo: 3 archs × T 10,20,50,100 × 3 seeds on adding"
SWEEP_PRESETS: dict[str, SweepSpec] = {
    DEMO_PRESET: SweepSpec(tasks=("adding",), variants=("rnn_tanh", "lstm", "gru"),
                           seq_lens=(10, 20, 50, 100), seeds=3, steps=2000),
    "RNN vs LSTM vs GRU on adding, T = 10…200, 5 seeds": SweepSpec(
        tasks=("adding",), variants=("rnn_tanh", "lstm", "gru"),
        seq_lens=(10, 20, 50, 100, 200), seeds=5, steps=3000),
    "LSTM forget gate: none vs default vs bias 1 on adding, T = 20…200, 3 seeds": SweepSpec(
        tasks=("adding",),
        variants=("lstm", "lstm:forget_bias=1", "lstm:no_forget_gate=true"),
        seq_lens=(20, 50, 100, 200), seeds=3, steps=3000),
    PURE_LAG_PRESET: PURE_LAG,
    TEMPORAL_ORDER_PRESET: TEMPORAL_ORDER,
    PURE_LAG_MODERN_PRESET: PURE_LAG_MODERN,
    ADDING_MODERN_PRESET: ADDING_MODERN,
}


def find_preset(name: str) -> tuple[str, SweepSpec]:
    """A preset by its title or any unambiguous case-insensitive part of it ("demo")."""
    if name in SWEEP_PRESETS:
        return name, SWEEP_PRESETS[name]
    hits = [k for k in SWEEP_PRESETS if name.lower() in k.lower()]
    if len(hits) != 1:
        raise SweepError(f"no single preset matches {name!r}; presets: "
                         + "; ".join(SWEEP_PRESETS))
    return hits[0], SWEEP_PRESETS[hits[0]]

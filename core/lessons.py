"""The learner's path as plain data: the landing's race and the guided lesson's steps.

No Streamlit here: ``pages/learn.py`` draws these, the tests check them, and anyone can
train a step from a notebook::

    from core.lessons import RACE, STEPS
    from core.train import Trainer, run_lockstep
    run_lockstep([Trainer(c) for c in STEPS[3].configs()], lambda i, record: ...)

A :class:`Step` says what to do, what to look at and what it means (static prose that
claims nothing a run has not measured: the numbers are read off each run by the
captions under its charts, ``core.captions``), which models it trains (TrainConfig
overrides per model, trained in lockstep on identical batches) and which charts it
draws (names from :data:`CHARTS`). Lesson runs stop once solved, after a tail of
``SOLVED_TAIL`` steps so the picture settles (``TrainConfig.solved_tail``), instead of
holding a training slot to their budget.

The settings of the race (the landing and step 2), measured on this project's 2-core
machine (lockstep, seed 0, adding T = 50, hidden 32, batch 64, clip 1, probes and
evaluations every 25 steps on 500 held-out sequences; BENCHMARKS.md, "Landing"):

    Adam lr   GRU solved at (seeds 0-4)     LSTM solved at (seeds 0-4)    tanh RNN
    0.01      225 200 250                   450 675 575                   never (1000)
    0.015     150 175 175 175 150           300 350 625 625 375           never (1000)
    0.02      125 150 150 150 150           275 575 400 300 575           never (1000)
    0.03      100-125                       850 375 275                   -

lr 0.02 solves seed 0 fastest (GRU 125, LSTM 275 steps: ~6 s and ~11 s of lockstep
training with a load average of 8-9 on 2 cores), and tells the whole story: at step 0
all three gradients have vanished by t = 0 (‖∂ℓ/∂h₀‖/‖∂ℓ/∂h₄₉‖ = 1e-10, 3e-12, 6e-11),
the GRU's and then the LSTM's reach 50 of 50 steps when they solve, the RNN's stays
short and its held-out loss at the baseline; the LSTM's forget gate averages 0.49 → 0.37
over its units while its most open unit goes 0.58 → 1.00.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core import presets
from core.config import TrainConfig

# Lesson runs stop this many steps after the held-out metric is first solved.
SOLVED_TAIL = 100
# What every lesson run gets besides its own settings: one torch thread (a room shares
# the cores) and the stop once solved.
LESSON_FIXED = dict(threads=1, stop_when_solved=True, solved_tail=SOLVED_TAIL)

# The charts a step can draw, in the order a step lists them.
CHARTS = {
    "heatA": "A · ‖∂ℓ/∂h_t‖ by time step × training step, one panel per model, one colour scale",
    "heatA_each": "A, one chart per model, each on its own scales (runs of very different "
                  "lengths or magnitudes)",
    "heatA_c": "A for the LSTM's cell state c_t",
    "loss": "training and held-out loss against the task's baseline",
    "loss_log": "the same on a log axis (losses that span many orders of magnitude)",
    "loss_each": "the loss of each model in a chart of its own, log axis",
    "heatB": "B · the gradient by time step × gate/state at the latest probe",
    "heatC": "C · the gate activations at the latest probe: mean over units and most open unit",
    "reach": "gradient reach and vanishing ratio over training",
    "verdicts": "the Explain page's three answers, decided on measurements",
}

# The race: adding, T = 50 (measured above).
RACE_SETTINGS = dict(task="adding", seq_len=50, hidden_size=32, batch_size=64, lr=0.02,
                     clip=1.0, steps=1000, seed=0, probe_every=25, eval_every=25,
                     eval_size=500)
# A pure lag (lesson 4): recall, T = 100, the other engineer's chrono settings (hidden 32,
# batch 64, Adam 0.003). Measured here (seed 0, lockstep, budget 1500): at the first
# probe the default LSTM's ‖∂ℓ/∂h₀‖/‖∂ℓ/∂h₉₉‖ is 4e-19 (reach 11 of 100), chrono's 9e-4
# (reach 94); chrono solved at step 425 (seed 2: 325; seed 1: not within 1500), the
# default never. 1000 steps of the default LSTM take ~15 s on a quiet machine, ~30 s
# with a load of 8.
# One source for these settings: core.presets.PURE_LAG (the Train presets "Pure lag, T =
# 100: …", the Compare link of the Explain page and this step train the same models).
LAG_SETTINGS = dict(presets.PURE_LAG)


@dataclass(frozen=True)
class Model:
    """One model of a step: its panel title and its TrainConfig fields.

    The label names the architecture in a way core.charts.arch_of reads ('RNN tanh',
    'LSTM', 'GRU', 'RNN relu …'), so every page gives it the architecture's colour."""

    label: str
    settings: dict


@dataclass(frozen=True)
class Step:
    """One step of the lesson (``number`` 1…7; the landing is the race of step 2)."""

    number: int
    title: str
    button: str             # the one click that starts the step
    do: str                 # what to do
    look: str               # what to look at
    means: str              # what it means
    models: tuple[Model, ...] = ()
    charts: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = field(default=())   # (label, page url path)

    def configs(self) -> list[TrainConfig]:
        """The validated configuration of each model, in order (empty for a step that
        trains nothing)."""
        return [TrainConfig(**{**m.settings, **LESSON_FIXED}) for m in self.models]

    def labels(self) -> list[str]:
        return [m.label for m in self.models]

    @property
    def trains(self) -> bool:
        return bool(self.models)


def _race_models() -> tuple[Model, ...]:
    return tuple(Model(label, dict(RACE_SETTINGS, arch=arch))
                 for label, arch in (("RNN tanh", "rnn_tanh"), ("LSTM", "lstm"), ("GRU", "gru")))


RACE = Step(
    number=0,
    title="How do LSTM and GRU keep the gradient alive when a plain RNN loses it?",
    button="Race them: RNN vs LSTM vs GRU",
    do="Press the button: a vanilla RNN, an LSTM and a GRU learn the same task on identical "
       "batches, one training step of each in turn.",
    look="Heatmap A, one panel per model on one colour scale: each row is a gradient probe "
         "(training step, latest at the top), each column a time step t of the sequence. "
         "Bright means the loss's gradient reaches that step; dark on the left means it "
         "never gets back to the early inputs.",
    means="The captions under the panels read the numbers of each model's latest probe.",
    models=_race_models(),
    charts=("heatA", "loss"),
)


STEPS: dict[int, Step] = {s.number: s for s in (
    Step(
        number=1,
        title="The vanilla RNN forgets",
        button="Train the vanilla RNN",
        do="Press the button: a vanilla RNN (tanh) learns the adding task, the same settings "
           "as the race on the first page.",
        look="Heatmap A: each row is one gradient probe, each column a time step t. Watch the "
             "left side, the early steps, and the loss against the dashed baseline (what a "
             "model that ignores its inputs scores).",
        means="The gradient that would teach the network to keep an early number has to pass "
              "back through every step in between, and each step multiplies it by the RNN's "
              "Jacobian. When those factors shrink it, almost nothing is left by t = 0 and "
              "the weights cannot learn from the early inputs. The caption gives the measured "
              "ratio and reach at the latest probe; the loss shows whether the task was "
              "learned.",
        models=(Model("RNN tanh", dict(RACE_SETTINGS, arch="rnn_tanh")),),
        charts=("heatA", "loss", "reach"),
    ),
    Step(
        number=2,
        title="The LSTM and the GRU remember",
        button=RACE.button,
        do="Press the button: the race of the first page. The RNN, an LSTM and a GRU learn "
           "the same task on identical batches; the LSTM and the GRU stop "
           f"{SOLVED_TAIL} steps after they solve it.",
        look="The three heatmaps share one colour scale. Compare their first rows (training "
             "step 0, at the bottom) with their latest: when does each one turn bright all "
             "the way to t = 0, and when does its loss leave the baseline?",
        means="At initialisation the gradient vanishes in all three. The LSTM and the GRU "
              "can learn to keep their state — the LSTM's cell through its forget gate, the "
              "GRU's h through its update gate — and the gradient travels back along the "
              "same path: its reach grows as the task is learned. The RNN has no such path.",
        models=_race_models(),
        charts=("heatA", "loss_log", "reach"),
    ),
    Step(
        number=3,
        title="Why: the additive cell path and its most open units",
        button="Train the LSTM",
        do="Press the button: the race's LSTM alone, so you can look inside it.",
        look="Heatmap A for h and for the cell c. Heatmap B: where the gradient flows at the "
             "latest probe — through h, c and each gate. Heatmap C: how open each gate is "
             "along the sequence; compare row f (the mean over all units) with f_max (the "
             "most open unit).",
        means="The cell is updated by addition, c_t = f_t ⊙ c_t−1 + i_t ⊙ g_t, so along the "
              "cell the gradient is multiplied by the forget gate f at each step and by "
              "nothing else: where f ≈ 1 it passes unchanged. Training need not open the gate "
              "on average: some units can learn f ≈ 1 and carry the memory while the others "
              "keep forgetting, so the mean over units can stay low while the most open unit "
              "reaches 1. The sentences under the charts give both numbers, as measured.",
        models=(Model("LSTM", dict(RACE_SETTINGS, arch="lstm")),),
        charts=("heatA", "heatA_c", "heatB", "heatC", "loss"),
        links=(("The math of the cell path, measured (Explain)", "explain"),),
    ),
    Step(
        number=4,
        title="A pure lag: where the forget gate starts",
        button="Train both LSTMs",
        do="Press the button: two LSTMs learn to recall, after 100 steps, the symbol shown "
           "at the first one — one with torch's default initialisation, one with the chrono "
           "initialisation, whose forget-gate biases start each unit as a memory of up to "
           "100 steps (Tallec & Ollivier 2018).",
        look="The first rows of heatmap A (training step 0, at the bottom) and heatmap C "
             "(the forget gate f at the latest probe): they differ before any learning.",
        means="With torch's default biases the forget gate starts near σ(0) = 0.5, so the "
              "cell halves the gradient at every step: after 100 steps nothing is left to "
              "learn from, and training cannot open a gate it gets no gradient for. Chrono "
              "starts the gate open, and the gradient is there from the first step.",
        models=(Model("LSTM (default init)", dict(LAG_SETTINGS)),
                Model("LSTM (chrono init)", dict(LAG_SETTINGS, gate_init="chrono"))),
        charts=("heatA", "heatC", "loss"),
    ),
    Step(
        number=5,
        title="Exploding gradients, and clipping",
        button="Train without and with clipping",
        do="Press the button: a ReLU RNN whose recurrent weights are scaled up, trained with "
           "plain SGD, once without and once with gradient clipping (the Train page's two "
           "exploding-gradient presets).",
        look="Heatmap A: is the left side (early steps) darker or brighter than the right? "
             "And the loss of the run without clipping, step by step.",
        means="A product of Jacobians can grow as well as shrink. When it grows, the "
              "gradient is largest for the earliest steps, one update throws the weights "
              "far off, the next gradient is larger still, and the loss blows up until it is "
              "no longer a number. Clipping rescales the whole gradient whenever its norm "
              "exceeds a threshold: the direction is kept, the step bounded, and the same "
              "network trains.",
        models=(Model("RNN relu (no clipping)", dict(presets.PRESETS[presets.EXPLODING])),
                Model("RNN relu (clipped)", dict(presets.PRESETS[presets.CLIPPED]))),
        # The unclipped run lasts a few steps, probed at each; the clipped one ~1000, probed
        # every 25: one shared axis would squeeze the first into a few pixel rows.
        charts=("heatA_each", "loss_each"),
    ),
    Step(
        number=6,
        title="The three answers to the question",
        button="Put the three answers to the test",
        do="Press the button: the Explain page's measurements on untrained models (a few "
           "seconds), and the three answers of the original question decided on them.",
        look="Each answer's claim, its verdict, and the measurement that decides it.",
        means="Each verdict is decided by the numbers, not written in advance: an answer is "
              "confirmed when the mechanism it names, measured, does what it claims, and "
              "refuted when the measurement shows otherwise. The Explain page has the math "
              "behind each measurement.",
        charts=("verdicts",),
        links=(("Every measurement, with its math (Explain)", "explain"),),
    ),
    Step(
        number=7,
        title="Thirty years of answers: a gain near 1, fixed or learned",
        button="Train the four answers",
        do="Press the button: step 4's pure lag (recall, T = 100) for four answers to the "
           "vanishing gradient: torch's LSTM and minGRU (2024), whose gates learn the gain "
           "and start at a half, and an orthogonal RNN (2019) and the LRU (2023), whose "
           "gain is held near 1 by construction.",
        look="Heatmap A from its first row (training step 0): which models' gradient reaches "
             "the first steps before any learning, and which ones solve the task.",
        means="Every later architecture answers the question the same way: a path through "
              "time whose per-step gain is near 1. The orthogonal RNN and the LRU get it by "
              "construction (an orthogonal W_hh, eigenvalues on a ring near 1) and carry the "
              "gradient from the first step; the gated ones learn it, and on a pure lag "
              "nothing teaches their gate to open. What each gives up for it, and all six "
              "later architectures measured in one frame, are on the Explain page.",
        models=tuple(Model(label, dict(LAG_SETTINGS, arch=arch)) for label, arch in
                     (("LSTM", "lstm"), ("minGRU", "mingru"),
                      ("Orthogonal RNN", "orthogonal"), ("LRU", "lru"))),
        charts=("heatA", "heatC", "loss"),
        links=(("One principle, every architecture, measured (Explain, section 6)",
                "explain"),),
    ),
)}

LAST = max(STEPS)


def step(number) -> Step | None:
    """The step numbered ``number`` (an int or the text of a URL parameter), else None."""
    try:
        n = int(str(number).strip())
    except (TypeError, ValueError):
        return None
    return STEPS.get(n)


__all__ = ["CHARTS", "LAST", "LESSON_FIXED", "RACE", "SOLVED_TAIL", "STEPS", "Model", "Step",
           "step"]

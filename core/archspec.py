"""Every architecture of the lab in one table: its name, what it records, where it lives.

One source of truth for the architectures (issue 17): :mod:`core.models` builds from
it, :mod:`core.config` takes its choices and options from it, the charts their colours
and quantity order, the scheduler its cost estimate, the Explain page its one-line
answer. No torch import here, so the chart and UI modules can read it cheaply.

Each architecture answers the vanishing-gradient question with a path through time
whose per-step gain is near 1; ``answer`` says how, ``carry`` names the recorded
activation that is that gain, measured (see each layer's docstring for the equation).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ArchSpec:
    name: str                     # the CLI / config value, e.g. "indrnn"
    label: str                    # what a reader sees, e.g. "IndRNN"
    layer: str                    # "module:Class" of the recurrent layer (imported lazily)
    options: tuple[str, ...]      # TrainConfig fields the layer takes
    states: tuple[str, ...]       # probed states, in heatmap order (h first)
    gates: tuple[str, ...]        # probed gate pre-activations, in heatmap order
    carry: str | None             # the activation that is the carry path's per-step gain
    cost: float                   # relative work per time step (scheduling's wait estimate):
    # the classic four count their gate matmuls (LSTM 4); the later six are 4 × their training
    # step over torch.nn's fused LSTM step, measured at T 100, H 64, batch 64 (BENCHMARKS.md,
    # "Probe cost, and the parallel scan": 0.28, 0.61, 2.26, 1.35, 1.88, 5.88)
    year: int
    paper: str
    answer: str                   # how the per-step gain is kept near 1 (fixed or learned)
    fixed: bool                   # True: by construction; False: learned through a gate
    gives_up: str = ""            # what the answer costs
    derived: tuple[str, ...] = ()  # options computed from the task (t_max: its steps)
    path: str = "h"               # the state that carries through time (LSTM, sLSTM: c)
    probe_note: str = ""          # what a reader of its heatmaps must know
    claim: str = ""               # its paper's long-range claim (with the setting and source)


SPECS: tuple[ArchSpec, ...] = (
    ArchSpec("rnn_tanh", "RNN tanh", "core.cells:RNNLayer", ("init", "spectral_radius"),
             ("h",), (), None, 1, 1990, "Elman 1990",
             "none: the per-step Jacobian diag(φ′)·W_hh has gain set by W_hh and tanh′ ≤ 1",
             True),
    ArchSpec("rnn_relu", "RNN relu", "core.cells:RNNLayer", ("init", "spectral_radius"),
             ("h",), (), None, 1, 1990, "Elman 1990; IRNN: Le et al. 2015",
             "none by default; W_hh = I (IRNN) starts the gain at 1", True),
    ArchSpec("lstm", "LSTM", "core.cells:LSTMLayer",
             ("forget_bias", "no_forget_gate", "coupled_gates", "gate_init", "chrono_tmax"),
             ("h", "c"), ("i", "f", "g", "o"), "f", 4, 1997,
             "Hochreiter & Schmidhuber 1997; Gers et al. 2000",
             "the cell path c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t: gain f_t, learned", False,
             "four gates' compute; the gate must first be taught to open", path="c"),
    ArchSpec("gru", "GRU", "core.cells:GRULayer", ("gate_init", "chrono_tmax"),
             ("h",), ("r", "z", "n"), "z", 3, 2014, "Cho et al. 2014",
             "h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ n_t: gain z_t, learned", False,
             "three gates' compute; a sequential recurrence"),
    ArchSpec("indrnn", "IndRNN", "core.modern.indrnn:IndRNNLayer", (),
             ("h",), (), "gain", 1.1, 2018, "Li et al. 2018, arXiv 1803.04831",
             "one recurrent weight per unit, |u| ≤ 2^(1/T): gain u·relu′, kept near 1 by "
             "its init and constraint", True,
             "units do not talk to each other through time (stacked layers mix them)",
             derived=("t_max",),
             claim="the adding problem at T = 5000, with 2 layers of 128 relu units, Adam lr 2e-4 (divided by 10 every 20k steps) and |u| ≤ 2^(1/T) (the paper's §5.1; Sunnydreamrain/IndRNN_Theano_Lasagne)"),
    ArchSpec("orthogonal", "Orthogonal RNN", "core.modern.orthogonal:OrthogonalRNNLayer", (),
             ("h",), (), "gain", 2.4, 2019, "Lezcano-Casado & Martínez-Rubio 2019 (expRNN)",
             "W_hh stays orthogonal in training: every singular value 1, the gain is tanh′",
             True, "W_hh cannot forget (it only rotates): tanh′ < 1 still shrinks",
             claim="the copy task at T = 200 in the comparison of nnRNN (Kerg et al. 2019: expRNN among the models, 128 hidden units, 1 layer, RMSprop; KyleGoyette/nnRNN's supplement); expRNN's own script copies after a blank of 1000 (Lezcano/expRNN)"),
    ArchSpec("lru", "LRU", "core.modern.lru:EncodedLRULayer", (),
             ("h",), (), "gain", 9.0, 2023, "Orvieto et al. 2023, arXiv 2303.06349",
             "a diagonal complex linear recurrence, |λ| initialised in a ring near 1", True,
             "no nonlinearity in time (it sits in the readout); complex state",
             probe_note="h is the complex state x_t; its gradient's norm is over the real and "
             "imaginary parts (the modulus of the complex gradient). No gates: C shows the "
             "gain |λ| (constant in t) and the state's mean modulus.",
             claim="the Long Range Arena with deep stacks of LRU blocks; a third-party PathX run (16k steps) sets the ring to [0.999, 0.9999] (raresdolga/s5)"),
    ArchSpec("mingru", "minGRU", "core.modern.minrnn:MinGRULayer", ("gate_init", "chrono_tmax"),
             ("h",), ("z", "g"), "gain", 5.4, 2024, "Feng et al. 2024, arXiv 2410.01201",
             "h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t with z_t from x_t only: gain 1 − z_t, "
             "learned; linear in h, so a parallel scan", False,
             "the gates cannot see the state (no h_{t−1} in them)",
             probe_note="Gates from x_t only: z (update, z → 0 carries h) and g (the candidate "
             "h̃'s pre-activation). The gain is 1 − z_t.",
             claim="selective copying, with stacked layers (BorealisAI/minRNNs; the lengths and layers are in its configs, not found here)"),
    ArchSpec("minlstm", "minLSTM", "core.modern.minrnn:MinLSTMLayer", ("gate_init", "chrono_tmax"),
             ("h",), ("f", "i", "g"), "gain", 7.5, 2024, "Feng et al. 2024, arXiv 2410.01201",
             "h_t = f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t, f′ = f/(f + i) from x_t only: gain f′_t, "
             "learned; a parallel scan", False,
             "the gates cannot see the state (no h_{t−1} in them)",
             claim="selective copying, with stacked layers (BorealisAI/minRNNs)"),
    ArchSpec("slstm", "sLSTM", "core.modern.slstm:SLSTMLayer", (),
             ("h", "c", "n", "m"), ("i", "f", "z", "o"), "gain", 23.5, 2024,
             "Beck et al. 2024 (xLSTM), arXiv 2405.04517",
             "exponential input gate with stabiliser m and normaliser n: cell gain "
             "f′_t = exp(log σ(f̃_t) + m_{t−1} − m_t), learned", False,
             "sequential (memory mixing through h); needs the stabiliser to stay finite",
             path="c", probe_note="h = o ⊙ c / n. The stabiliser m cancels in h, so its total "
             "derivative is exactly 0: its row shows float rounding only. At init R = 0, so h "
             "gets no gradient from later steps; the memory is the cell c.",
             claim="parity, which \"can only be solved with state-tracking capabilities provided by the memory-mixing of sLSTM\" (NX-AI/xlstm's README; 2 sLSTM blocks, trained on lengths 3-40)"),
)

SPEC: dict[str, ArchSpec] = {s.name: s for s in SPECS}
ARCHS: tuple[str, ...] = tuple(SPEC)
CLASSIC: tuple[str, ...] = ("rnn_tanh", "rnn_relu", "lstm", "gru")
MODERN: tuple[str, ...] = tuple(a for a in ARCHS if a not in CLASSIC)


def spec(arch: str) -> ArchSpec:
    if arch not in SPEC:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
    return SPEC[arch]


def layer_class(arch: str):
    """The recurrent layer class of ``arch`` (imports its module on first use)."""
    module, cls = spec(arch).layer.split(":")
    return getattr(importlib.import_module(module), cls)


def quantities(arch: str) -> tuple[str, ...]:
    """States then gates: the probe's quantities for ``arch``, in heatmap order."""
    s = spec(arch)
    return s.states + s.gates

"""Sequence models: one recurrent layer and a linear readout at every step.

``build_model("lstm", input_size, hidden_size, output_size, forget_bias=1.0)``
returns a :class:`SequenceModel` whose ``recurrent`` attribute is a torch.nn
recurrent module (see :mod:`core.cells`), so weights load both ways between it
and ``torch.nn.LSTM`` / ``GRU`` / ``RNN``.
"""

from __future__ import annotations

import torch
from torch import nn

from core import archspec
from core.archspec import ARCHS
from core.cells import GATE_INITS, Unrolled

# Which options each architecture accepts (anything else is refused by name): core.archspec.
ARCH_OPTIONS = {s.name: s.options for s in archspec.SPECS}
# Option values that are the same as leaving the option out, for any arch.
_HARMLESS = {"gate_init": "default"}
__all__ = ["ARCHS", "ARCH_OPTIONS", "GATE_INITS", "SequenceModel", "build_model"]


class SequenceModel(nn.Module):
    """x (batch, steps, input) → outputs (batch, steps, output), initial state zero."""

    def __init__(self, arch: str, recurrent: nn.RNNBase, output_size: int):
        super().__init__()
        self.arch = arch
        self.recurrent = recurrent
        self.readout = nn.Linear(recurrent.hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.recurrent(x))

    def unroll(self, x: torch.Tensor, record: bool = True) -> tuple[torch.Tensor, Unrolled]:
        """The explicit step-by-step forward; returns (outputs, recorded graph nodes)."""
        u = self.recurrent.unroll(x, record=record)
        return self.readout(u.h), u


def build_model(
    arch: str, input_size: int, hidden_size: int, output_size: int, **options
) -> SequenceModel:
    """Build a model; options are the architecture's own (see ``ARCH_OPTIONS``).

    ``None`` values are ignored so callers can pass every option of a config.
    Options the spec derives from the task (``t_max``: its steps per sequence) are
    passed to the architectures that use them and ignored by the others.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
    options = {k: v for k, v in options.items() if v is not None}
    unknown = set(options) - set(ARCH_OPTIONS[arch]) - {"t_max"}
    # Boolean flags left at False (and gate_init "default") are harmless for any arch.
    unknown = {k for k in unknown if options[k] is not False and _HARMLESS.get(k) != options[k]}
    if unknown:
        raise ValueError(
            f"option(s) {', '.join(sorted(unknown))} do not apply to {arch}; "
            f"allowed: {', '.join(ARCH_OPTIONS[arch]) or 'none'}"
        )
    spec = archspec.spec(arch)
    derived = {k: options[k] for k in spec.derived if k in options}
    options = {k: v for k, v in options.items() if k in ARCH_OPTIONS[arch]}
    if arch in ("rnn_tanh", "rnn_relu"):
        options["nonlinearity"] = arch[4:]
    layer = archspec.layer_class(arch)(input_size, hidden_size, **options, **derived)
    return SequenceModel(arch, layer, output_size)

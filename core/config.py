"""The one training configuration type, with its validation.

Every field is declared once in ``FIELDS`` (type, default, allowed range or
choices, help text). The CLI builds its flags from it, the app its widgets and
its URL binding, and ``TrainConfig`` checks values against it, so a range is
stated in exactly one place.

* ``TrainConfig.from_dict(d)`` is strict: any bad value raises
  :class:`ConfigError`, whose message names each field and its allowed range.
* ``parse_config(d)`` is lenient (for links and uploads): bad values fall back to
  their defaults and come back as messages, so nothing is lost silently.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from core import archspec, settings
from core.models import ARCH_OPTIONS, ARCHS, GATE_INITS
from core.tasks import TASK_NAMES, make_task


@dataclass(frozen=True)
class Field:
    name: str
    kind: type  # int, float, bool or str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False  # None allowed (means "off" / "torch's default")
    applies_to: tuple[str, ...] | None = None  # archs (or tasks) the field is for

    def describe(self) -> str:
        if self.choices:
            allowed = "one of " + ", ".join(self.choices)
        elif self.kind is bool:
            allowed = "true or false"
        else:
            allowed = f"{self.kind.__name__} from {_fmt(self.low)} to {_fmt(self.high)}"
        return allowed + (" (or empty for off)" if self.optional else "")


def _fmt(v: float | None) -> str:
    return "" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


OPTIMIZERS = ("adam", "rmsprop", "sgd")
# The architectures whose carry gate chrono can open at init (core.archspec's options).
GATED = tuple(a for a, options in ARCH_OPTIONS.items() if "gate_init" in options)
RNN_INITS = ("default", "orthogonal", "identity")

FIELDS: tuple[Field, ...] = (
    Field("task", str, "adding", "toy task", choices=TASK_NAMES),
    Field("seq_len", int, 100, "sequence length T (the lag to bridge)", 2, 1000),
    Field("num_symbols", int, 8, "recall: number of symbols K", 2, 64, applies_to=("recall",)),
    Field("arch", str, "lstm", "architecture", choices=ARCHS),
    Field("hidden_size", int, 64, "hidden units", 1, 512),
    Field("forget_bias", float, None, "LSTM forget-gate bias at init (empty: torch's default)",
          -10.0, 10.0, optional=True, applies_to=("lstm",)),
    Field("no_forget_gate", bool, False, "LSTM with f ≡ 1 (the 1997 constant error carousel)",
          applies_to=("lstm",)),
    Field("coupled_gates", bool, False, "LSTM CIFG: input gate i = 1 − f", applies_to=("lstm",)),
    Field("gate_init", str, "default",
          "LSTM/GRU gate biases at init: torch's default, or chrono (Tallec & Ollivier 2018: "
          "b_f = log u, b_i = −log u, u ~ U(1, T_max − 1) per unit; GRU: b_z = log u; minGRU: "
          "b_z = −log u; minLSTM as the LSTM)",
          choices=GATE_INITS, applies_to=GATED),
    Field("chrono_tmax", int, None, "chrono's T_max, the longest lag its gates are set for "
          "(empty: the task's sequence length)", 2, 10_000, optional=True,
          applies_to=GATED),
    Field("init", str, "default", "RNN recurrent weight init", choices=RNN_INITS,
          applies_to=("rnn_tanh", "rnn_relu")),
    Field("spectral_radius", float, None, "RNN: rescale W_hh to this spectral radius",
          0.01, 10.0, optional=True, applies_to=("rnn_tanh", "rnn_relu")),
    Field("batch_size", int, 64, "sequences per training step", 1, 1024),
    Field("lr", float, 0.003, "learning rate", 1e-6, 1.0),
    Field("optimizer", str, "adam", "optimizer", choices=OPTIMIZERS),
    Field("clip", float, None, "clip the gradient norm to this value (empty: no clipping)",
          1e-4, 1e4, optional=True),
    Field("steps", int, 3000, "training steps", 1, 100_000),
    Field("seed", int, 0, "random seed (data and init)", 0, 2**31 - 1),
    Field("probe_every", int, 50, "probe the gradient every N steps (0: never)", 0, 100_000),
    Field("eval_every", int, 100, "evaluate on held-out data every N steps", 1, 100_000),
    Field("eval_size", int, 1000, "held-out sequences", 16, 10_000),
    Field("threads", int, 1, "torch threads for this training", 1, 64),
    Field("stop_when_solved", bool, False, "stop as soon as the held-out metric is solved"),
    Field("solved_tail", int, 0, "with stop_when_solved: train this many steps more once solved, "
          "so the charts show the settled picture", 0, 100_000),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}


class ConfigError(ValueError):
    """Raised with one line per bad field: ``field: message (allowed: …)``."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def coerce(field: Field, value: Any) -> Any:
    """Convert a value (possibly a string from a URL or the CLI) to the field's type.

    Raises ValueError with a message naming the allowed values.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        if field.optional:
            return None
        raise ValueError(f"is required ({field.describe()})")
    if field.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"must be {field.describe()}, got {value!r}")
    if field.kind is str:
        if not isinstance(value, str) or value not in (field.choices or ()):
            raise ValueError(f"must be {field.describe()}, got {value!r}")
        return value
    try:
        if isinstance(value, bool):
            raise TypeError
        if field.kind is int:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise TypeError
            v: float = int(number)
        else:
            v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"must be {field.describe()}, got {value!r}") from None
    if not math.isfinite(v) or (field.low is not None and v < field.low) or (
        field.high is not None and v > field.high
    ):
        raise ValueError(f"must be {field.describe()}, got {value!r}")
    return v


@dataclass(frozen=True)
class TrainConfig:
    """A validated training configuration (see ``FIELDS`` for meanings and ranges)."""

    task: str = "adding"
    seq_len: int = 100
    num_symbols: int = 8
    arch: str = "lstm"
    hidden_size: int = 64
    forget_bias: float | None = None
    no_forget_gate: bool = False
    coupled_gates: bool = False
    gate_init: str = "default"
    chrono_tmax: int | None = None
    init: str = "default"
    spectral_radius: float | None = None
    batch_size: int = 64
    lr: float = 0.003
    optimizer: str = "adam"
    clip: float | None = None
    steps: int = 3000
    seed: int = 0
    probe_every: int = 50
    eval_every: int = 100
    eval_size: int = 1000
    threads: int = 1
    stop_when_solved: bool = False
    solved_tail: int = 0

    def __post_init__(self):
        errors = {}
        for f in FIELDS:
            try:
                object.__setattr__(self, f.name, coerce(f, getattr(self, f.name)))
            except ValueError as e:
                errors[f.name] = str(e)
        errors.update(self._cross_field_errors(errors))
        if errors:
            raise ConfigError(errors)

    def _cross_field_errors(self, errors: dict) -> dict[str, str]:
        out = {}
        if self.no_forget_gate and self.coupled_gates:
            out["coupled_gates"] = "cannot be combined with no_forget_gate"
        # Both set the forget bias: refuse rather than let one silently win.
        if self.gate_init == "chrono" and self.forget_bias is not None and "forget_bias" not in errors:
            out["forget_bias"] = ("cannot be combined with gate_init chrono, which draws the "
                                  "forget bias itself; give one or the other")
        if self.chrono_tmax is not None and self.gate_init != "chrono" and "chrono_tmax" not in errors:
            out["chrono_tmax"] = "applies to gate_init chrono only"
        for f in FIELDS:
            if f.applies_to is None or f.name in errors or f.applies_to[0] in TASK_NAMES:
                continue
            if getattr(self, f.name) != f.default and self.arch not in f.applies_to:
                out[f.name] = f"applies to {', '.join(f.applies_to)} only, not {self.arch}"
        if "task" not in errors and "seq_len" not in errors and "num_symbols" not in errors:
            try:
                self.make_task()
            except ValueError as e:
                out["seq_len"] = str(e)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - set(FIELD_BY_NAME)
        if unknown:
            raise ConfigError({k: "is not a configuration field" for k in sorted(unknown)})
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def task_options(self) -> dict:
        return {"num_symbols": self.num_symbols} if self.task == "recall" else {}

    def make_task(self):
        return make_task(self.task, self.seq_len, **self.task_options())

    def model_options(self) -> dict:
        """The options of this config's architecture, for :func:`core.models.build_model`.

        Chrono's T_max left empty becomes the task's number of steps per sequence: its
        sequence length T (for copy, T + 20, just above its longest lag, T + 10); so
        does ``t_max`` for the architectures that derive it (IndRNN's constraint).
        """
        options = {k: getattr(self, k) for k in ARCH_OPTIONS[self.arch]}
        if options.get("gate_init") == "chrono" and options.get("chrono_tmax") is None:
            options["chrono_tmax"] = self.make_task().steps
        if "t_max" in archspec.spec(self.arch).derived:
            options["t_max"] = self.make_task().steps
        return options

    def label(self) -> str:
        """A short human name for this model variant, e.g. 'lstm (forget bias 1)'."""
        extras = []
        if self.arch == "lstm":
            if self.no_forget_gate:
                extras.append("no forget gate")
            if self.coupled_gates:
                extras.append("CIFG")
            if self.forget_bias is not None:
                extras.append(f"forget bias {self.forget_bias:g}")
        if self.gate_init == "chrono":
            extras.append("chrono init" + (f" T_max {self.chrono_tmax}" if self.chrono_tmax else ""))
        if self.arch.startswith("rnn"):
            if self.init != "default":
                extras.append(f"{self.init} init")
            if self.spectral_radius is not None:
                extras.append(f"ρ={self.spectral_radius:g}")
        if self.clip is not None:
            extras.append(f"clip {self.clip:g}")
        return self.arch + (f" ({', '.join(extras)})" if extras else "")


def parse_config(d: dict, base: TrainConfig | None = None) -> tuple[TrainConfig, dict[str, str]]:
    """Lenient parse: each bad or unknown field keeps its default and yields a message.

    Returns (config, {field: message}). Never raises for bad values.
    """
    base = base or TrainConfig()
    values = base.to_dict()
    errors: dict[str, str] = {}
    for k, v in d.items():
        f = FIELD_BY_NAME.get(k)
        if f is None:
            errors[k] = "is not a configuration field (ignored)"
            continue
        try:
            values[k] = coerce(f, v)
        except ValueError as e:
            errors[k] = f"{e}; using {f.default!r}"
    # Cross-field problems: drop offending fields back to defaults until valid.
    for _ in range(len(FIELDS)):
        try:
            return TrainConfig(**values), errors
        except ConfigError as e:
            for k, msg in e.errors.items():
                errors[k] = f"{msg}; using {FIELD_BY_NAME[k].default!r}"
                values[k] = FIELD_BY_NAME[k].default
    return base, errors


# Per-session limits of a shared deployment (tighter than FIELDS' ranges, which are
# what the library accepts): the setting (core.settings: default, range) of each field.
LIMIT_ENV = {
    "seq_len": "RNNLAB_MAX_SEQ_LEN",
    "hidden_size": "RNNLAB_MAX_HIDDEN",
    "batch_size": "RNNLAB_MAX_BATCH",
    "steps": "RNNLAB_MAX_STEPS",
    "eval_size": "RNNLAB_MAX_EVAL_SIZE",
}


def app_limits() -> dict[str, int]:
    """{field: maximum} for a shared server, from the environment now (core.settings)."""
    return {name: settings.get(env) for name, env in LIMIT_ENV.items()}


def enforce_limits(config: TrainConfig, limits: dict[str, int] | None = None
                   ) -> tuple[TrainConfig, dict[str, str]]:
    """Values above a limit fall back to min(default, limit), with a message naming the field."""
    limits = app_limits() if limits is None else limits
    changes, errors = {}, {}
    for name, high in limits.items():
        if getattr(config, name) > high:
            fallback = min(FIELD_BY_NAME[name].default, high)
            errors[name] = (f"is limited to {high} on this server (got {getattr(config, name)}); "
                            f"using {fallback}")
            changes[name] = fallback
    return (config.replace(**changes) if changes else config), errors

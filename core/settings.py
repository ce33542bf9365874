"""Every setting the app reads from its environment (``RNNLAB_*``), in one table.

    from core import settings
    settings.get("RNNLAB_MAX_TRAININGS")     # an int, read from os.environ now

:func:`get` reads the environment each time it is called (tests set variables with
``monkeypatch.setenv``), converts the value to the setting's type and checks it
against its allowed range; an unset or empty variable gives the default. A value
that is not allowed raises :class:`SettingError`, which names the variable, the
value given and what is allowed, where it is read: not as a crash deep inside.

    python -m core settings              # the effective value of each setting, and any problem
    python -m core settings --markdown   # the table in README.md ("Settings")

Only the app's own settings are here; the test harness's variables
(``RNNLAB_CHROMIUM``, ``RNNLAB_SCREENSHOT``, ``RNNLAB_LOAD_SESSIONS``,
``RNNLAB_CLICK_LIMIT_S``) are documented in ``tests/e2e/harness.py``.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# A Dask scheduler's address: protocol://host:port (tcp, tls, ws, wss, ucx), or host:port.
_ADDRESS = re.compile(r"((tcp|tls|ws|wss|ucx)://)?(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}")


class SettingError(ValueError):
    """An environment variable of the table holds a value it does not allow."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its type, default, allowed values and meaning.

    ``kind`` is "int", "float", "bool", "path", "choice", "address" (a Dask scheduler:
    ``local``, or an address such as ``tcp://host:8786``) or "secret" (any text, never
    printed). ``default`` is the value
    when the variable is unset or empty (a callable: computed then; None: off).
    ``low``/``high`` bound an int or float (None: unbounded on that side)."""

    name: str
    kind: str
    default: object
    meaning: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    default_text: str | None = None  # how the table states a computed or empty default

    def allowed(self) -> str:
        """What the variable accepts, in words."""
        if self.kind == "bool":
            return "1/true/yes/on or 0/false/no/off"
        if self.kind == "choice":
            return " or ".join(self.choices)
        if self.kind == "path":
            return "a path"
        if self.kind == "address":
            return "`local`, or a scheduler address such as `tcp://host:8786`"
        if self.kind == "secret":
            return "any text (never printed)"
        noun = "a whole number" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{noun} ≥ {self.low:g}"
        return noun

    def parse(self, raw: str):
        """``raw`` as this setting's type; raises SettingError if it is not allowed."""
        text = raw.strip()
        value: object
        try:
            if self.kind == "bool":
                if text.lower() not in _TRUE + _FALSE:
                    raise ValueError
                value = text.lower() in _TRUE
            elif self.kind == "choice":
                if text not in self.choices:
                    raise ValueError
                value = text
            elif self.kind == "path":
                value = Path(text).expanduser()
            elif self.kind == "secret":
                value = text
            elif self.kind == "address":
                if text != "local" and not _ADDRESS.fullmatch(text):
                    raise ValueError
                value = text
            elif self.kind == "int":
                value = int(text)
            else:
                value = float(text)
                if not math.isfinite(value):
                    raise ValueError
        except ValueError:
            raise SettingError(self._problem(raw)) from None
        if self.kind in ("int", "float") and (
                (self.low is not None and value < self.low)
                or (self.high is not None and value > self.high)):
            raise SettingError(self._problem(raw))
        return value

    def _problem(self, raw: str) -> str:
        if self.kind == "secret":  # not reached (any text is allowed), but never echo one
            raw = "…"
        return f"{self.name}={raw!r} is not allowed: {self.name} takes {self.allowed()} ({self.meaning})"

    def default_value(self):
        return self.default() if callable(self.default) else self.default


def _one_per_core() -> int:
    return max(1, os.cpu_count() or 1)


SETTINGS: tuple[Setting, ...] = (
    # Where things are stored.
    Setting("RNNLAB_RUNS_DIR", "path", Path("runs"),
            "the run store: one directory per run, sweeps under its `sweeps/`",
            default_text="`runs` (relative to the working directory)"),
    Setting("RNNLAB_NATIVE_CACHE", "path", None,
            "where the LSTM's C loops are compiled to",
            default_text="`$XDG_CACHE_HOME/rnnlab`, else `~/.cache/rnnlab`"),
    # Sharing one server.
    Setting("RNNLAB_MAX_TRAININGS", "int", _one_per_core,
            "trainings that run at once; the others wait in a visible queue", 1, 64,
            default_text="one per CPU core"),
    Setting("RNNLAB_MAX_RUNS_PER_SESSION", "int", 50,
            "runs one browser session may start", 1),
    Setting("RNNLAB_MAX_STORED_RUNS", "int", 500,
            "runs the store may hold: trainings and uploads beyond it are refused", 1),
    Setting("RNNLAB_MAX_RUNS_PER_OWNER", "int", 50,
            "runs of its own one browser (or signed-in user) may hold in the store: its "
            "trainings and uploads beyond it are refused until it deletes one", 1),
    Setting("RNNLAB_PRESENTER_KEY", "secret", None,
            "the presenter's key: typed on the Runs page, it shows every run with its owner "
            "and lets that session delete any (also read from the secret `presenter_key`)",
            default_text="unset: nobody is presenter"),
    Setting("RNNLAB_MAX_SWEEP_RUNS", "int", 120,
            "training runs one sweep started from the Sweep page may have", 1),
    Setting("RNNLAB_MAX_SEQ_LEN", "int", 500,
            "largest sequence length a page accepts (the library's own limit still applies)", 1),
    Setting("RNNLAB_MAX_HIDDEN", "int", 256, "largest hidden size a page accepts", 1),
    Setting("RNNLAB_MAX_BATCH", "int", 256, "largest batch size a page accepts", 1),
    Setting("RNNLAB_MAX_STEPS", "int", 20_000, "most training steps a page accepts", 1),
    Setting("RNNLAB_MAX_EVAL_SIZE", "int", 2_000, "largest held-out set a page accepts", 1),
    Setting("RNNLAB_RELEASE_GRACE_S", "float", 30.0,
            "seconds a closed session's trainings go on (a reload claims them back), then stop",
            0, 86_400),
    Setting("RNNLAB_LIVE_REDRAWS_PER_S", "float", 8.0,
            "live-page redraws a second the server allows in all: a live page redraws every "
            "second until more pages than this watch trainings, then every (pages / this) "
            "seconds (≈ 0.06 s of CPU each: 8 is about half a core)", 0.1, 1000),
    # How trainings run.
    Setting("RNNLAB_WORKER", "choice", "process",
            "where the app's trainings run: child processes, or threads of the server",
            choices=("process", "thread")),
    Setting("RNNLAB_SPARE_WORKERS", "int", 1,
            "training processes started ahead of time, so Train starts at once", 0, 16),
    Setting("RNNLAB_WORKER_NICE", "int", 10,
            "niceness added to each training process, so pages stay responsive", 0, 19),
    Setting("RNNLAB_DASK_SCHEDULER", "address", None,
            "the app's trainings run as tasks on this Dask cluster instead of in child "
            "processes; `local`: a LocalCluster of one single-threaded worker per training slot",
            default_text="unset: no cluster"),
    Setting("RNNLAB_NATIVE", "bool", True,
            "use the LSTM's C loops when they build (off: the same equations as torch calls)"),
    Setting("RNNLAB_REFERENCE_PROBE", "bool", False,
            "train with the reference probe and torch.nn instead of the hand-written BPTT "
            "(read once per process)"),
    # Measuring the app.
    Setting("RNNLAB_TRACE_CLICKS", "path", None,
            "the load test's trace file: the server notes its part of each click there",
            default_text="unset: no tracing"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def get(name: str):
    """The setting's value now: the environment variable parsed and checked, or the
    default when it is unset or empty. Raises SettingError for a value not allowed,
    KeyError for a name not in the table."""
    setting = BY_NAME[name]
    raw = os.environ.get(name, "")
    if not raw.strip():
        return setting.default_value()
    return setting.parse(raw)


def problems() -> list[str]:
    """One message per variable of the table that is set to a value it does not allow."""
    out = []
    for s in SETTINGS:
        try:
            get(s.name)
        except SettingError as e:
            out.append(str(e))
    return out


def _default_cell(s: Setting) -> str:
    if s.default_text:
        return s.default_text
    value = s.default_value()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def markdown_table() -> str:
    """The table README.md shows (``python -m core settings --markdown``)."""
    rows = ["| variable | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| `{s.name}` | {s.kind} | {_default_cell(s)} | {s.allowed()} | {s.meaning} |"
             for s in SETTINGS]
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    """``python -m core settings [--markdown]`` (core.cli): the table, or each setting's
    value now and where it comes from; exit code 2 if a value is not allowed."""
    if argv == ["--markdown"]:
        sys.stdout.write(markdown_table())
        return 0
    bad = problems()
    for s in SETTINGS:
        if os.environ.get(s.name, "").strip():
            try:
                value = "(set, not shown)" if s.kind == "secret" else get(s.name)
                print(f"{s.name} = {value}  (from the environment)")
            except SettingError:
                print(f"{s.name} = {os.environ[s.name]!r}  (not allowed, see below)")
        else:
            print(f"{s.name} = {s.default_value()}  (default)")
    for message in bad:
        print(message, file=sys.stderr)
    return 2 if bad else 0

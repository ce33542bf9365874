"""The configuration sidebar, bound to the URL.

Widgets are generated from ``core.config.FIELDS`` (the one place ranges live).
On a session's first visit the URL's query parameters are parsed leniently
with ``core.config.parse_config``: a bad value keeps its default and the page
shows a warning naming the field and its allowed range; ``?preset=<name>`` starts
from that preset (an unknown name is warned about, naming the presets). Afterwards
every change is written back to the URL (fields at their default are left out),
so a link reproduces the configuration, and a link followed inside the session
(another page's "open in Train" link) loads its settings the same way. The preset
dropdown shows a preset's name exactly while the form holds that preset's settings,
and "Custom" otherwise.
"""

from __future__ import annotations

import streamlit as st

from core import archspec
from core.config import FIELD_BY_NAME, FIELDS, TrainConfig, app_limits, enforce_limits, parse_config
from core.presets import PRESETS, preset_config

# URL keys that are not config fields (left alone here).
RESERVED_PARAMS = ("run", "preset", "models")
# Fields the app fixes itself: one torch thread per training so a room shares the cores.
# Runs started from the form train their whole budget (lessons stop when solved: core.lessons).
APP_FIXED = {"threads": 1, "stop_when_solved": False, "solved_tail": 0}
OPTIONAL_FIELDS = [f.name for f in FIELDS if f.optional]

LABELS = {
    "task": "Task", "seq_len": "Sequence length T", "num_symbols": "Symbols K",
    "arch": "Architecture", "hidden_size": "Hidden size", "forget_bias": "Forget-gate bias",
    "no_forget_gate": "No forget gate (f ≡ 1)", "coupled_gates": "Coupled gates (CIFG)",
    "init": "Recurrent init", "spectral_radius": "Spectral radius of W_hh",
    "gate_init": "Gate initialisation",
    "batch_size": "Batch size", "lr": "Learning rate", "optimizer": "Optimizer",
    "clip": "Clip gradient norm at", "steps": "Training steps", "seed": "Seed",
    "probe_every": "Probe gradients every N steps", "eval_every": "Evaluate every N steps",
    "eval_size": "Held-out sequences",
}


def _key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def _load_into_state(prefix: str, config: TrainConfig) -> None:
    for f in FIELDS:
        v = getattr(config, f.name)
        if f.optional:
            st.session_state[_key(prefix, f.name + "_on")] = v is not None
            st.session_state[_key(prefix, f.name)] = v if v is not None else _optional_default(f.name)
        else:
            st.session_state[_key(prefix, f.name)] = v


def _optional_default(name: str) -> float:
    return {"forget_bias": 1.0, "spectral_radius": 1.0, "clip": 1.0, "chrono_tmax": 100}[name]


def _apply_preset(prefix: str) -> None:
    name = st.session_state[_key(prefix, "preset")]
    if name in PRESETS:
        _load_into_state(prefix, preset_config(name))


def _link_params() -> dict[str, str]:
    """The URL's settings: its config fields and its preset (not run ids or models)."""
    out = {k: st.query_params[k] for k in st.query_params if k not in RESERVED_PARAMS}
    if "preset" in st.query_params:
        out["preset"] = st.query_params["preset"]
    return out


def init_from_url(prefix: str, initial: TrainConfig | None = None) -> dict[str, str]:
    """URL → widget state, on the session's first visit to the page, and again when a
    link brings settings other than the ones the form last wrote to the URL. Returns
    {field: problem}. ``initial`` is the starting point when the URL names no settings at
    all (the Train page passes the run it shows, so ``?run=<id>`` alone shows its settings)."""
    flag = _key(prefix, "initialised")
    link = _link_params()
    synced = st.session_state.get(_key(prefix, "synced"))
    if st.session_state.get(flag) and (not link or link == synced):
        return st.session_state.get(_key(prefix, "url_errors"), {})
    params = {k: v for k, v in link.items() if k != "preset"}
    # A run's settings are the starting point only for a link that names no settings.
    base = initial if initial is not None and not link else TrainConfig()
    errors: dict[str, str] = {}
    name = link.get("preset")
    if name in PRESETS:
        base = preset_config(name)
    elif name is not None:
        errors["preset"] = (f"{name!r} is not a preset (ignored); the presets are: "
                            + "; ".join(PRESETS))
    config, problems = parse_config(params, base=base)
    errors.update(problems)
    config, limited = enforce_limits(config)
    errors.update(limited)
    _load_into_state(prefix, config)
    st.session_state[flag] = True
    st.session_state[_key(prefix, "url_errors")] = errors
    return errors


def _fixed(config: TrainConfig) -> TrainConfig:
    return config.replace(**APP_FIXED)


def matching_preset(config: TrainConfig) -> str:
    """The preset whose settings ``config`` holds (the app's fixed fields aside), else "Custom"."""
    fixed = _fixed(config)
    return next((name for name in PRESETS if _fixed(preset_config(name)) == fixed), "Custom")


def _number(prefix: str, name: str, **kw):
    f = FIELD_BY_NAME[name]
    high = min(f.high, app_limits().get(name, f.high))
    if f.kind is int:
        return st.number_input(LABELS[name], int(f.low), int(high), step=1,
                               key=_key(prefix, name), help=f.help, **kw)
    return st.number_input(LABELS[name], float(f.low), float(f.high), key=_key(prefix, name),
                           help=f.help, format="%g", **kw)


def _optional(prefix: str, name: str, label_on: str, step: float) -> None:
    on = st.checkbox(label_on, key=_key(prefix, name + "_on"))
    if on:
        f = FIELD_BY_NAME[name]
        st.number_input(LABELS[name], float(f.low), float(f.high), step=step,
                        key=_key(prefix, name), help=f.help, format="%g")


def config_sidebar(prefix: str, show_arch: bool = True, disabled: bool = False,
                   initial: TrainConfig | None = None) -> TrainConfig:
    """Draw the sidebar form; return the validated config it describes.

    ``show_arch`` False hides architecture choice (the Compare page picks models itself).
    ``initial``: the settings to start from when the link names none (see init_from_url).
    """
    errors = init_from_url(prefix, initial)
    if errors:
        st.warning(
            "Some values in the link were not valid and were replaced by defaults:\n\n"
            + "\n".join(f"- **{k}** {v}" for k, v in errors.items())
        )
    s = st.session_state
    if show_arch:
        # The dropdown names a preset exactly while the form holds its settings.
        current, _ = collect(prefix, include_arch=True)
        s[_key(prefix, "preset")] = matching_preset(current)
    with st.sidebar:
        st.selectbox("Preset", ["Custom", *PRESETS], key=_key(prefix, "preset"),
                     on_change=_apply_preset, args=(prefix,), disabled=disabled,
                     help="One click to a configuration that tells the story")
        st.subheader("Task")
        st.selectbox(LABELS["task"], FIELD_BY_NAME["task"].choices, key=_key(prefix, "task"),
                     disabled=disabled)
        _number(prefix, "seq_len", disabled=disabled)
        if s[_key(prefix, "task")] == "recall":
            _number(prefix, "num_symbols", disabled=disabled)
        st.subheader("Model")
        if show_arch:
            st.selectbox(LABELS["arch"], FIELD_BY_NAME["arch"].choices, key=_key(prefix, "arch"),
                         disabled=disabled, format_func=arch_label,
                         help="The classic three (1990-2014) and the field's later answers")
            arch = s[_key(prefix, "arch")]
            st.caption(f"{archspec.SPEC[arch].paper}. Per-step gain: {archspec.SPEC[arch].answer}.")
            if arch == "lstm":
                _optional(prefix, "forget_bias", "Set the forget-gate bias", 0.5)
                st.checkbox(LABELS["no_forget_gate"], key=_key(prefix, "no_forget_gate"))
                st.checkbox(LABELS["coupled_gates"], key=_key(prefix, "coupled_gates"))
            elif arch.startswith("rnn"):
                st.selectbox(LABELS["init"], FIELD_BY_NAME["init"].choices,
                             key=_key(prefix, "init"))
                _optional(prefix, "spectral_radius", "Rescale the spectral radius", 0.1)
            if arch in FIELD_BY_NAME["gate_init"].applies_to:   # LSTM, GRU: chrono (issue 16)
                st.selectbox(LABELS["gate_init"], FIELD_BY_NAME["gate_init"].choices,
                             key=_key(prefix, "gate_init"), help=FIELD_BY_NAME["gate_init"].help)
        _number(prefix, "hidden_size", disabled=disabled)
        st.subheader("Training")
        _number(prefix, "batch_size", disabled=disabled)
        st.number_input(LABELS["lr"], 1e-6, 1.0, step=0.001, format="%g", key=_key(prefix, "lr"),
                        disabled=disabled)
        st.selectbox(LABELS["optimizer"], FIELD_BY_NAME["optimizer"].choices,
                     key=_key(prefix, "optimizer"), disabled=disabled)
        _optional(prefix, "clip", "Clip the gradient norm", 0.5)
        _number(prefix, "steps", disabled=disabled)
        _number(prefix, "seed", disabled=disabled)
        _number(prefix, "probe_every", disabled=disabled)
        with st.expander("Evaluation"):
            _number(prefix, "eval_every", disabled=disabled)
            _number(prefix, "eval_size", disabled=disabled)
    config, problems = collect(prefix, include_arch=show_arch)
    if problems:
        st.warning("\n".join(f"- **{k}** {v}" for k, v in problems.items()))
    preset = s.get(_key(prefix, "preset"), "Custom") if show_arch else "Custom"
    sync_url(config, preset)
    st.session_state[_key(prefix, "synced")] = _link_params()
    return config


def arch_label(arch: str) -> str:
    """'IndRNN (2018)': the architecture as a reader knows it, with the year of its paper."""
    spec = archspec.SPEC.get(arch)
    return f"{spec.label} ({spec.year})" if spec else str(arch)


def collect(prefix: str, include_arch: bool = True) -> tuple[TrainConfig, dict[str, str]]:
    """Widget state → config (lenient: an impossible combination falls back, with a message)."""
    s = st.session_state
    values = {}
    arch = s.get(_key(prefix, "arch"), "lstm") if include_arch else "lstm"
    for f in FIELDS:
        if f.name in APP_FIXED or _key(prefix, f.name) not in s:
            continue
        if f.applies_to and f.applies_to[0] not in ("recall",) and arch not in f.applies_to:
            continue  # options of another architecture stay in the widgets, not the config
        if not include_arch and f.applies_to and f.name != "num_symbols":
            continue
        if f.optional and not s.get(_key(prefix, f.name + "_on")):
            values[f.name] = None
        else:
            values[f.name] = s[_key(prefix, f.name)]
    values.update(APP_FIXED)
    config, errors = parse_config(values)
    config, limited = enforce_limits(config)
    return config, {**errors, **limited}


def url_params(config: TrainConfig) -> dict[str, str]:
    """The URL parameters that describe ``config``: its fields that differ from the
    defaults (the app's fixed fields left out), as text (a link to Train or Compare)."""
    defaults = TrainConfig()
    out = {}
    for f in FIELDS:
        v = getattr(config, f.name)
        if f.name in APP_FIXED or v == getattr(defaults, f.name):
            continue
        out[f.name] = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    return out


def sync_url(config: TrainConfig, preset: str = "Custom") -> None:
    """Write non-default fields to the URL, remove default ones, name the preset the form
    holds (or none); keep the other reserved keys."""
    wanted = url_params(config)
    for f in FIELDS:
        if f.name in wanted:
            if st.query_params.get(f.name) != wanted[f.name]:
                st.query_params[f.name] = wanted[f.name]
        elif f.name in st.query_params:
            del st.query_params[f.name]
    if preset in PRESETS:
        if st.query_params.get("preset") != preset:
            st.query_params["preset"] = preset
    elif "preset" in st.query_params:
        del st.query_params["preset"]

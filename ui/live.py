"""Drawing a run (or several side by side) from snapshots of its records.

The worker thread only appends records; these functions read copies
(``RunData.table``) and draw them with the one chart module, ``core.charts``.
While a job is alive, ``live_view`` redraws inside ``st.fragment(run_every=…)``, every
second, or less often when more pages of this server watch live trainings than its
redraw budget allows (core.scheduling.live_refresh_s); the status line then says so.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
import streamlit as st
from streamlit import dataframe_util
from streamlit.util import calc_hash

try:  # Streamlit's own Altair → Vega-Lite conversion (private; pinned version in requirements)
    from streamlit.elements.vega_charts import (
        _convert_altair_to_vega_lite_spec as _st_altair_to_spec,
    )
except ImportError:  # pragma: no cover - a different Streamlit: the fallback below
    _st_altair_to_spec = None

from core import archspec, charts, scheduling
from core.jobs import TrainingJob
from core.narrate import describe_gradient, probe_context, ratio_scale, sci
from core.probe import summarise
from core.tasks import example
from core.runs import RunData
from ui.runtime import registry

REFRESH_S = 1.0
# A queued page refreshes less often: twenty queued pages redrawing every second
# would take CPU from the trainings they wait for.
QUEUED_REFRESH_S = 2.0
# What the status line adds while the live view being drawn (on this script thread)
# redraws less often than REFRESH_S because many pages watch: see live_note().
_LIVE = threading.local()


class _Lru:
    """A thread-safe least-recently-used map bounded by the total ``size`` of its values."""

    def __init__(self, max_size: int, size=lambda value: 1):
        self.max_size, self._size = max_size, size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key, make):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value
        value = make()  # outside the lock: building may take tens of ms
        with self._lock:
            self._items[key] = value
            while len(self._items) > 1 and \
                    sum(map(self._size, self._items.values())) > self.max_size:
                self._items.popitem(last=False)
        return value


# Vega-Lite specs (data included) by what they were built from. A live page redraws
# every second, but most charts have not changed since the last redraw: heatmaps
# change at each probe, a queued or finished run never. Reusing the spec cuts a
# redraw from ≈ 35 ms to ≈ 4 ms per chart, which is what lets one 2-core server
# keep twenty pages live. Keys hold RunData.token and table versions, so a spec is
# never reused for other data. Datasets are kept as Arrow bytes (what Streamlit
# sends anyway, and 10-20x smaller than Altair's rows of dicts), and the cache is
# bounded in bytes: least recently used goes first.
MAX_SPEC_BYTES = 64 * 2**20
_SPECS = _Lru(MAX_SPEC_BYTES, size=lambda hit: hit[1])


def _compact_spec(chart) -> tuple[dict, int]:
    """The Vega-Lite spec Streamlit would send for ``chart`` (its own Altair conversion:
    datasets straight from the DataFrames to Arrow bytes, Streamlit's theme handling),
    without Altair's JSON-schema validation, and its size in bytes."""
    _skip_validation(chart)
    if _st_altair_to_spec is not None:
        spec = _st_altair_to_spec(chart)
    else:  # a Streamlit without the private helper: the same through Altair's records
        spec = chart.to_dict()
        spec["datasets"] = {
            name: dataframe_util.convert_anything_to_arrow_bytes(pd.DataFrame(rows))
            for name, rows in spec.get("datasets", {}).items()}
    sizes = [len(b) for b in spec.get("datasets", {}).values() if isinstance(b, bytes)]
    return spec, 4096 + sum(sizes)


def _skip_validation(chart) -> None:
    to_dict = chart.to_dict
    object.__setattr__(chart, "to_dict", lambda *a, **kw: to_dict(*a, **{**kw, "validate": False}))


def cached_chart(cache_key: tuple, widget_key: str, build) -> None:
    """Draw the Altair chart ``build()`` returns, built once per ``cache_key``."""
    spec, _ = _SPECS.get_or_make(cache_key, lambda: _compact_spec(build()))
    # Streamlit moves the datasets out of the spec it is given: hand it a copy.
    st.vega_lite_chart(spec=dict(spec), key=widget_key)


# Specs *without* their data, per chart structure: a chart whose data changes every
# second (the loss curve of a live run) is built with Altair once per structure
# (log scale or not, …) and then only gets new datasets: Altair's construction and
# conversion were ≈ 45 ms of a ≈ 50 ms redraw, the Arrow encoding of the data is the rest.
_TEMPLATES = _Lru(64)


def templated_chart(cache_key: tuple, widget_key: str, structure: tuple, frames, build) -> None:
    """Like :func:`cached_chart` for a chart ``build(frames)`` whose spec depends on its
    data only through the named DataFrames ``frames()`` returns: the spec is built once
    per ``structure`` and refilled with each version's data (see ``_fill_template``)."""
    def make():
        data = frames()
        template = _TEMPLATES.get_or_make(structure, lambda: _make_template(build, data))
        return _fill_template(template, data) if template else _compact_spec(build(data))

    spec, _ = _SPECS.get_or_make(cache_key, make)
    st.vega_lite_chart(spec=dict(spec), key=widget_key)


def _arrow(frame: pd.DataFrame) -> tuple[str, bytes]:
    """(name, Arrow bytes) of a dataset as Streamlit names it: a hash of its bytes."""
    data = dataframe_util.convert_anything_to_arrow_bytes(frame)
    return calc_hash(data), data


def _make_template(build, data: dict) -> dict:
    """The spec of ``build(data)`` with each dataset's name mapped to its frame's key;
    {} (no template: always build) if a dataset cannot be traced back to one frame."""
    spec, _ = _compact_spec(build(data))
    by_name = {_arrow(frame)[0]: key for key, frame in data.items()}
    datasets = spec.get("datasets") or {}
    if not datasets or set(datasets) - set(by_name):
        return {}
    spec = dict(spec)
    del spec["datasets"]
    return {"spec": spec, "names": {name: by_name[name] for name in datasets}}


def _fill_template(template: dict, data: dict) -> tuple[dict, int]:
    """The template's spec with ``data``'s datasets in place of the ones it was built with."""
    new = {key: _arrow(frame) for key, frame in data.items()}
    rename = {old: new[key][0] for old, key in template["names"].items()}

    def swap(node):
        if isinstance(node, dict):
            out = {k: swap(v) for k, v in node.items()}
            if out.get("name") in rename and len(out) == 1:  # a {"name": …} data reference
                out["name"] = rename[out["name"]]
            return out
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    spec = swap(template["spec"])
    spec["datasets"] = {new[key][0]: new[key][1] for key in template["names"].values()}
    return spec, 4096 + sum(len(b) for _, b in new.values())


def task_example(task, seed: int, expanded: bool = True) -> None:
    """One input sequence of ``task`` and its target: what the network is shown."""
    # The container's key (CSS class st-key-task_example) lets browser tests tell this
    # chart from the run's charts.
    with st.container(key="task_example"), st.expander(
            "What the network sees: one example sequence", expanded=expanded):
        frame, target = example(task, seed)
        cached_chart(("example", repr(task), seed), "task_example",
                     lambda: charts.input_example_chart(frame))
        st.caption(f"Inputs by time step (columns) and input channel (rows); the target "
                   f"for this sequence is {target}.")


def data_key(datas: list[RunData], *tables: str) -> tuple:
    """What charts drawn from ``tables`` of ``datas`` depend on: which data, how much."""
    return tuple((d.token,) + tuple(d.versions()[t] for t in tables) for d in datas)


def _fmt_eta(status: dict) -> str:
    rate, step, steps = status.get("steps_per_s"), status.get("step", 0), status.get("steps", 0)
    if not rate or status.get("status") != "running":
        return "—"
    left = (steps - step) / rate
    return f"{left:.0f} s" if left < 120 else f"{left / 60:.1f} min"


def status_header(data: RunData, job: TrainingJob | None = None) -> dict:
    """Status line, progress bar and headline numbers; returns the status dict."""
    s = data.status_copy()
    state = s.get("status", "?")
    line = f"Status: {state}"
    if state == "queued" and job is not None:
        pos = job.queue_position
        line += f" — waiting for a free training slot{f' (#{pos} in the queue)' if pos else ''}"
    st.markdown(f"**{line}**{live_note(state in ('queued', 'running'))}")
    steps = max(1, int(s.get("steps") or 1))
    st.progress(min(1.0, s.get("step", 0) / steps))
    st.caption(f"Step {s.get('step', 0)} / {steps}")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Steps per second", f"{s['steps_per_s']:.1f}" if s.get("steps_per_s") else "—")
    c2.metric("Time left", _fmt_eta(s))
    metric_name = s.get("metric_name", "metric")
    c3.metric(f"Held-out {metric_name}", sci(s.get("eval_metric")))
    value, note = solved_text(s)
    c4.metric("Solved", value, note, delta_color="off", delta_arrow="off")
    if s.get("message"):
        (st.error if state == "diverged" else st.info)(s["message"])
    if job is not None and job.save_error:
        st.warning(f"{job.save_error}. The charts below are kept in memory for this session.")
    return s


def solved_text(status: dict) -> tuple[str, str | None]:
    """The Solved metric's value and note: 'at step 275'; 'not yet' while training; once a
    run has ended unsolved, 'no' and 'not solved in 1000 steps' (its value stays short)."""
    if status.get("solved"):
        return f"at step {status.get('steps_to_solve')}", None
    if status.get("status") in ("queued", "running"):
        return "not yet", None
    return "no", f"not solved in {int(status.get('step') or 0)} steps"


def _probe_step_picker(steps: list[int], key: str) -> int | None:
    """Which probe heatmaps B and C show: the latest one while "follow" is on, else the
    step picked on a slider.

    Following is a toggle of its own, not a slider the page moves: a slider whose value
    the script keeps moving while the browser also reports the value it shows can lose
    the race and stick at an old probe (seen in Chromium during a live run).
    """
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    if st.toggle("Follow the latest probe", value=True, key=f"{key}_follow",
                 help="Turn off to scrub back through earlier probes"):
        return steps[-1]
    if st.session_state.get(key) not in steps:
        st.session_state[key] = steps[-1]
    return st.select_slider("Probe at training step", options=steps, key=key,
                            help="Scrub back through earlier probes")


def run_charts(data: RunData, key: str) -> None:
    """Loss curve and the three heatmaps of one run, with the sentence that reads them.

    Tables are copied out of ``data`` only when a chart built from them has changed.
    """
    s = data.status_copy()
    arch = data.config.arch
    colour = charts.ARCH_COLOURS.get(arch)   # one colour per architecture, on every page
    log = st.toggle("Log-scale loss", key=f"{key}_log")
    templated_chart(("loss", log, s.get("baseline_loss")) + data_key([data], "metrics", "evals"),
                    f"{key}_loss", ("loss", log, colour),
                    lambda: charts.loss_frames(data.table("metrics"), data.table("evals"),
                                               s.get("baseline_loss"), log_scale=log),
                    lambda frames: charts.loss_layers(frames, log_scale=log, colour=colour))
    if s.get("status") == "diverged" and not log:
        st.caption("The loss exploded: on a linear axis its last finite values dwarf the "
                   "rest. Turn on **Log-scale loss** to see it grow step by step.")
    probed = data_key([data], "probes", "gates", "summaries")
    tables = _probe_tables(data, probed) if data.versions()["probes"] else None
    if tables is None:
        st.info("The gradient heatmaps appear after the first probe"
                + (" (probing is off for this run)." if data.config.probe_every == 0 else "."))
        return
    probes, gates = tables["probes"], tables["gates"]
    # The sentence reads the probe heatmaps B and C show (the latest, or the one scrubbed
    # back to): it is drawn here, above the heatmaps, once the picker below has chosen.
    sentence = st.container()
    st.subheader("A · Gradient reaching each time step, over training")
    st.caption("‖∂ℓ/∂h_t‖ by time step t (x) and training step (y), log colour scale "
               "(≤ 1e-12, an underflowed 0 included, drawn as 1e-12; inf/NaN left blank). "
               "Dark on the left = the gradient from the loss never reaches the early steps; "
               "brighter on the left = it grows back through time (exploding).")
    cached_chart(("heatA", "h") + probed, f"{key}_heatA",
                 lambda: charts.grad_time_heatmap(probes, "h"))
    if arch in archspec.SPEC and archspec.SPEC[arch].path == "c":
        st.caption("The same for the cell state c_t: the additive path whose gain is the forget "
                   "gate" + (" (sLSTM: the stabilised f′)." if arch == "slstm" else "."))
        cached_chart(("heatA", "c") + probed, f"{key}_heatA_c",
                     lambda: charts.grad_time_heatmap(probes, "c"))
    st.subheader("B · Gradient by time step and gate")
    st.caption("h, the LSTM's cell c and each gate's pre-activation (i f g o; the GRU's r z n), "
               "at one probe. A blank gate cell is a gradient of exactly 0: a path that does not "
               "exist (f at t = 0 multiplies c₋₁ = 0).")
    if arch in archspec.SPEC and archspec.SPEC[arch].probe_note:
        st.caption(f"{archspec.SPEC[arch].label}: {archspec.SPEC[arch].probe_note}")
    chosen = _probe_step_picker(tables["steps"], f"{key}_probe_step")
    latest = chosen == tables["steps"][-1]
    text = _reading(data, probed, s, chosen)
    which = "the latest probe" if latest else "the probe picked below"
    sentence.markdown(f"**At training step {chosen}** ({which}): {text}", help=ratio_scale())
    cached_chart(("heatB", chosen) + probed, f"{key}_heatB",
                 lambda: charts.gate_heatmap(probes, step=chosen))
    if not gates.empty:
        st.subheader("C · Mean gate activation by time step")
        st.caption("What the gates do: f near 1 keeps the cell (and its gradient); "
                   "z near 1 carries the GRU state. f_max / z_max: the most open unit "
                   "(its batch mean), which the mean over units hides."
                   + (f" gain: {archspec.SPEC[arch].label}'s carry path, "
                      f"{archspec.SPEC[arch].answer}; gain_max its most carrying unit."
                      if arch in archspec.SPEC and archspec.SPEC[arch].carry == "gain" else ""))
        cached_chart(("heatC", chosen) + probed, f"{key}_heatC",
                     lambda: charts.activation_heatmap(gates, step=chosen))
    st.subheader("Gradient reach over training")
    cached_chart(("reach",) + probed, f"{key}_reach",
                 lambda: charts.reach_chart(tables["summaries"], colour=colour))


# The probe tables of the runs being drawn, per version (copying them is the costly part).
_PROBE_TABLES = _Lru(16)


def _probe_tables(data: RunData, probed: tuple) -> dict | None:
    """The probe tables of ``data`` and the reading of its latest probe, once per
    version; None when there are no probes."""
    hit = _PROBE_TABLES.get_or_make(probed, lambda: _read_probe_tables(data))
    return hit or None


def _read_probe_tables(data: RunData) -> dict:
    probes = data.table("probes")
    if probes.empty:
        return {}  # not None: the LRU keeps it, like any other version
    gates = data.table("gates")
    step = charts.latest_step(probes)
    return {"probes": probes, "gates": gates, "summaries": data.table("summaries"),
            "step": step, "reading": probe_reading(probes, gates, step),
            "steps": sorted(int(v) for v in probes["step"].unique())}


def probe_reading(probes: pd.DataFrame, gates: pd.DataFrame, step: int) -> dict:
    """The numbers the sentence reads at the probe of training ``step``: the probe's own
    summary (core.probe.summarise of that probe's rows, as the trainer computed it: one
    definition of each number), and ``nonfinite`` ('NaN', 'inf', 'inf/NaN') when any of
    its gradients is not finite."""
    rows = probes[probes["step"] == step]
    reading = summarise(rows, gates[gates["step"] == step])
    values = pd.to_numeric(rows["grad_norm"], errors="coerce").to_numpy(dtype=float)
    nan, inf = bool(np.isnan(values).any()), bool(np.isinf(values).any())
    if nan or inf:
        reading["nonfinite"] = "inf/NaN" if nan and inf else ("NaN" if nan else "inf")
    return reading


# The sentence per probe version, status and chosen step (a diverged run's metrics are
# read for the step it diverged at; a live run's are not copied every second).
_READINGS = _Lru(64)


def _reading(data: RunData, probed: tuple, status: dict, step: int) -> str:
    """The sentence on the probe at ``step`` (see core.narrate.describe_gradient)."""
    state = status.get("status")
    key = ("reading", step, state) + probed + data_key([data], "evals")

    def make():
        tables = _probe_tables(data, probed)
        reading = (tables["reading"] if step == tables["step"]
                   else probe_reading(tables["probes"], tables["gates"], step))
        metrics = data.table("metrics") if state == "diverged" else None
        context = probe_context(data.table("evals"), metrics, step,
                                status.get("baseline_loss"), status.get("metric_name"))
        return describe_gradient(reading, data.config.arch, context)

    return _READINGS.get_or_make(key, make)


def live_view(job: TrainingJob | None, datas: list[RunData], key: str, draw) -> None:
    """Redraw ``draw(datas)`` every second while ``job`` trains, every
    ``QUEUED_REFRESH_S`` while it waits for a slot (only its queue place changes),
    once otherwise. When the job starts or ends, the whole page reruns once so the
    refresh rate, buttons and tables follow.

    When more pages of this server watch live trainings than its redraw budget allows
    at that pace, every page redraws less often (core.scheduling.live_refresh_s: N pages
    share $RNNLAB_LIVE_REDRAWS_PER_S redraws a second), and the status line says so
    (:func:`live_note`). A fragment's interval is fixed when it is drawn, so a timed
    redraw that finds the page count has moved the interval by more than
    core.scheduling.REFRESH_TOLERANCE reruns the whole page to take the new one. A click
    on the page reruns its fragment at once, whatever the interval.
    """
    alive = job is not None and job.alive
    queued = alive and _all_queued(datas)
    base = QUEUED_REFRESH_S if queued else REFRESH_S
    pages = registry().live_watchers() if alive else 0
    every = scheduling.live_refresh_s(pages, base) if alive else None
    note = _note(every, pages) if alive and every > base else ""
    runs = itertools.count()  # this fragment's runs: the first is drawn with the page

    @st.fragment(run_every=every)
    def _view():
        _LIVE.note = note
        try:
            draw(datas)
        finally:
            _LIVE.note = ""
        if alive and (not job.alive or (queued and not _all_queued(datas))):
            st.rerun(scope="app")
        if alive and next(runs) and scheduling.refresh_is_stale(
                every, scheduling.live_refresh_s(registry().live_watchers(), base)):
            st.rerun(scope="app")

    _view()


def live_note(live: bool = True) -> str:
    """What the status line of a run still training or queued (``live``) adds while the
    live view it is drawn in redraws less often than it would alone: " · updates every
    6.2 s while 50 pages watch live" ("" otherwise: a run that has just ended is
    drawn once more by its last timed redraw, before the page reruns)."""
    return getattr(_LIVE, "note", "") if live else ""


def _note(every: float, pages: int) -> str:
    seconds = f"{every:.0f}" if every >= 10 else f"{every:.1f}"
    return f" · updates every {seconds} s while {pages} pages watch live"


def _all_queued(datas: list[RunData]) -> bool:
    return all(d.status_copy().get("status") == "queued" for d in datas)


def is_finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)

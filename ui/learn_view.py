"""Drawing the landing's race and the lesson's steps (pages/learn.py) from their runs.

A step (``core.lessons.Step``) names its models and its charts; this module draws them
from the runs' live snapshots with the app's one chart module (``core.charts``), the
spec caches of ``ui.live`` (a heatmap is rebuilt at each probe, not each second) and the
captions that read each run's numbers (``core.captions``, ``core.narrate``). Nothing here
trains or computes a number that is shown: it reads what the runs measured.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
import streamlit as st

from core import captions, charts
from core.lessons import Step
from core.narrate import describe_gradient, probe_context
from core.probe import summarise
from core.runs import RunData
from ui.live import cached_chart, data_key, live_note, templated_chart


class _Memo:
    """A small bounded cache for numbers read off run tables (keyed by table versions)."""

    def __init__(self, size: int = 64):
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key, make):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


_MEMO = _Memo()


def _stack(datas: list[RunData], labels: list[str], table: str) -> pd.DataFrame:
    frames = [d.table(table).assign(run=label) for d, label in zip(datas, labels)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _by(datas: list[RunData]) -> str | None:
    return "run" if len(datas) > 1 else None


# ---------------------------------------------------------------- numbers off a run

def _summary_of(data: RunData, row) -> dict:
    summary = {k: float(row[k]) for k in ("vanishing_ratio", "h_grad_first", "h_grad_last")}
    summary["gradient_reach"] = int(row["gradient_reach"])
    summary["steps"] = data.config.make_task().steps
    return summary


def latest_summary(data: RunData, finite: bool = False) -> tuple[dict | None, int | None]:
    """The latest probe's summary (the summaries table's row, with the sequence's number of
    steps) and its training step — with ``finite``, the latest whose gradients are finite
    numbers; (None, None) when there is none."""
    def make():
        s = data.table("summaries")
        if finite:
            ok = s[["h_grad_first", "h_grad_last"]].apply(pd.to_numeric, errors="coerce")
            s = s[np.isfinite(ok.to_numpy(dtype=float)).all(axis=1)]
        if s.empty:
            return None, None
        row = s.loc[s["step"].idxmax()]
        return _summary_of(data, row), int(row["step"])

    return _MEMO.get(("summary", finite, data.token, data.versions()["summaries"]), make)


def diverged_at(data: RunData) -> int | None:
    """The first training step whose loss was not finite (a diverged run), else None."""
    if data.status_copy().get("status") != "diverged":
        return None

    def make():
        m = data.table("metrics")
        loss = pd.to_numeric(m["loss"], errors="coerce").to_numpy(dtype=float)
        bad = m["step"][~np.isfinite(loss)]
        return int(bad.min()) if len(bad) else None

    return _MEMO.get(("diverged", data.token, data.versions()["metrics"]), make)


def status_line(datas: list[RunData], labels: list[str] | None = None) -> None:
    """'Status: running · Step 538 / 1000 · finished: LSTM, GRU' for the runs of one step:
    the step of the runs still training (all runs', once none is)."""
    statuses = [d.status_copy() for d in datas]
    labels = labels or [d.config.label() for d in datas]
    states = [s.get("status", "?") for s in statuses]
    active = [s for s, state in zip(statuses, states) if state in ("queued", "running")]
    shown = active or statuses
    step = max(int(s.get("step") or 0) for s in shown)
    steps = max(int(s.get("steps") or 1) for s in shown)
    state = "running" if any(x == "running" for x in states) else (
        "queued" if active else ", ".join(sorted(set(states))))
    line = f"**Status: {state}** · Step {step} / {steps}{live_note(bool(active))}"
    if active and len(active) < len(statuses):
        ended: dict[str, list[str]] = {}
        for label, x in zip(labels, states):
            if x not in ("queued", "running"):
                ended.setdefault(x, []).append(label)
        line += " · " + " · ".join(f"{x}: {', '.join(ls)}" for x, ls in ended.items())
    st.markdown(line)


def model_captions(datas: list[RunData], labels: list[str], columns=None) -> None:
    """One caption per model (in ``columns`` if given), reading its outcome and latest probe."""
    for i, (d, label) in enumerate(zip(datas, labels)):
        summary, step = latest_summary(d)
        finite = latest_summary(d, finite=True)
        text = captions.model_caption(label, d.config, d.status_copy(), summary, step,
                                      finite if finite[0] else None, diverged_at(d))
        (columns[i] if columns else st).caption(text)


def run_sentence(data: RunData) -> str | None:
    """core.narrate's sentence on a run's latest probe (as the Train page reads it)."""
    def make():
        probes = data.table("probes")
        if probes.empty:
            return None
        gates = data.table("gates")
        step = int(probes["step"].max())
        reading = summarise(probes[probes["step"] == step], gates[gates["step"] == step])
        s = data.status_copy()
        metrics = data.table("metrics") if s.get("status") == "diverged" else None
        context = probe_context(data.table("evals"), metrics, step, s.get("baseline_loss"),
                                s.get("metric_name"))
        return f"**At training step {step}:** " + describe_gradient(reading, data.config.arch,
                                                                  context)

    key = ("sentence", data.token, data.status_copy().get("status")) + data_key(
        [data], "probes", "evals")
    return _MEMO.get(key, make)


# ---------------------------------------------------------------- charts

def heatmap_a(datas, labels, key: str, quantity: str = "h",
              height: int = charts.HEIGHT) -> bool:
    """Heatmap A for every run (one panel each, in order, one colour scale); False before
    the first probe."""
    if not any(d.versions()["probes"] for d in datas):
        return False
    probed = data_key(datas, "probes")
    cached_chart((f"learn_heatA_{quantity}", tuple(labels), height) + probed,
                 f"{key}_heatA_{quantity}",
                 lambda: charts.grad_time_heatmap(_stack(datas, labels, "probes"), quantity,
                                                  by=_by(datas), order=labels, height=height))
    return True


def finite_heatmap(data: RunData, label: str, key: str) -> list[int]:
    """Heatmap A of one run, its probes with a non-finite h-gradient left out (one infinite
    probe would stretch the colour scale over tens of orders of magnitude and flatten the
    rest); returns the training steps left out."""
    def make():
        p = data.table("probes")
        h = p[p["quantity"] == "h"]
        values = pd.to_numeric(h["grad_norm"], errors="coerce").to_numpy(dtype=float)
        bad = sorted({int(s) for s in h["step"][~np.isfinite(values)]})
        return p[~p["step"].isin(bad)], bad

    probes, bad = _MEMO.get(("finite_probes", data.token, data.versions()["probes"]), make)
    cached_chart(("learn_heatA_finite", label) + data_key([data], "probes"), f"{key}_heatA",
                 lambda: charts.grad_time_heatmap(probes, "h"))
    return bad


def loss_chart(datas, labels, key: str, height: int = charts.HEIGHT, log: bool = False,
               compact: bool = False) -> None:
    """The loss curves of every run against the task's baseline (refilled every second).
    ``compact``: the legends under the plot, side by side (a narrow column)."""
    baseline = datas[0].status_copy().get("baseline_loss")
    baselines = {d.status_copy().get("baseline_loss") for d in datas}
    if len(baselines) > 1:
        baseline = None
    by = _by(datas)
    order = list(labels) if by else None

    def build(frames):
        chart = charts.loss_layers(frames, log_scale=log, by=by, order=order).properties(
            height=height)
        if compact:   # one legend (the models), under the plot, so the plot keeps the width
            chart = chart.configure_legend(disable=True, orient="bottom", direction="horizontal",
                                           titleOrient="left")
        return chart

    templated_chart(("learn_loss", tuple(labels), baseline, height, log, compact)
                    + data_key(datas, "metrics", "evals"),
                    f"{key}_loss", ("learn_loss", tuple(labels), by, height, log, compact),
                    lambda: charts.loss_frames(_stack(datas, labels, "metrics"),
                                               _stack(datas, labels, "evals"), baseline,
                                               log_scale=log, by=by),
                    build)
    st.caption(captions.loss_caption(baseline, short=compact) + (" Log scale." if log else ""))


def _gate_story(data: RunData, label: str) -> str | None:
    return _MEMO.get(("gates", data.token, data.versions()["gates"]),
                     lambda: captions.gate_story(label, data.config.arch, data.table("gates"),
                                                 data.config.hidden_size))


def draw_chart(name: str, datas: list[RunData], labels: list[str], key: str) -> None:
    """One of the charts a step names (core.lessons.CHARTS), with its caption."""
    probed = data_key(datas, "probes", "gates", "summaries")
    has_probes = any(d.versions()["probes"] for d in datas)
    if name in ("loss", "loss_log"):
        log = name == "loss_log"
        st.markdown("**Loss**" + (" (log axis)" if log else ""))
        loss_chart(datas, labels, key, log=log)
    elif name == "loss_each":
        st.markdown("**Loss**, each model on its own axes (log)")
        for i, (col, d, label) in enumerate(zip(st.columns(len(datas)), datas, labels)):
            with col:
                st.markdown(f"*{label}*")
                loss_chart([d], [label], f"{key}_{i}", height=220, log=True)
    elif name == "heatA_each":
        st.markdown("**A · Gradient reaching each time step t, over training** (‖∂ℓ/∂h_t‖; "
                    "one chart per model, each on its own colour scale; latest probe on top)")
        if not has_probes:
            st.info("Heatmap A appears after the first gradient probe.")
            return
        left_out = []
        for i, (col, d, label) in enumerate(zip(st.columns(len(datas)), datas, labels)):
            with col:
                st.markdown(f"*{label}*")
                bad = finite_heatmap(d, label, f"{key}_{i}")
                if bad:
                    steps = ", ".join(map(str, bad))
                    left_out.append(f"{label}'s probe{'s' if len(bad) > 1 else ''} at step"
                                    f"{'s' if len(bad) > 1 else ''} {steps}")
        if left_out:
            st.caption("Left out of the heatmaps, so that the colour scale shows the finite "
                       "gradients: " + "; ".join(left_out) + " (some ‖∂ℓ/∂h_t‖ there is no "
                       "longer a finite number).")
        model_captions(datas, labels)
    elif name == "heatA":
        st.markdown("**A · Gradient reaching each time step t, over training** "
                    "(‖∂ℓ/∂h_t‖, log colour scale; latest probe at the top)")
        if heatmap_a(datas, labels, key):
            model_captions(datas, labels)
        else:
            st.info("Heatmap A appears after the first gradient probe.")
    elif name == "heatA_c":
        lstm = [(d, lab) for d, lab in zip(datas, labels) if d.config.arch == "lstm"]
        if lstm and has_probes:
            st.markdown("**A for the cell state c_t** (‖∂ℓ/∂c_t‖): the additive path whose "
                        "gain per step is the forget gate")
            ds, ls = [d for d, _ in lstm], [lab for _, lab in lstm]
            heatmap_a(ds, ls, key, "c")
    elif name == "heatB" and has_probes:
        st.markdown("**B · Gradient by time step and gate/state, at the latest probe**")
        cached_chart(("learn_heatB", tuple(labels)) + probed, f"{key}_heatB",
                     lambda: charts.gate_heatmap(_stack(datas, labels, "probes"),
                                                 by=_by(datas)))
        for d in datas:
            sentence = run_sentence(d)
            if sentence and len(datas) == 1:
                st.markdown(sentence)
    elif name == "heatC" and any(d.versions()["gates"] for d in datas):
        gated = [(d, lab) for d, lab in zip(datas, labels)
                 if d.config.arch in captions.GATE_NAMES]
        if not gated:
            return
        st.markdown("**C · How open each gate is along the sequence, at the latest probe** "
                    "(mean over units; f_max, z_max: the most open unit)")
        ds, ls = [d for d, _ in gated], [lab for _, lab in gated]
        cached_chart(("learn_heatC", tuple(ls)) + data_key(ds, "gates"), f"{key}_heatC",
                     lambda: charts.activation_heatmap(_stack(ds, ls, "gates"), by=_by(ds)))
        for d, lab in gated:
            story = _gate_story(d, lab)
            if story:
                st.caption(story)
    elif name == "reach" and has_probes:
        st.markdown("**Gradient reach and vanishing ratio over training**")
        cached_chart(("learn_reach", tuple(labels)) + probed, f"{key}_reach",
                     lambda: charts.reach_chart(_stack(datas, labels, "summaries"),
                                                by=_by(datas)))


def draw_step(step: Step, datas: list[RunData], key: str) -> None:
    """A step's status line and charts, in the order the step lists them."""
    labels = step.labels()[:len(datas)]
    status_line(datas, labels)
    for d in datas:
        message = d.status_copy().get("message")
        if message and d.status_copy().get("status") == "diverged":
            st.caption(f"{labels[datas.index(d)]}: {message}")
    for name in step.charts:
        draw_chart(name, datas, labels, key)


# ---------------------------------------------------------------- step 6: the three answers

VERDICT_COLOUR = {"Confirmed": "green", "Half-true": "orange", "Refuted": "red"}


def verdict_md(verdict: str) -> str:
    """A verdict in its colour, as the Explain page shows it."""
    return f":{VERDICT_COLOUR.get(verdict, 'gray')}[**{verdict}**]"


@st.cache_data(show_spinner="Measuring the untrained RNN, LSTM and gates (a few seconds)…",
               max_entries=4)
def three_answers(T: int | None = None, H: int | None = None, seed: int | None = None) -> list:
    """The Explain page's verdicts on the three answers (core.explain's measurements on
    untrained models, core.narrate's words), at the Explain page's default settings."""
    from core import explain, narrate

    T = explain.SEQ_LEN if T is None else T
    H = explain.HIDDEN if H is None else H
    seed = explain.SEED if seed is None else seed
    rnn, lstm = explain.rnn_facts(T, H, seed), explain.lstm_facts(T, H, seed)
    forget, _ = explain.forget_gate_gain(T, H, seed)
    saturation = explain.saturation_effect(T, H, seed)
    return narrate.verdicts(explain.claim_evidence(rnn, lstm, forget, saturation))

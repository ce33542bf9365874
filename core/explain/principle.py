"""One principle behind every answer: a path through time whose per-step gain is near 1.

The Explain page's last section (issue 17) puts every architecture of
:mod:`core.archspec` in one frame, measured on the same untrained models the Train page
builds (same task, length, width, seed), by the same instruments as the sections before:

* the **path**: the state that carries through time (h; the LSTM's and sLSTM's cell c),
  and ‖∂p_{T−1}/∂p_t‖₂ by autograd (:func:`core.explain.jacobians.state_jacobians`), mean
  over a batch, against the lag T−1−t;
* its **per-step factor**: the geometric-mean shrink of that norm per step
  (:func:`core.explain.jacobians.per_step_factor`): 0.5 halves the gradient every step
  (1e-30 over 100 steps), 1 carries it;
* the **carry gain** the cell itself records (LSTM f, GRU z, the later ones' ``gain``:
  see each layer's docstring), mean over units and steps, and its most carrying unit;
* the **probe**: the gradient reach and ‖∂ℓ/∂h₀‖/‖∂ℓ/∂h_{T−1}‖ (:func:`core.probe.probe`);
* what the answer **costs**: one training step's forward and backward, timed here (the
  recurrences that are linear in their state run as a parallel scan; the others step
  through time).

Whether the gain is fixed by construction or learned through a gate comes from the
registry; every number beside it is measured when called.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from core.archspec import ARCHS, MODERN, SPEC
from core.probe import _ratio_of, _reach_of
from core.explain.jacobians import (
    HIDDEN,
    JAC_BATCH,
    PROBE_BATCH,
    SEED,
    SEQ_LEN,
    TASK,
    measured,
    per_step_factor,
    probe_summary,
    sample_batch,
    spectral_norms,
    state_jacobians,
    untrained_model,
)

#: The rows: every architecture at its paper's init, and three gated ones with their gate
#: opened at init (chrono, Tallec & Ollivier 2018), which is what training must otherwise
#: learn.
VARIANTS: tuple[tuple[str, str, dict], ...] = tuple(
    (SPEC[a].label, a, {}) for a in ARCHS) + (
    ("LSTM (chrono init)", "lstm", {"gate_init": "chrono"}),
    ("GRU (chrono init)", "gru", {"gate_init": "chrono"}),
    ("minGRU (chrono init)", "mingru", {"gate_init": "chrono"}),
)

TIMED_STEPS = 5          # training steps timed per model (the median is reported)
TIMED_BATCH = 16


def _carry(summary: dict, arch: str) -> tuple[float, float]:
    """(mean, most carrying unit) of the arch's recorded carry gain; NaN without one."""
    gate = SPEC[arch].carry
    if gate is None:
        return float("nan"), float("nan")
    return (float(summary.get(f"mean_{gate}", np.nan)),
            float(summary.get(f"mean_{gate}_max", np.nan)))


def _step_seconds(model, task, seed: int) -> float:
    """Median wall time of one forward + backward of the training path (``model(x)``)."""
    x, y = sample_batch(task, TIMED_BATCH, seed + 1)
    times = []
    for _ in range(TIMED_STEPS + 1):                 # the first call warms up
        t0 = time.perf_counter()
        task.loss(model(x), y).mean().backward()
        times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    return float(np.median(times[1:]))


@measured
def principle(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
              task: str = TASK, variants=VARIANTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, curves) at init for each of ``variants`` ((label, arch, options)).

    ``table``, one row per model: label, arch, fixed (True: the gain is fixed by
    construction; False: learned through a gate), path (the state measured), factor (the
    per-step factor of ‖∂p_{T−1}/∂p_t‖₂), jac_first (that norm at the largest lag T−1),
    carry_mean and carry_max (the recorded carry gain, NaN for the plain RNNs), reach and
    ratio (the probe's, of ‖∂ℓ/∂p_t‖ along the path), step_ms (one training step's forward and backward, median),
    answer and gives_up (the registry's words for what the numbers measure).

    ``curves``: label, arch, lag, jacobian_norm: the path's Jacobian norm against the lag.
    """
    rows, curves = [], []
    for label, arch, options in variants:
        model, t = untrained_model(arch, seq_len, hidden, seed, task=task, **options)
        x, y = sample_batch(t, JAC_BATCH, seed)
        path = SPEC[arch].path
        norms = spectral_norms(state_jacobians(model, x, ((path, path),))[(path, path)])
        T = len(norms)
        curves.append(pd.DataFrame({"label": label, "arch": arch,
                                    "lag": np.arange(T)[::-1], "jacobian_norm": norms}))
        xp, yp = sample_batch(t, PROBE_BATCH, seed + 1)
        summary, profile, _ = probe_summary(model, t, xp, yp)
        carry_mean, carry_max = _carry(summary, arch)
        # The reach along the path (the LSTM's and sLSTM's cell c, else h): sLSTM's h has no
        # gradient from later steps at init (its recurrent matrix R starts at 0).
        g = profile[profile["quantity"] == path].sort_values("t")["grad_norm"].to_numpy(float)
        rows.append(dict(
            label=label, arch=arch, fixed=SPEC[arch].fixed, path=path,
            factor=per_step_factor(norms), jac_first=float(norms[0]),
            carry_mean=carry_mean, carry_max=carry_max,
            reach=_reach_of(g), ratio=_ratio_of(g),
            step_ms=1e3 * _step_seconds(model, t, seed),
            answer=SPEC[arch].answer, gives_up=SPEC[arch].gives_up))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def longest_solved(results: pd.DataFrame) -> dict[str, tuple[int, int, int, int | None]]:
    """Per arch, from a sweep's results: (the longest T that some seed solved, seeds that
    solved it, seeds run at that T, the median steps to solve there), or (0, 0, n, None)
    when no T was solved. Read from the table only."""
    out = {}
    for arch, d in results.groupby("arch"):
        solved = d[d["solved"].astype(bool)]
        if solved.empty:
            out[arch] = (0, 0, int(d.groupby("seq_len").size().max()), None)
            continue
        T = int(solved["seq_len"].max())
        at = d[d["seq_len"] == T]
        steps = solved[solved["seq_len"] == T]["steps_to_solve"].astype(float)
        out[arch] = (T, int(at["solved"].astype(bool).sum()), len(at), int(steps.median()))
    return out


def reproductions(sweeps: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per later architecture: its paper's claim (the registry's words and source)
    and, for each task of ``sweeps`` ({task: results of a shipped sweep}), the longest T one
    layer solved here, as "T = 200 (2/2 seeds, median 275 steps)" or "none of T ≤ 200"."""
    rows = []
    for arch in MODERN:
        row = {"model": SPEC[arch].label, "paper's claim": SPEC[arch].claim}
        for task, results in sweeps.items():
            r = results[results["arch"] == arch]
            if r.empty:
                row[task] = "not measured"
                continue
            T, k, n, steps = longest_solved(r)[arch]
            row[task] = (f"T = {T} ({k}/{n} seeds, median {steps} steps)" if T else
                         f"none of T ≤ {int(r['seq_len'].max())}")
        rows.append(row)
    return pd.DataFrame(rows)

"""Gradient probes: how much of the loss gradient reaches each time step and gate.

For a batch of sequences b with per-sequence losses ℓ_b we report, for every
time step t and quantity q (h_t, c_t, or a gate's pre-activation),

    grad_norm(t, q) = mean_b ‖∂ℓ_b/∂q_{t,b}‖₂     (L2 over hidden units)

where the derivative is *total*: the gradient reaching q_t through every later
step. Because sequences in a batch do not interact, one backward pass of
Σ_b ℓ_b gives every ∂ℓ_b/∂q_{t,b} at once; the same pass yields the parameter
gradients of the mean loss (divided by the batch size), so a probed training
step costs one unrolled forward/backward, not two.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from core.cells import graph_nodes, stack_gradients
from core.models import SequenceModel
from core.tasks import Task

# A gradient counts as "reaching" a step while it is at least this fraction of
# the largest h-gradient in the sequence.
REACH_THRESHOLD = 1e-3

# The activations the summary averages: the carry path's gain of the LSTM (f), the GRU
# (z) and of every later architecture ("gain": see core.modern), and their most open unit.
CARRY_GATES = ("f", "z", "gain", "f_max", "z_max", "gain_max")

# Gate pre-activation blocks as the cells record them, split into named gates.
_GATE_BLOCKS = {"ifgo": ("i", "f", "g", "o"), "rz": ("r", "z"), "n": ("n",)}


@dataclass
class ProbeResult:
    """One probed batch.

    loss: the batch's mean loss (what training minimises).
    outputs: the model's outputs (detached).
    profile: tidy DataFrame (t, quantity, grad_norm).
    activations: tidy DataFrame (t, gate, mean) of mean gate activations.
    summary: named numbers (see :func:`summarise`).
    param_grads: gradients of the mean loss for ``model.parameters()``, in order.
    """

    loss: torch.Tensor
    outputs: torch.Tensor
    profile: pd.DataFrame
    activations: pd.DataFrame
    summary: dict
    param_grads: list[torch.Tensor | None] = field(default_factory=list)


def probe(model: SequenceModel, task: Task, x: torch.Tensor, y: torch.Tensor) -> ProbeResult:
    """Run the explicit unroll on (x, y) and measure every per-step gradient."""
    out, u = model.unroll(x, record=True)
    per_seq = task.loss(out, y)
    batch = per_seq.shape[0]
    params = [p for p in model.parameters()]
    blocks = list(u.states.items()) + list(u.gates.items())
    node_lists = [graph_nodes(rec) for _, rec in blocks]
    nodes = [v for lst in node_lists for v in lst]
    grads = torch.autograd.grad(per_seq.sum(), params + nodes, allow_unused=True)
    param_grads = [None if g is None else g / batch for g in grads[: len(params)]]

    steps = x.shape[1]
    names, rows = [], []
    offset = len(params)
    gate_names = set(getattr(model.recurrent, "gate_names", ()))
    n_states = len(u.states)
    for k, ((name, rec), lst) in enumerate(zip(blocks, node_lists)):
        g = stack_gradients(rec, list(grads[offset : offset + len(lst)]))  # (T, B, width)
        offset += len(lst)
        if k >= n_states and name in _GATE_BLOCKS:     # a gate block (sLSTM's state n is not)
            parts = _GATE_BLOCKS[name]
            chunks = g.chunk(len(parts), dim=2)
            named = [(q, c) for q, c in zip(parts, chunks) if q in gate_names]
        else:
            named = [(name, g)]
        for q, gq in named:
            names.append(q)
            rows.append(gq.detach().norm(dim=2).mean(dim=1))     # mean_b ‖∂ℓ_b/∂q_{t,b}‖₂
    norms = torch.stack(rows).double().cpu().numpy()             # (quantities, T)
    profile = long_table(norms, tuple(names), "quantity", "grad_norm")
    gates = tuple(u.activations)
    means = (torch.stack([u.activations[k] for k in gates]).double().cpu().numpy() if gates
             else np.zeros((0, steps)))
    activations = long_table(means, gates, "gate", "mean")
    by_name = dict(zip(names, norms))
    summary = summarise_arrays(by_name["h"], by_name.get("c", np.zeros(0)),
                               {q: m for q, m in zip(gates, means) if q in CARRY_GATES})
    return ProbeResult(
        loss=per_seq.detach().mean(),
        outputs=out.detach(),
        profile=profile,
        activations=activations,
        summary=summary,
        param_grads=param_grads,
    )


@functools.lru_cache(maxsize=64)
def _long_index(steps: int, names: tuple[str, ...]):
    """The (t, name) columns of a long table, name-major: built once per shape. (Turning
    the names into pandas' string column is most of a small probe's DataFrame cost;
    pandas' copy-on-write keeps the shared arrays from being modified.)"""
    t = np.tile(np.arange(steps), len(names))
    t.flags.writeable = False
    return t, pd.array(np.repeat(names, steps), dtype="str")


def long_table(values: np.ndarray, names: tuple[str, ...], key: str, value: str) -> pd.DataFrame:
    """(len(names), T) values → the tidy frame (t, ``key``, ``value``), in one construction
    (a frame per quantity and a concat cost a small probe more than its backward pass)."""
    steps = values.shape[1] if values.ndim == 2 else 0
    if not names:
        return pd.DataFrame({"t": [], key: [], value: []})
    t_col, n_col = _long_index(steps, names)
    return pd.DataFrame({"t": t_col, key: n_col, value: values.reshape(-1)}, copy=False)


def gradient_profile(
    model: SequenceModel, task: Task, x: torch.Tensor, y: torch.Tensor
) -> pd.DataFrame:
    """Tidy DataFrame (t, quantity, grad_norm): see the module docstring."""
    return probe(model, task, x, y).profile


def h_gradients(profile: pd.DataFrame) -> np.ndarray:
    """The h-gradient norms ordered by t."""
    h = profile[profile["quantity"] == "h"].sort_values("t")
    return h["grad_norm"].to_numpy(dtype=float)


def vanishing_ratio(profile: pd.DataFrame) -> float:
    """‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_{T−1}‖: how much of the last step's gradient reaches step 0.

    ≪ 1: vanished; ≈ 1: carried; ≫ 1: exploded. NaN when the last step has no gradient.
    """
    return _ratio_of(h_gradients(profile))


def gradient_reach(profile: pd.DataFrame, threshold: float = REACH_THRESHOLD) -> int:
    """How many steps back from the end the h-gradient stays ≥ threshold × the largest
    h-gradient at that step or later.

    Counting back from the last step: a vanishing gradient stops counting once it has
    shrunk below ``threshold`` of the largest gradient seen so far; an exploding one
    (growing backwards) never does, so its reach is all T steps, as it should be.
    Returns T when the gradient stays above the threshold all the way to step 0.
    """
    return _reach_of(h_gradients(profile), threshold)


# The definitions on plain arrays (h-gradient norms ordered by t), shared with the
# hand-written fast path of core.bptt, which has the arrays before any DataFrame.


def _ratio_of(g: np.ndarray) -> float:
    if len(g) == 0 or not np.isfinite(g[-1]) or g[-1] == 0:
        return float("nan")
    return float(g[0] / g[-1])


def _reach_of(g: np.ndarray, threshold: float = REACH_THRESHOLD) -> int:
    if len(g) == 0 or not np.all(np.isfinite(g)) or g.max() <= 0:
        return 0
    running_max = np.maximum.accumulate(g[::-1])[::-1]  # max of g[t:], for every t
    below = np.nonzero(g < threshold * running_max)[0]
    return int(len(g) - (below.max() + 1)) if len(below) else int(len(g))


def summarise(profile: pd.DataFrame, activations: pd.DataFrame) -> dict:
    """Per-profile numbers with names a reader understands."""
    c = profile[profile["quantity"] == "c"].sort_values("t")["grad_norm"].to_numpy(dtype=float)
    gate_means = {}
    for gate in CARRY_GATES:
        a = activations[activations["gate"] == gate]["mean"]
        if len(a):
            gate_means[gate] = a.to_numpy(dtype=float)
    return summarise_arrays(h_gradients(profile), c, gate_means)


def summarise_arrays(h: np.ndarray, c: np.ndarray, gate_means: dict[str, np.ndarray]) -> dict:
    """:func:`summarise` from arrays ordered by t: the h- and c-gradient norms (c empty
    when there is no cell) and the per-step mean activations of the f / z gates (and of
    their most open unit, ``f_max`` / ``z_max``)."""
    summary = {
        "vanishing_ratio": _ratio_of(h),
        "gradient_reach": _reach_of(h),
        "steps": int(len(h)),
        "h_grad_first": float(h[0]) if len(h) else float("nan"),
        "h_grad_last": float(h[-1]) if len(h) else float("nan"),
    }
    if len(c) and c[-1] > 0:
        # The LSTM's cell path alone: ‖∂ℓ/∂c_0‖ / ‖∂ℓ/∂c_{T−1}‖.
        summary["cell_ratio"] = float(c[0] / c[-1])
    for gate in CARRY_GATES:
        if gate in gate_means and len(gate_means[gate]):
            summary[f"mean_{gate}"] = float(np.mean(gate_means[gate]))
    return summary

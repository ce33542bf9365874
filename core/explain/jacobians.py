"""The Explain page's measuring instruments: Jacobians by autograd, their norms,
the gate values, the carry path's gain; and the models and batches they measure.

Notation (torch's conventions, see :mod:`core.cells`): T steps, t = 0 … T−1,
H hidden units, a_t a pre-activation, φ the RNN's non-linearity, σ the sigmoid.

Norms:

* a Jacobian ∂q_{T−1}/∂q_t (an H×H matrix per sequence) is measured by its
  spectral norm ‖·‖₂ (largest singular value: the most any direction is
  stretched), averaged over the sequences of the batch;
* a gradient vector ∂ℓ/∂q_t is measured by its L2 norm, averaged over the
  batch (that is :func:`core.probe.probe`'s ``grad_norm``).

Jacobians are taken with one backward pass: each sequence is repeated H times,
copy j seeds the backward pass with the unit vector e_j at q_{T−1}, so copy j
receives row j of ∂q_{T−1}/∂q_t for every t at once. Because
:meth:`core.cells.*Layer.unroll` routes every later use of q_t through its own
graph node, these are total derivatives (every path from q_t to q_{T−1}).

All of it is deterministic: the model comes from :func:`core.train.make_model`
(seeded under ``torch.random.fork_rng``) and the data from a private
``torch.Generator``.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import pandas as pd
import torch

from core.cells import graph_nodes, per_step, stack_gradients
from core.config import TrainConfig
from core.models import SequenceModel
from core.probe import probe
from core.tasks import Task
from core.train import make_model

# Defaults of every measurement on the page.
TASK = "recall"
SEQ_LEN = 100
HIDDEN = 32
SEED = 0
JAC_BATCH = 4      # sequences per Jacobian (each is repeated H times)
PROBE_BATCH = 16   # sequences per gradient probe
DATA_SEED_OFFSET = 7919  # the measurement batch is not any training batch of the same seed


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread (restored after): these models are tiny, and on a
    shared two-core machine a second thread makes them several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measured(fn):
    """Decorator: a public measurement, run on one thread."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_thread():
            return fn(*args, **kwargs)
    return wrapper


def untrained_model(
    arch: str, seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
    task: str = TASK, **options,
) -> tuple[SequenceModel, Task]:
    """(model, task): the model the Train page starts from with these settings (step 0)."""
    cfg = TrainConfig(task=task, seq_len=seq_len, arch=arch, hidden_size=hidden, seed=seed,
                      **options)
    t = cfg.make_task()
    return make_model(cfg, t), t


def sample_batch(task: Task, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of the task from a private generator."""
    return task.sample(batch, torch.Generator().manual_seed(seed + DATA_SEED_OFFSET))


def state_jacobians(model: SequenceModel, x: torch.Tensor,
                    pairs: tuple[tuple[str, str], ...] = (("h", "h"),)) -> dict:
    """{(q, w): J} with J[t, b] = ∂q_{T−1,b} / ∂w_{t,b}, shape (T, B, width of q, width of w).

    Each pair names a recorded state q ("h", or "c" for the LSTM, …) and what to
    differentiate by: the same state, or "x" (the input). Total derivatives by
    autograd: one forward pass of the repeated batch, one backward pass per state q
    (see the module docstring). float64 if the model and x are. A state's width is
    the recorded one (the LRU's complex h is recorded as 2N reals); a state computed
    by a scan (:class:`core.cells.Scanned`) is differentiated through its totals node.
    """
    B, T = x.shape[0], x.shape[1]
    with torch.no_grad():
        probe_u = model.recurrent.unroll(x[:1].detach(), record=True)
    for q, w in pairs:
        if w not in (q, "x") or q not in probe_u.states:
            raise ValueError(f"cannot take ∂{q}/∂{w} for {model.arch} "
                             f"(states {sorted(probe_u.states)})")
    width = {q: per_step(probe_u.states[q]).shape[-1] for q, _ in pairs}
    R = max(width.values())                            # copies per sequence
    xr = x.detach().repeat_interleave(R, 0)            # copy j of sequence b: row b·R + j
    want_x = any(w == "x" for _, w in pairs)
    if want_x:
        xr.requires_grad_(True)
    u = model.recurrent.unroll(xr, record=True)
    by_q: dict[str, list[str]] = {}
    for q, w in pairs:
        by_q.setdefault(q, []).append(w)
    out = {}
    for n, (q, ws) in enumerate(by_q.items()):
        W = width[q]
        last = per_step(u.states[q])[-1]                # (B·R, W)
        seed = torch.zeros(B * R, W, dtype=last.dtype)
        seed.view(B, R, W)[:, :W].copy_(torch.eye(W, dtype=last.dtype))  # copy j seeds e_j
        inputs = [[xr] if w == "x" else graph_nodes(u.states[w]) for w in ws]
        flat = [v for lst in inputs for v in lst]
        grads = list(torch.autograd.grad(last, flat, grad_outputs=seed, allow_unused=True,
                                         retain_graph=n < len(by_q) - 1))
        for w, lst in zip(ws, inputs):                 # one backward pass serves every w of q
            g, grads = grads[:len(lst)], grads[len(lst):]
            if w == "x":
                g = g[0] if g[0] is not None else torch.zeros_like(xr)
                out[(q, w)] = g.view(B, R, T, -1)[:, :W].permute(2, 0, 1, 3).detach()
            else:
                g = stack_gradients(u.states[w], g)      # (T, B·R, W)
                out[(q, w)] = g.view(T, B, R, W)[:, :, :W].detach()
    return out


def spectral_norms(J: torch.Tensor) -> np.ndarray:
    """Mean over the batch of ‖J[t, b]‖₂ (largest singular value), one value per t."""
    return torch.linalg.matrix_norm(J.double(), ord=2).mean(dim=1).numpy()


def gate_values(model: SequenceModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gates as tensors (T, B, H) from the explicit unroll: LSTM i f g o, GRU r z."""
    H = model.recurrent.hidden_size
    with torch.no_grad():
        u = model.recurrent.unroll(x, record=True)
    out: dict[str, torch.Tensor] = {}
    if "ifgo" in u.gates:
        pre = torch.stack(u.gates["ifgo"])
        out["i"] = torch.sigmoid(pre[..., :H])
        out["f"] = torch.sigmoid(pre[..., H:2 * H])
        out["g"] = torch.tanh(pre[..., 2 * H:3 * H])
        out["o"] = torch.sigmoid(pre[..., 3 * H:])
        out["pre_ifo"] = torch.cat([pre[..., :2 * H], pre[..., 3 * H:]], dim=-1)
        if getattr(model.recurrent, "no_forget_gate", False):
            out["f"] = torch.ones_like(out["f"])
        elif getattr(model.recurrent, "coupled_gates", False):
            out["i"] = 1.0 - out["f"]
    if "rz" in u.gates:
        rz = torch.sigmoid(torch.stack(u.gates["rz"]))
        out["r"], out["z"] = rz[..., :H], rz[..., H:]
    out["h"] = per_step(u.states["h"])
    return out


def direct_path_gain(gate: torch.Tensor) -> np.ndarray:
    """‖∏_{j=t+1}^{T−1} diag(gate_j)‖₂ = max over units of ∏ gate_{j,u}, mean over batch.

    ``gate`` is (T, B, H): the LSTM's f or the GRU's z. This is the Jacobian of the
    carry path alone (c_{t} = f_t ⊙ c_{t−1} + …, or h_t = z_t ⊙ h_{t−1} + …), every
    term through the other gates left out. Index t: gain from step t to T−1.
    """
    logs = torch.log(gate.double().clamp_min(1e-300))
    T = logs.shape[0]
    # suffix[t] = Σ_{j>t} log gate_j  (suffix[T−1] = 0: the identity)
    suffix = torch.zeros_like(logs)
    if T > 1:
        suffix[:-1] = torch.flip(torch.cumsum(torch.flip(logs[1:], [0]), 0), [0])
    return torch.exp(suffix.max(dim=2).values).mean(dim=1).numpy()


def per_step_factor(norms: np.ndarray) -> float:
    """The geometric-mean shrink per step of a Jacobian-norm curve indexed by t:
    (‖J at lag L‖ / ‖J at lag 1‖)^(1/(L−1)) with L = T−1 (the largest lag)."""
    n = np.asarray(norms, dtype=float)
    if len(n) < 3 or not (n[0] > 0 and n[-2] > 0):
        return float("nan")
    return float((n[0] / n[-2]) ** (1.0 / (len(n) - 2)))


def probe_summary(model: SequenceModel, task: Task, x, y) -> tuple[dict, pd.DataFrame, list]:
    """(summary, profile, parameter gradients) of the reference probe on this batch."""
    r = probe(model, task, x, y)
    return r.summary, r.profile, r.param_grads

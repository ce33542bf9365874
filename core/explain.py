"""Measurements behind the Explain page: why LSTM and GRU gradients survive.

Every number here is measured by autograd on a real model (the model the Train
page would build from the same settings, before its first step, or a run's
saved weights); nothing is simulated, fitted or hard-coded. Columns called
``comparison`` or ``direct_path`` are *also* computed from measured tensors
(gate values, weights), and are labelled as what they are.

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

All functions are deterministic: the model comes from
:func:`core.train.make_model` (seeded under ``torch.random.fork_rng``) and the
data from a private ``torch.Generator``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.config import TrainConfig
from core.models import SequenceModel
from core.narrate import sci
from core.probe import probe
from core.runs import RunData, RunStore
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

SATURATION_BIAS = 5.0     # σ(±5) = 0.9933 / 0.0067: a saturated gate
SATURATION_SCALE = 5.0    # RNN weights and biases × 5: many tanh units saturate (see table)
GRU_Z_BIAS = 3.0          # σ(3) = 0.95: a GRU update gate biased towards "carry"

# Verdicts the page shows, in this order of strength.
VERDICTS = ("Confirmed", "Half-true", "Refuted")

# Re-measuring a run's saved weights is skipped above this T·H² (≈ 1 s per model here).
TRAINED_BUDGET = 1_000_000


# ---------------------------------------------------------------- building blocks


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


def _measured(fn):
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
    """{(q, w): J} with J[t, b] = ∂q_{T−1,b} / ∂w_{t,b}, shape (T, B, H, width of w).

    Each pair names a recorded state q ("h", or "c" for the LSTM) and what to
    differentiate by: the same state, or "x" (the input). Total derivatives by
    autograd: one forward pass of the repeated batch, one backward pass per state q
    (see the module docstring). float64 if the model and x are.
    """
    B, T = x.shape[0], x.shape[1]
    H = model.recurrent.hidden_size
    xr = x.detach().repeat_interleave(H, 0)            # copy j of sequence b: row b·H + j
    want_x = any(w == "x" for _, w in pairs)
    if want_x:
        xr.requires_grad_(True)
    u = model.recurrent.unroll(xr, record=True)
    by_q: dict[str, list[str]] = {}
    for q, w in pairs:
        if w not in (q, "x") or q not in u.states:
            raise ValueError(f"cannot take ∂{q}/∂{w} for {model.arch} (states {sorted(u.states)})")
        by_q.setdefault(q, []).append(w)
    out = {}
    for n, (q, ws) in enumerate(by_q.items()):
        last = u.states[q][-1]
        seed = torch.eye(H, dtype=last.dtype).repeat(B, 1)  # copy j seeds e_j
        inputs = [v for w in ws for v in ([xr] if w == "x" else u.states[w])]
        grads = torch.autograd.grad(last, inputs, grad_outputs=seed, allow_unused=True,
                                    retain_graph=n < len(by_q) - 1)
        grads = [g if g is not None else torch.zeros_like(v) for g, v in zip(grads, inputs)]
        for w in ws:                      # one backward pass serves every w of this q
            if w == "x":
                g = grads.pop(0)
                out[(q, w)] = g.view(B, H, T, -1).permute(2, 0, 1, 3).detach()
            else:
                rows, grads = grads[:T], grads[T:]
                out[(q, w)] = torch.stack(rows).view(T, B, H, H).detach()
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
    out["h"] = torch.stack(u.states["h"])
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


def _probe_summary(model: SequenceModel, task: Task, x, y) -> tuple[dict, pd.DataFrame, list]:
    r = probe(model, task, x, y)
    return r.summary, r.profile, r.param_grads


# ---------------------------------------------------------------- 1. the mechanisms


def _curves(model: SequenceModel, x: torch.Tensor,
            with_x: bool = False) -> tuple[pd.DataFrame, dict]:
    """The Jacobian curve frame of :func:`jacobian_norms` for this model and batch, and a
    dict with the raw extras: ``gates`` (see :func:`gate_values`) and, if ``with_x``,
    ``dx`` = mean over batch of ‖∂h_{T−1}/∂x_t‖₂ per t."""
    arch = model.arch
    gates = gate_values(model, x)
    T = x.shape[1]
    t = np.arange(T)
    quantities = ("h", "c") if arch == "lstm" else ("h",)
    pairs = tuple((q, q) for q in quantities) + ((("h", "x"),) if with_x else ())
    jac = state_jacobians(model, x, pairs)
    frames = []
    for q in quantities:
        direct = np.full(T, np.nan)
        bound = np.full(T, np.nan)
        if arch == "lstm" and q == "c":
            direct = direct_path_gain(gates["f"])
        elif arch == "gru":
            direct = direct_path_gain(gates["z"])
        elif arch.startswith("rnn"):
            w = torch.linalg.matrix_norm(model.recurrent.weight_hh_l0.detach().double(), ord=2)
            bound = float(w) ** (T - 1 - t).astype(float)
        frames.append(pd.DataFrame({"t": t, "lag": T - 1 - t, "quantity": q,
                                    "jacobian_norm": spectral_norms(jac[(q, q)]),
                                    "direct_path": direct, "bound": bound}))
    extras = {"gates": gates}
    if with_x:
        extras["dx"] = spectral_norms(jac[("h", "x")])
    return pd.concat(frames, ignore_index=True), extras


@_measured
def jacobian_norms(arch: str, seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
                   batch: int = JAC_BATCH, **options) -> pd.DataFrame:
    """Untrained model, a batch of the recall task: how ∂q_{T−1}/∂q_t shrinks with the lag.

    Tidy frame, one row per (quantity, t):

    * ``t``, ``lag`` = T−1−t;
    * ``jacobian_norm``: mean over the batch of the spectral norm ‖∂q_{T−1}/∂q_t‖₂
      (q = h for every arch, and also the LSTM's cell c), by autograd. For the LSTM,
      ∂h_{T−1}/∂h_t holds c_t fixed (h_t's own paths), while ∂c_{T−1}/∂c_t lets
      h_t = o_t ⊙ tanh(c_t) follow c_t (every path from the cell at step t);
    * ``direct_path``: LSTM c: ‖∏_{j>t} diag(f_j)‖₂ (the cell path alone);
      GRU h: ‖∏_{j>t} diag(z_j)‖₂ (the carry path alone); from the measured gates;
    * ``bound``: RNN h: (γ‖W_hh‖₂)^lag with γ = max φ′ = 1 (tanh and relu), the
      textbook bound, from the measured weights.
    """
    model, task = untrained_model(arch, seq_len, hidden, seed, **options)
    x, _ = sample_batch(task, batch, seed)
    return _curves(model, x)[0]


def _curve(df: pd.DataFrame, quantity: str, col: str = "jacobian_norm") -> np.ndarray:
    return df[df["quantity"] == quantity].sort_values("t")[col].to_numpy(dtype=float)


def _probe_batch(model: SequenceModel, task: Task, seed: int) -> dict:
    x, y = sample_batch(task, PROBE_BATCH, seed)
    return _probe_summary(model, task, x, y)[0]


@_measured
def rnn_facts(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
              arch: str = "rnn_tanh") -> dict:
    """Vanilla RNN at init: ∂h_t/∂h_k = ∏_{j=k+1}^{t} diag(φ′(a_j)) W_hh.

    Returns the Jacobian curve (``curve``, see :func:`jacobian_norms`) and:
    ``jac_full`` ‖∂h_{T−1}/∂h_0‖₂; ``jac_one_step`` ‖∂h_{T−1}/∂h_{T−2}‖₂;
    ``per_step`` the geometric-mean shrink per step; ``w_norm`` ‖W_hh‖₂ and
    ``w_radius`` its spectral radius (largest |eigenvalue|); ``mean_phi_prime`` the
    mean of φ′(a_t) (tanh: 1 − h_t²; relu: the fraction of active units) over steps,
    units and batch; ``bound_full`` ‖W_hh‖₂^(T−1), the bound's value; ``dep_x0`` and
    ``dep_xlast``: ‖∂h_{T−1}/∂x_0‖₂ and ‖∂h_{T−1}/∂x_{T−1}‖₂ (how much the last state
    depends on the first and on the last input); the probe's ``vanishing_ratio``
    (‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_{T−1}‖) and ``gradient_reach``.
    """
    model, task = untrained_model(arch, seq_len, hidden, seed)
    x, _ = sample_batch(task, JAC_BATCH, seed)
    curve, extras = _curves(model, x, with_x=True)
    h = extras["gates"]["h"].double()
    w = model.recurrent.weight_hh_l0.detach().double()
    summary = _probe_batch(model, task, seed)
    jac = _curve(curve, "h")
    return {
        "curve": curve,
        "jac_full": float(jac[0]),
        "jac_one_step": float(jac[-2]),
        "per_step": per_step_factor(jac),
        "w_norm": float(torch.linalg.matrix_norm(w, ord=2)),
        "w_radius": float(torch.linalg.eigvals(w).abs().max()),
        "mean_phi_prime": float((1 - h ** 2).mean()) if arch == "rnn_tanh"
        else float((h > 0).double().mean()),
        "bound_full": float(_curve(curve, "h", "bound")[0]),
        "dep_x0": float(extras["dx"][0]),
        "dep_xlast": float(extras["dx"][-1]),
        "vanishing_ratio": summary["vanishing_ratio"],
        "gradient_reach": summary["gradient_reach"],
        "steps": int(x.shape[1]),
    }


@_measured
def lstm_facts(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED) -> dict:
    """LSTM at init: ∂c_t/∂c_{t−1} = diag(f_t) + (terms through h_{t−1} in the gates).

    ``curve`` (h and c, see :func:`jacobian_norms`) and: ``cell_full``
    ‖∂c_{T−1}/∂c_0‖₂ (all paths); ``cell_direct`` ‖∏ diag(f)‖₂ over the same span
    (the cell path alone); ``cell_one_step`` ‖∂c_{T−1}/∂c_{T−2}‖₂ and
    ``f_last_max`` ‖diag(f_{T−1})‖₂ = max f at that step (mean over batch);
    ``h_full`` ‖∂h_{T−1}/∂h_0‖₂ (c held fixed); ``per_step_cell``; ``mean_f``;
    ``mean_f_pow`` mean_f^(T−1) (a comparison: what a uniform gate would give);
    ``dep_x0`` ‖∂h_{T−1}/∂x_0‖₂; the probe's ``vanishing_ratio``, ``cell_ratio``
    (‖∂ℓ/∂c_0‖ / ‖∂ℓ/∂c_{T−1}‖) and ``gradient_reach``.
    """
    model, task = untrained_model("lstm", seq_len, hidden, seed)
    x, _ = sample_batch(task, JAC_BATCH, seed)
    curve, extras = _curves(model, x, with_x=True)
    f = extras["gates"]["f"].double()
    summary = _probe_batch(model, task, seed)
    c, T = _curve(curve, "c"), x.shape[1]
    mean_f = float(f.mean())
    return {
        "curve": curve,
        "cell_full": float(c[0]),
        "cell_direct": float(_curve(curve, "c", "direct_path")[0]),
        "cell_one_step": float(c[-2]),
        "f_last_max": float(f[-1].max(dim=1).values.mean()),
        "h_full": float(_curve(curve, "h")[0]),
        "per_step_cell": per_step_factor(c),
        "mean_f": mean_f,
        "mean_f_pow": mean_f ** (T - 1),
        "dep_x0": float(extras["dx"][0]),
        "vanishing_ratio": summary["vanishing_ratio"],
        "cell_ratio": summary.get("cell_ratio", float("nan")),
        "gradient_reach": summary["gradient_reach"],
        "steps": int(T),
    }


def _bias_update_gate(model: SequenceModel, bias: float) -> None:
    """Add ``bias`` to the GRU's update-gate input bias b_iz (rows H..2H, order r z n)."""
    H = model.recurrent.hidden_size
    with torch.no_grad():
        model.recurrent.bias_ih_l0[H:2 * H] += bias


@_measured
def gru_facts(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
              z_bias: float = GRU_Z_BIAS) -> dict:
    """GRU at init: h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}, so ∂h_t/∂h_{t−1} = diag(z_t) + ….

    For torch's default init and for the same weights with ``z_bias`` added to the
    update gate's bias (z ≈ σ(z_bias)): ``*_full`` ‖∂h_{T−1}/∂h_0‖₂ (all paths),
    ``*_direct`` ‖∏ diag(z)‖₂ (the carry path alone), ``*_mean_z``, ``*_reach`` and
    ``*_ratio`` (the probe's gradient reach and vanishing ratio), with prefixes
    ``default`` and ``biased``; ``curve`` the default model's Jacobian curve and
    ``biased_curve`` the biased one's.
    """
    out: dict = {"z_bias": z_bias}
    for prefix, extra in (("default", 0.0), ("biased", z_bias)):
        model, task = untrained_model("gru", seq_len, hidden, seed)
        if extra:
            _bias_update_gate(model, extra)
        x, _ = sample_batch(task, JAC_BATCH, seed)
        curve, extras = _curves(model, x)
        z = extras["gates"]["z"].double()
        summary = _probe_batch(model, task, seed)
        out.update({
            f"{prefix}_full": float(_curve(curve, "h")[0]),
            f"{prefix}_direct": float(_curve(curve, "h", "direct_path")[0]),
            f"{prefix}_mean_z": float(z.mean()),
            f"{prefix}_reach": summary["gradient_reach"],
            f"{prefix}_ratio": summary["vanishing_ratio"],
        })
        out["biased_curve" if extra else "curve"] = curve
        out["steps"] = int(x.shape[1])
    return out


def decay_curves(rnn: dict, lstm: dict, gru: dict) -> pd.DataFrame:
    """One tidy frame for the chart: (lag, series, norm, log10_norm), lag = steps back
    from the last step; norm = ‖∂q_{T−1}/∂q_t‖₂ for the state q the series names (h or c),
    from the curves of :func:`rnn_facts`, :func:`lstm_facts`, :func:`gru_facts`, except
    the "path alone" series: ‖∏ diag(f)‖₂ from the measured gate values."""
    parts = [
        ("RNN tanh: h", rnn["curve"], "h", "jacobian_norm"),
        ("LSTM: c, all paths", lstm["curve"], "c", "jacobian_norm"),
        ("LSTM: c, f path alone", lstm["curve"], "c", "direct_path"),
        ("GRU: h", gru["curve"], "h", "jacobian_norm"),
        (f"GRU, z bias +{gru['z_bias']:g}: h", gru["biased_curve"], "h", "jacobian_norm"),
    ]
    frames = []
    for label, df, q, col in parts:
        d = df[df["quantity"] == q]
        frames.append(pd.DataFrame({"lag": d["lag"].to_numpy(), "series": label,
                                    "norm": d[col].to_numpy(dtype=float)}))
    out = pd.concat(frames, ignore_index=True)
    with np.errstate(divide="ignore"):
        out["log10_norm"] = np.log10(out["norm"].clip(lower=1e-300))
    return out.sort_values(["series", "lag"], ignore_index=True)


# ---------------------------------------------------------------- sentences that read the numbers


def rnn_sentence(r: dict) -> str:
    """What :func:`rnn_facts` measured, in words; every clause follows the numbers."""
    L = r["steps"] - 1
    text = (f"Measured: over {L} steps the Jacobian's norm is **{sci(r['jac_full'])}**; it "
            f"{'shrinks' if r['per_step'] < 1 else 'grows'} by × {r['per_step']:.3g} per step on "
            "average, a straight line on the log axis below. ")
    if r["w_norm"] > 1:
        text += (f"The textbook bound does not explain it: ‖W_hh‖₂ = {r['w_norm']:.3g} > 1, so "
                 f"the bound allows growth to {sci(r['bound_full'])}")
    else:
        text += (f"Here ‖W_hh‖₂ = {r['w_norm']:.3g} ≤ 1, so the bound does promise decay, but "
                 f"only to {sci(r['bound_full'])}: the measured decay is much faster")
    if r["jac_one_step"] > 1:
        text += (f", and a single step can even stretch (‖∂h_{L}/∂h_{L - 1}‖₂ = "
                 f"{r['jac_one_step']:.3g})")
    text += (f". Powers of W_hh alone shrink like its spectral radius, ρ(W_hh) = "
             f"{r['w_radius']:.3g} per step, and tanh′ ≤ 1 (mean {r['mean_phi_prime']:.3g}) scales "
             f"each factor's rows down further. The loss gradient reaching h₀ is "
             f"{sci(r['vanishing_ratio'])} of the one at h_{L}.")
    return text


def lstm_sentence(m: dict) -> str:
    """What :func:`lstm_facts` measured at initialisation, in words."""
    L = m["steps"] - 1
    vanished = m["cell_ratio"] < 1e-3
    text = ("**At initialisation the LSTM's gradient vanishes too.** " if vanished else "")
    text += (f"torch's default init puts every gate near σ(0) = 0.5 (measured mean f = "
             f"{m['mean_f']:.3f}), so the cell path scales the gradient by about "
             f"{m['mean_f']:.2f} at every step: ‖∂c_{L}/∂c_0‖₂ = {sci(m['cell_full'])} over {L} "
             f"steps, and the loss gradient reaching c₀ is {sci(m['cell_ratio'])} of the one at "
             f"c_{L} (for h: {sci(m['vanishing_ratio'])}). The last step alone scales it by "
             f"‖∂c_{L}/∂c_{L - 1}‖₂ = {m['cell_one_step']:.3g}. What the LSTM has and the RNN "
             "lacks is a **knob**: the gain of the cell path is f, a number the network sets "
             "with its forget-gate bias and weights. The same model with only the forget gate "
             "changed:")
    return text


def forget_sentence(table: pd.DataFrame) -> str:
    """What :func:`forget_gate_gain` measured, in words."""
    t = table.set_index("variant")
    names = list(FORGET_VARIANTS)
    ratios = [t.loc[n, "cell_ratio"] for n in names[:3]]
    monotone = ratios[0] < ratios[1] < ratios[2]
    text = ("The measured cell ratio follows the forget gate: the more open f, the further the "
            "gradient reaches. " if monotone else
            "Here the measured cell ratio does not simply follow the mean forget gate. ")
    none = t.loc[names[3], "cell_ratio"]
    if none > 1:
        text += (f"The terms through the gates add gradient of their own (with f ≡ 1 the ratio "
                 f"is {sci(none)}, above 1), but the diagonal f term decides whether anything "
                 "survives a long lag. ")
    text += "Training can move f, and that is what can save the LSTM:"
    return text


def gru_sentence(g: dict) -> str:
    """What :func:`gru_facts` measured, in words."""
    L, T = g["steps"] - 1, g["steps"]
    fate = "vanishes like the others" if g["default_full"] < 1e-3 else "shrinks"
    return (f"At torch's default init z ≈ {g['default_mean_z']:.2f} and the GRU's gradient "
            f"{fate} ({sci(g['default_full'])} over {L} steps, reach {g['default_reach']} of "
            f"{T}). Push z towards 1 (update-gate bias +{g['z_bias']:g}: mean z = "
            f"{g['biased_mean_z']:.3f}) and the same weights give {sci(g['biased_full'])}, "
            f"reach {g['biased_reach']} of {T}.")


def trained_sentence(tv: dict) -> str:
    """What :func:`trained_vs_init` measured, in words (LSTM f or GRU z)."""
    g, a, b = tv["gate"], tv["init"], tv["trained"]
    if b["gate_max_unit"] > a["gate_max_unit"] + 0.1 and b["reach"] > a["reach"]:
        k = b["units_open"]
        who = (f"of {k} of its {b['units']} units (mean {g} > 0.9)" if k
               else "of its most open unit")
        return (f"Training **opened the gate {who}**: the most open unit averages "
                f"{g} = {b['gate_max_unit']:.3f}, against {a['gate_max_unit']:.3f} at step 0, "
                f"while the mean over all units went from {a['gate_mean']:.3f} to "
                f"{b['gate_mean']:.3f}. The carry path alone, through its best unit, keeps "
                f"{sci(b['carry_gain'])} of the gradient over the whole sequence (at step 0: "
                f"{sci(a['carry_gain'])}), and the gradient reach grew from {a['reach']} to "
                f"{b['reach']} steps.")
    return (f"In this run the gate has not opened much (most open unit {g} = "
            f"{b['gate_max_unit']:.3f}, {a['gate_max_unit']:.3f} at step 0); the gradient reach "
            f"went from {a['reach']} to {b['reach']} steps.")


# ---------------------------------------------------------------- 2. the forget gate's gain

FORGET_VARIANTS: dict[str, dict] = {
    "default init (f ≈ σ(0) = 0.5)": {},
    "forget_bias = 1 (f ≈ 0.73)": {"forget_bias": 1.0},
    "forget_bias = 3 (f ≈ 0.95)": {"forget_bias": 3.0},
    "no forget gate (f ≡ 1)": {"no_forget_gate": True},
}


@_measured
def forget_gate_gain(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
                     batch: int = PROBE_BATCH) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LSTM at init, four forget-gate settings, one batch of the recall task.

    Returns (table, profiles). ``table`` has one row per variant: ``variant``,
    ``mean_f`` (measured), ``comparison_f_pow`` = mean_f^(T−1) (what a uniform gate
    would do to the cell path: a comparison, not a measurement of the gradient),
    ``cell_ratio`` = ‖∂ℓ/∂c_0‖ / ‖∂ℓ/∂c_{T−1}‖ (measured by the probe),
    ``vanishing_ratio`` (the same for h) and ``gradient_reach``. ``profiles`` is the
    probes' gradient profiles with ``step`` = 0 and ``run`` = the variant, ready for
    :func:`core.charts.gate_heatmap` with ``by="run"``.
    """
    rows, profiles = [], []
    for label, options in FORGET_VARIANTS.items():
        model, task = untrained_model("lstm", seq_len, hidden, seed, **options)
        x, y = sample_batch(task, batch, seed)
        s, profile, _ = _probe_summary(model, task, x, y)
        T = x.shape[1]
        rows.append({
            "variant": label, "mean_f": s["mean_f"], "comparison_f_pow": s["mean_f"] ** (T - 1),
            "cell_ratio": s.get("cell_ratio", float("nan")),
            "vanishing_ratio": s["vanishing_ratio"], "gradient_reach": s["gradient_reach"],
        })
        profiles.append(profile.assign(step=0, run=label))
    return pd.DataFrame(rows), pd.concat(profiles, ignore_index=True)


# ---------------------------------------------------------------- 3. saturation


def _saturate(model: SequenceModel, kind: str) -> None:
    rec = model.recurrent
    H = rec.hidden_size
    with torch.no_grad():
        if kind == "gates_shut":              # b_i, b_f, b_o − 5: σ ≈ 0.007
            for k in (0, 1, 3):
                rec.bias_ih_l0[k * H:(k + 1) * H] -= SATURATION_BIAS
        elif kind == "forget_open":           # b_f + 5: f ≈ 0.993
            rec.bias_ih_l0[H:2 * H] += SATURATION_BIAS
        elif kind == "scaled":                # every recurrent weight and bias × 5
            for p in rec.parameters():
                p.mul_(SATURATION_SCALE)


SATURATION_VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("LSTM, default init (gates near σ(0) = 0.5)", "lstm", ""),
    ("LSTM, gates i f o saturated shut (biases −5)", "lstm", "gates_shut"),
    ("LSTM, forget gate saturated open (bias +5)", "lstm", "forget_open"),
    ("RNN tanh, default init", "rnn_tanh", ""),
    ("RNN tanh, weights and biases × 5 (tanh partly saturated)", "rnn_tanh", "scaled"),
)


@_measured
def saturation_effect(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
                      batch: int = PROBE_BATCH) -> pd.DataFrame:
    """The claim "bounded sigmoid/tanh outputs keep gradients from shrinking (or growing)".

    σ′(a) = σ(a)(1 − σ(a)) ≤ 1/4 and tanh′(a) = 1 − tanh²(a) ≤ 1, both → 0 when
    |a| is large (saturation), whatever the output's bound. One row per variant of
    ``SATURATION_VARIANTS``: ``variant``, ``arch``; ``mean_derivative``: mean σ′ over
    the LSTM's i, f, o gates, or mean tanh′ over the RNN's units; ``saturated``:
    the fraction of those units whose derivative is < 0.01 (|a| ≳ 4.6 for σ, ≳ 3 for
    tanh); ``mean_f``; probe's ``vanishing_ratio`` (‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_{T−1}‖),
    ``gradient_reach``; ``grad_w_hh``: ‖∂L/∂W_hh‖ (Frobenius; the gradient that
    trains the recurrent weights, gates included).
    """
    rows = []
    for label, arch, kind in SATURATION_VARIANTS:
        model, task = untrained_model(arch, seq_len, hidden, seed)
        _saturate(model, kind)
        x, y = sample_batch(task, batch, seed)
        g = gate_values(model, x)
        if arch == "lstm":
            s = torch.sigmoid(g["pre_ifo"].double())
            deriv = s * (1 - s)
        else:
            deriv = 1 - g["h"].double() ** 2
        summary, _, grads = _probe_summary(model, task, x, y)
        names = [n for n, _ in model.named_parameters()]
        gw = grads[names.index("recurrent.weight_hh_l0")]
        rows.append({
            "variant": label, "arch": arch,
            "mean_derivative": float(deriv.mean()),
            "saturated": float((deriv < 0.01).double().mean()),
            "mean_f": summary.get("mean_f", float("nan")),
            "vanishing_ratio": summary["vanishing_ratio"],
            "gradient_reach": summary["gradient_reach"],
            "grad_w_hh": float(gw.norm()) if gw is not None else float("nan"),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- 4. the learner's run


def probed_runs(store: RunStore) -> list[tuple[str, str]]:
    """(run_id, arch) of the store's runs that have at least one gradient probe, newest
    first (a run's status carries ``gradient_reach`` once its first probe is recorded)."""
    runs = store.list()
    if runs.empty:
        return []
    runs = runs.sort_values("created", ascending=False, kind="stable")
    out = []
    for r in runs.itertuples():
        if store.read_status(r.run_id).get("gradient_reach") is not None:
            out.append((r.run_id, r.arch))
    return out


def pick_run(store: RunStore, prefer: tuple[str, ...] = ("lstm", "gru")) -> str | None:
    """The newest probed run whose arch is the first of ``prefer`` that has one; else the
    newest probed run; None if there is none (see :func:`probed_runs`)."""
    probed = probed_runs(store)
    for arch in prefer:
        for run_id, a in probed:
            if a == arch:
                return run_id
    return probed[0][0] if probed else None


def _gate_of(arch: str) -> str | None:
    return {"lstm": "f", "gru": "z"}.get(arch)


def run_story(data: RunData) -> dict:
    """The learner's run, first probe vs latest probe, from its stored tables.

    ``first_step``/``last_step``; ``steps`` the probed sequence's length (the task's
    steps); ``reach_*`` and ``ratio_*`` (gradient reach and vanishing ratio); ``gate``
    ("f" LSTM, "z" GRU, or None) and ``gate_*`` its activation averaged over time
    steps, batch and units; ``cell_*`` the LSTM's
    ‖∂ℓ/∂c_0‖ / ‖∂ℓ/∂c_{T−1}‖; ``probes`` how many probes. Empty dict: no probe yet.
    """
    sm = data.table("summaries").sort_values("step")
    if sm.empty:
        return {}
    cfg = data.config
    arch = cfg.arch
    gate = _gate_of(arch)
    gates, probes = data.table("gates"), data.table("probes")
    first, last = sm.iloc[0], sm.iloc[-1]
    out = {"arch": arch, "label": cfg.label(), "task": cfg.task, "seq_len": int(cfg.seq_len),
           "gate": gate, "probes": int(len(sm)), "steps": int(cfg.make_task().steps)}
    for name, row in (("first", first), ("last", last)):
        step = int(row["step"])
        out[f"{name}_step"] = step
        out[f"reach_{name}"] = int(row["gradient_reach"])
        out[f"ratio_{name}"] = float(row["vanishing_ratio"])
        if gate is not None:
            g = gates[(gates["step"] == step) & (gates["gate"] == gate)]["mean"]
            out[f"gate_{name}"] = float(g.mean()) if len(g) else float("nan")
        c = probes[(probes["step"] == step) & (probes["quantity"] == "c")].sort_values("t")
        if len(c) and c["grad_norm"].iloc[-1] > 0:
            out[f"cell_{name}"] = float(c["grad_norm"].iloc[0] / c["grad_norm"].iloc[-1])
    return out


def _unit_gate_story(model: SequenceModel, task: Task, x, y, gate: str | None) -> dict:
    summary, _, _ = _probe_summary(model, task, x, y)
    out = {"reach": summary["gradient_reach"], "ratio": summary["vanishing_ratio"],
           "cell_ratio": summary.get("cell_ratio", float("nan"))}
    if gate is not None:
        g = gate_values(model, x)[gate]                    # (T, B, H)
        per_unit = g.double().mean(dim=(0, 1))
        out.update({
            "gate_mean": float(per_unit.mean()),
            "gate_max_unit": float(per_unit.max()),
            "units_open": int((per_unit > 0.9).sum()),
            "units": int(per_unit.numel()),
            "carry_gain": float(direct_path_gain(g)[0]),
        })
    return out


@_measured
def trained_vs_init(data: RunData, weights: str | Path, batch: int = PROBE_BATCH) -> dict:
    """The run's saved weights against the same model at its step 0, on one batch.

    For both (keys ``init`` and ``trained``): the probe's ``reach``, ``ratio``,
    ``cell_ratio``; for LSTM/GRU the gate (f / z) per unit, averaged over time and
    batch: ``gate_mean`` (all units), ``gate_max_unit`` (the most open unit),
    ``units_open`` (units with mean > 0.9, of ``units``), and ``carry_gain``:
    ‖∏_{t≥1} diag(gate_t)‖₂ (the carry path alone from step 0 to T−1). ``skipped``
    with a reason instead, when the model is too large to re-measure on the page.
    """
    from safetensors.torch import load_file

    cfg = data.config
    if cfg.seq_len * cfg.hidden_size ** 2 > TRAINED_BUDGET:
        return {"skipped": (f"T·H² = {cfg.seq_len}·{cfg.hidden_size}² is above the page's "
                            f"budget for re-measuring ({TRAINED_BUDGET:,}).")}
    task = cfg.make_task()
    x, y = sample_batch(task, batch, cfg.seed)
    init = make_model(cfg, task)
    trained = make_model(cfg, task)
    try:
        trained.load_state_dict(load_file(str(weights)))
    except Exception as e:  # noqa: BLE001 - safetensors and torch raise many types
        return {"skipped": f"the saved weights could not be read ({type(e).__name__}: {e})."}
    gate = _gate_of(cfg.arch)
    return {"gate": gate, "init": _unit_gate_story(init, task, x, y, gate),
            "trained": _unit_gate_story(trained, task, x, y, gate)}


# ---------------------------------------------------------------- 5. the three answers


@dataclass(frozen=True)
class Verdict:
    answer: str          # "Answer 1" …
    claim: str           # a short quote of the claim
    verdict: str         # one of VERDICTS
    evidence: str        # the measurement, in words with its numbers
    parts: tuple = ()    # sub-claims: (claim, verdict, evidence) each


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _ratio_words(r: float) -> str:
    """'the gradient reaching step 0 is …' completed for a measured ratio r."""
    if r == 0:
        return "exactly 0 (it underflowed float32 on the way)"
    if not _finite(r):
        return f"{r} (it overflowed float32)"
    return f"{sci(r)} of the last step's" if r < 1 else f"{sci(r)} times the last step's"


def verdicts(rnn: dict, lstm: dict, forget: pd.DataFrame,
             saturation: pd.DataFrame) -> list[Verdict]:
    """Each answer of the original question against the measurements above.

    The verdict is decided by the numbers (thresholds below), so a different
    measurement would change it; the evidence sentence quotes the numbers.
    """
    T = rnn["steps"]
    fg = forget.set_index("variant")
    names = list(FORGET_VARIANTS)
    default, fb3, nofg = fg.loc[names[0]], fg.loc[names[2]], fg.loc[names[3]]
    sat = saturation.set_index("variant")
    lstm_ok, shut, fopen, rnn_ok, rnn_big = (sat.loc[v[0]] for v in SATURATION_VARIANTS)

    # Answer 1: the additive cell path whose gain is the forget gate.
    gain_controls = (nofg["cell_ratio"] > 1e-2 and fb3["cell_ratio"] > 1e3 * default["cell_ratio"]
                     and fb3["gradient_reach"] > default["gradient_reach"])
    v1 = "Confirmed" if gain_controls else "Refuted"
    e1 = (f"Over {T - 1} steps, the gradient reaching the first cell state, "
          f"‖∂ℓ/∂c₀‖/‖∂ℓ/∂c_T−1‖, is {sci(nofg['cell_ratio'])} with f ≡ 1 and "
          f"{sci(fb3['cell_ratio'])} with f ≈ "
          f"{fb3['mean_f']:.2f} (reach {int(fb3['gradient_reach'])} of {T} steps), against "
          f"{sci(default['cell_ratio'])} at torch's default init (f ≈ {default['mean_f']:.2f}, "
          f"reach {int(default['gradient_reach'])} steps)")
    e1 += (": the forget gate's value, which the network learns, decides how much gradient the "
           "additive path carries." if gain_controls else
           ": here the forget gate's value did not decide the gradient's reach.")
    if gain_controls and default["cell_ratio"] < 1e-3:
        e1 += (" A caveat the answer leaves out: at initialisation this LSTM's gradient vanishes "
               "too; the additive path only helps once the forget gate is near 1, which "
               "training (or a forget-gate bias) has to bring about.")

    # Answer 2: "passes the previous state … all states have information about previous states".
    passes = rnn["jac_one_step"] > 0.1 and rnn["dep_x0"] > 0
    both_vanish = rnn["vanishing_ratio"] < 1e-3 and lstm["vanishing_ratio"] < 1e-3
    v2 = "Refuted" if passes and both_vanish else "Half-true"
    e2 = (f"A vanilla RNN passes its previous state on too: ‖∂h_T−1/∂h_T−2‖₂ = "
          f"{sci(rnn['jac_one_step'])} at the last step, and h_T−1 depends on the first input "
          f"(‖∂h_T−1/∂x₀‖₂ = {sci(rnn['dep_x0'])}{', non-zero' if rnn['dep_x0'] > 0 else ''}). "
          f"Its gradient reaching step 0 is {sci(rnn['vanishing_ratio'])} of the last step's; an "
          f"untrained LSTM, which passes h and c, gets {sci(lstm['vanishing_ratio'])}.")
    if v2 == "Refuted":
        e2 += (" Passing the state on is what every recurrent net does, and it does not keep the "
               "gradient alive: what decides is the gain of the path it is passed along.")

    # Answer 3, claim by claim.
    shut_kills = (shut["vanishing_ratio"] == 0
                  or shut["vanishing_ratio"] < 1e-3 * lstm_ok["vanishing_ratio"])
    big = rnn_big["vanishing_ratio"]
    bounded_explodes = (not _finite(big)) or big > 1e2
    bounded_refuted = shut_kills or bounded_explodes
    e_bounded = (
        f"σ′ ≤ 1/4 and tanh′ ≤ 1, and both go to 0 in saturation. Gates saturated shut: mean σ′ "
        f"= {shut['mean_derivative']:.3g}, the gradient reaching step 0 is "
        f"{_ratio_words(shut['vanishing_ratio'])} (default init: "
        f"{sci(lstm_ok['vanishing_ratio'])}), and ‖∂L/∂W_hh‖ = {sci(shut['grad_w_hh'])} (default "
        f"{sci(lstm_ok['grad_w_hh'])})"
        + (": the saturated gate can hardly learn to reopen. " if shut_kills else ". ")
        + f"With weights × {SATURATION_SCALE:g}, {rnn_big['saturated']:.0%} of the tanh RNN's "
        f"units saturated, the gradient reaching step 0 is {_ratio_words(big)}"
        + (": bounded outputs did not stop it from exploding." if bounded_explodes else "."))
    mult_refuted = default["cell_ratio"] < 1e-3 and nofg["cell_ratio"] > 1e-2
    e_mult = (f"The cell path multiplies the gradient by f at every step: with f ≈ "
              f"{default['mean_f']:.2f}, ‖∂ℓ/∂c₀‖/‖∂ℓ/∂c_T−1‖ = {sci(default['cell_ratio'])} over "
              f"{T - 1} steps (mean f^(T−1) = {sci(default['comparison_f_pow'])}, for "
              f"comparison); with f ≡ 1 it is {sci(nofg['cell_ratio'])}"
              + (": only f ≈ 1 preserves the magnitude." if mult_refuted else "."))
    keep_confirmed = fopen["gradient_reach"] >= T - 1 and shut["gradient_reach"] < T // 2
    e_keep = (f"Forget gate saturated open (f ≈ {fopen['mean_f']:.3f}): the gradient reaches "
              f"{int(fopen['gradient_reach'])} of {T} steps; gates saturated shut: "
              f"{int(shut['gradient_reach'])}.")
    parts = [
        (("sigmoid/tanh outputs are bounded, so gradients can flow “without becoming too small "
         "or too large”"), "Refuted" if bounded_refuted else "Confirmed", e_bounded),
        ("“element-wise multiplication preserves the gradients' magnitude”",
         "Refuted" if mult_refuted else "Confirmed", e_mult),
        ("the memory cell can “selectively keep or drop information”",
         "Confirmed" if keep_confirmed else "Refuted", e_keep),
    ]
    short = ("bounded outputs", "multiplication preserving the magnitude", ("the memory cell's "
             "keep/drop"))
    holds = [n for n, (_, v, _) in zip(short, parts) if v == "Confirmed"]
    fails = [n for n, (_, v, _) in zip(short, parts) if v == "Refuted"]
    v3 = "Half-true" if holds and fails else ("Confirmed" if holds else "Refuted")
    e3 = " ".join(x for x in (
        f"Holds: {', '.join(holds)}." if holds else "",
        f"Does not hold: {', '.join(fails)}." if fails else "",
    ) if x) + " Claim by claim:"
    return [
        Verdict("Answer 1", "“a unique additive gradient structure that includes direct access to "
                "the forget gate's activations”", v1, e1),
        Verdict("Answer 2", "“LSTM passes the previous state's hidden weights to the current "
                "state … all states now have some information about all of the previous "
                "states”", v2, e2),
        Verdict("Answer 3", "“the gates use sigmoid and tanh … bounded output ranges … "
                "element-wise multiplication preserves the gradients' magnitude … the memory "
                "cell allows the network to selectively keep or drop information”", v3, e3,
                tuple(parts)),
    ]


__all__ = [
    "FORGET_VARIANTS", "SATURATION_VARIANTS", "Verdict", "decay_curves", "direct_path_gain",
    "forget_gate_gain", "forget_sentence", "gate_values", "gru_facts", "gru_sentence",
    "jacobian_norms", "lstm_facts", "lstm_sentence", "one_thread", "per_step_factor",
    "pick_run", "rnn_facts", "rnn_sentence", "run_story", "sample_batch", "saturation_effect",
    "spectral_norms", "state_jacobians", "trained_sentence", "trained_vs_init",
    "untrained_model", "verdicts",
]

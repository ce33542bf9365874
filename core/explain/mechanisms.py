"""Measurements behind the Explain page: why LSTM and GRU gradients survive.

Every number here is measured by autograd on a real model (the model the Train
page would build from the same settings, before its first step); nothing is
simulated, fitted or hard-coded. Columns called ``comparison`` or
``direct_path`` are *also* computed from measured tensors (gate values,
weights), and are labelled as what they are. The instruments (Jacobians, norms,
gate values) and the notation are in :mod:`core.explain.jacobians`; the words
that read these numbers are in :mod:`core.narrate`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from core.explain.jacobians import (
    HIDDEN,
    JAC_BATCH,
    PROBE_BATCH,
    SEED,
    SEQ_LEN,
    direct_path_gain,
    gate_values,
    measured,
    per_step_factor,
    probe_summary,
    sample_batch,
    spectral_norms,
    state_jacobians,
    untrained_model,
)
from core.models import SequenceModel
from core.tasks import Task

SATURATION_BIAS = 5.0     # σ(±5) = 0.9933 / 0.0067: a saturated gate
SATURATION_SCALE = 5.0    # RNN weights and biases × 5: many tanh units saturate (see table)
GRU_Z_BIAS = 3.0          # σ(3) = 0.95: a GRU update gate biased towards "carry"


# ---------------------------------------------------------------- 1. the mechanisms at init


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


@measured
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
    return probe_summary(model, task, x, y)[0]


@measured
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


@measured
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


@measured
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


# ---------------------------------------------------------------- 2. the forget gate's gain

FORGET_VARIANTS: dict[str, dict] = {
    "default init (f ≈ σ(0) = 0.5)": {},
    "forget_bias = 1 (f ≈ 0.73)": {"forget_bias": 1.0},
    "forget_bias = 3 (f ≈ 0.95)": {"forget_bias": 3.0},
    "no forget gate (f ≡ 1)": {"no_forget_gate": True},
}


@measured
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
        s, profile, _ = probe_summary(model, task, x, y)
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


@measured
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
        summary, _, grads = probe_summary(model, task, x, y)
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

"""A pure lag (issue 16): when the forget gate cannot learn to open, measured.

On recall the only information is the symbol at step 0, T − 1 steps before the loss:
no marker sits at a short lag. What that does to an LSTM, each part measured here by
autograd or by real training (nothing simulated, fitted or hard-coded):

* :func:`bias_gradient` — the chicken-and-egg at torch's default init: how much
  gradient reaches the first cell state, and where the gradient on the forget-gate
  bias b_f comes from (each step's share of ∂L/∂b_f, by lag), on the first training batch;
* :func:`first_steps` — the first training steps for real (core.train.Trainer): the
  default LSTM's forget gate on recall, the same weights with chrono init, and the
  default LSTM on adding (what its forget-gate bias and its gradient reach do);
* :func:`marker_gradients` — why adding is learnable at default init: the gradient
  reaching each informative input at init, against its lag;
* :func:`cell_drift` — what the input gate does (forget bias only against chrono) and
  the 1997 LSTM without a forget gate: the cell's size and saturation along t.

The tools of ``bench/pure_lag.py`` (bias edits, cell statistics, gradients at init)
live here too, so the benchmark imports them from core and not the other way round.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from core.config import FIELD_BY_NAME, TrainConfig, coerce
from core.explain.jacobians import DATA_SEED_OFFSET, HIDDEN, SEED, SEQ_LEN, measured
from core.models import SequenceModel
from core.tasks import Task
from core.train import Trainer, make_model

GATE_ROWS = {"i": 0, "f": 1}   # torch's LSTM rows: i f g o, H each
SATURATED = 0.95               # |tanh c| above this: the unit sits in tanh's flat tail
SHORT_LAG = 10                 # "short lags": the last 10 steps before the loss
GRAD_BATCH = 64                # the first training batch (the settings' batch size)
STATS_BATCH = 512              # fresh sequences for the cell statistics
MARKER_BATCH = 128             # sequences for the gradient reaching each marker
RUN_STEPS = 150                # the short real runs of first_steps
RUN_EVERY = 25                 # ... probed every 25 steps
NFG_INPUT_BIAS = -3.0          # the 1997 remedy shown: the input gates biased shut
# The settings of the pure-lag measurements (and of the shipped sweep).
LAG_TRAINING = dict(batch_size=64, lr=0.003)


# ---------------------------------------------------------------- variants and tools


def parse_variant(text: str) -> tuple[dict, dict]:
    """'lstm:forget_bias=5:bias_i=-5' -> ({arch: lstm, forget_bias: 5.0}, {i: '-5'}).

    Written as in sweeps, ``arch[:key=value...]`` (TrainConfig fields), plus ``bias_i`` /
    ``bias_f`` = V: that gate's bias sum b_ih + b_hh set to V after the model is built,
    ``stagger:A:B`` for linspace(A, B) over the units, or ``default`` for torch's default
    init of those rows with the same seed (see :func:`edit_biases`)."""
    arch, *parts = text.split(":")
    options, edits = {"arch": arch}, {}
    i = 0
    while i < len(parts):
        key, _, value = parts[i].partition("=")
        if key.startswith("bias_"):
            if value == "stagger":  # stagger:A:B spans three ':' parts
                value = ":".join(parts[i:i + 3]).partition("=")[2]
                i += 2
            edits[key[5:]] = value
        else:
            options[key] = coerce(FIELD_BY_NAME[key], value)
        i += 1
    return options, edits


@torch.no_grad()
def edit_biases(model: SequenceModel, config: TrainConfig, edits: dict) -> None:
    """Set an LSTM gate's bias sum b_ih + b_hh (the value in b_ih, b_hh zeroed on those
    rows, as ``forget_bias`` does): {gate: "V" | "stagger:A:B" | "default"}."""
    layer = model.recurrent
    H = layer.hidden_size
    default = None
    for gate, value in edits.items():
        rows = slice(GATE_ROWS[gate] * H, (GATE_ROWS[gate] + 1) * H)
        if value == "default":
            if default is None:
                plain = config.replace(gate_init="default", chrono_tmax=None, forget_bias=None)
                default = make_model(plain, config.make_task()).recurrent
            layer.bias_ih_l0[rows] = default.bias_ih_l0[rows]
            layer.bias_hh_l0[rows] = default.bias_hh_l0[rows]
            continue
        if str(value).startswith("stagger:"):
            low, high = map(float, str(value).split(":")[1:])
            layer.bias_ih_l0[rows] = torch.linspace(low, high, H)
        else:
            layer.bias_ih_l0[rows] = float(value)
        layer.bias_hh_l0[rows] = 0.0


def variant_model(variant: str, task: str = "recall", seq_len: int = SEQ_LEN,
                  hidden: int = HIDDEN, seed: int = SEED) -> tuple[SequenceModel, Task, TrainConfig]:
    """(model, task, config) of a variant at init, with its bias edits applied: the model
    core.train.Trainer would start from (the edits aside)."""
    options, edits = parse_variant(variant)
    config = TrainConfig(task=task, seq_len=seq_len, hidden_size=hidden, seed=seed, **options)
    t = config.make_task()
    model = make_model(config, t)
    edit_biases(model, config, edits)
    return model, t, config


def lstm_gates(model: SequenceModel, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(i, f) activations from the LSTM pre-activations (..., 4H), as the variant uses
    them (CIFG: i = 1 − f; no forget gate: f ≡ 1)."""
    H = pre.shape[-1] // 4
    f = torch.sigmoid(pre[..., H:2 * H])
    i = torch.sigmoid(pre[..., :H])
    if model.recurrent.coupled_gates:
        i = 1 - f
    if model.recurrent.no_forget_gate:
        f = torch.ones_like(f)
    return i, f


@torch.no_grad()
def cell_stats(model: SequenceModel, task: Task, n: int = 2048, seed: int = 12345) -> dict:
    """Input gate on steps ≥ 1, forget gate, the cell's RMS at step 1, T/2 and T − 1, and the
    share of units with |tanh c_{T−1}| > 0.95, on n fresh sequences (LSTM only)."""
    x, _ = task.sample(n, torch.Generator().manual_seed(seed))
    u = model.recurrent.unroll(x, record=True)
    c = torch.stack(u.states["c"], 1)
    i, f = lstm_gates(model, torch.stack(u.gates["ifgo"], 1))
    rms = c.pow(2).mean((0, 2)).sqrt()
    T = c.shape[1]
    return {"i_distractors": round(float(i[:, 1:].mean()), 4),
            "f_mean": round(float(f[:, 1:].mean()), 4),
            "c_rms_t1": round(float(rms[1]), 4), "c_rms_mid": round(float(rms[T // 2]), 4),
            "c_rms_end": round(float(rms[-1]), 4),
            "saturated_end": round(float((torch.tanh(c[:, -1]).abs() > SATURATED).float().mean()), 4)}


def init_gradients(task_name: str, seq_len: int, variant: str, seed: int,
                   hidden: int = 32, batch: int = 256) -> dict:
    """At init (float64, ``batch`` fresh sequences): the carried state's gradient at step 0
    over the last step's (``ds0/ds_last``; c for the LSTM, h otherwise), its geometric mean
    per step, the gradient reaching the first and last input; on temporal order also at
    the two markers; for the LSTM the cell's size and saturation at the last step."""
    model, task, _ = variant_model(variant, task_name, seq_len, hidden, seed)
    model = model.double()
    x, y = task.sample(batch, torch.Generator().manual_seed(100 + seed))
    x = x.double().requires_grad_(True)
    out, u = model.unroll(x, record=True)
    states = u.states.get("c", u.states["h"])  # the carried state: c (LSTM) or h
    grads = torch.autograd.grad(task.loss(out, y).sum(), [x, *states])
    gx = grads[0].norm(dim=-1)  # (batch, steps)
    gs = torch.stack([g.norm(dim=-1) for g in grads[1:]], 1)
    g_mean = gs.mean(0)
    r = {"state": "c" if "c" in u.states else "h",
         "ds0/ds_last": float(gs[:, 0].mean() / gs[:, -1].mean()),
         # geometric mean over steps 1..T−2 of ‖∂ℓ/∂s_t‖ / ‖∂ℓ/∂s_{t+1}‖ (batch means)
         "per_step": float((g_mean[1:-1] / g_mean[2:]).log().mean().exp()),
         "dx0": float(gx[:, 0].mean()), "dx_last": float(gx[:, -1].mean())}
    if task_name == "temporal_order":
        tokens = x.detach().argmax(-1)
        marks = [torch.nonzero((row == task.X) | (row == task.X + 1)).flatten() for row in tokens]
        for k, name in ((0, "t1"), (1, "t2")):
            r[f"dx_{name}"] = float(torch.stack([gx[b, m[k]] for b, m in enumerate(marks)]).mean())
            r[f"ds_{name}/ds_last"] = float(
                torch.stack([gs[b, m[k]] for b, m in enumerate(marks)]).mean() / gs[:, -1].mean())
    if "c" in u.states:
        c_end = u.states["c"][-1].detach()
        r["c_rms_end"] = float(c_end.pow(2).mean().sqrt())
        r["saturated_end"] = float((torch.tanh(c_end).abs() > SATURATED).double().mean())
        r["i_distractors"] = float(
            lstm_gates(model, torch.stack(u.gates["ifgo"], 1).detach())[0][:, 1:].mean())
    return r


def _bias_sum(model: SequenceModel, gate: str) -> torch.Tensor:
    """The LSTM gate's bias sum b_ih + b_hh per unit (what acts), float64, detached."""
    rec = model.recurrent
    H = rec.hidden_size
    rows = slice(GATE_ROWS[gate] * H, (GATE_ROWS[gate] + 1) * H)
    return (rec.bias_ih_l0 + rec.bias_hh_l0).detach()[rows].double().clone()


def lag_config(task: str, seq_len: int, hidden: int, seed: int, **options) -> TrainConfig:
    """The issue's pure-lag training settings (batch 64, Adam lr 0.003) for one LSTM."""
    return TrainConfig(task=task, seq_len=seq_len, arch="lstm", hidden_size=hidden, seed=seed,
                       **LAG_TRAINING, **options)


# ---------------------------------------------------------------- 1. the chicken and egg


@measured
def bias_gradient(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
                  gate_init: str = "default") -> dict:
    """The LSTM at init on recall, on its first training batch (the batch
    :class:`core.train.Trainer` draws first with these settings), in float64.

    The loss L is the batch mean of the per-sequence losses ℓ_b, as in training. Returns:

    * ``cell_ratio``: ‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖ (batch means of per-sequence norms, the
      probe's definition);
    * ``by_lag``: frame (t, lag, contribution, cell_grad): ``contribution`` = ‖G_t‖ with
      G_t = ∂L/∂a^f_t summed over the batch (a^f_t the forget gate's pre-activation at
      step t; b_f enters every a^f_t, so ∂L/∂b_f = Σ_t G_t), ``cell_grad`` = ‖∂ℓ/∂c_t‖;
    * ``grad_bf``: ∂L/∂b_f per unit (Σ_t G_t; autograd's gradient of b_ih's f rows, which
      b_hh shares), ``grad_bf_norm`` its norm;
    * ``short_share``: ‖Σ_{lag < SHORT_LAG} G_t‖ / ‖∂L/∂b_f‖ and ``short_cosine`` the cosine
      between the two (how much of the b_f gradient the last steps make, and its direction);
    * ``long_share``: ‖Σ_{lag ≥ T/2} G_t‖ / ‖∂L/∂b_f‖: the part that could teach the gate to
      keep anything for more than half the sequence;
    * ``units_down``: the share of units whose gradient is positive, so that a descent step
      lowers their b_f (closes the gate); ``mean_f``: the forget gate's mean on the batch.
    """
    config = lag_config("recall", seq_len, hidden, seed, gate_init=gate_init)
    task = config.make_task()
    model = make_model(config, task).double()
    x, y = task.sample(config.batch_size, torch.Generator().manual_seed(config.seed))
    x = x.double()
    out, u = model.unroll(x, record=True)
    per_seq = task.loss(out, y)
    T, H, B = x.shape[1], hidden, x.shape[0]
    cs, pres = u.states["c"], u.gates["ifgo"]
    grads = torch.autograd.grad(per_seq.mean(), [*cs, *pres, model.recurrent.bias_ih_l0])
    gc = torch.stack(grads[:T], 1) * B                     # ∂ℓ_b/∂c_t: (B, T, H)
    G = torch.stack(grads[T:2 * T], 1)[..., H:2 * H].sum(0)  # G_t: (T, H)
    grad_bf = grads[-1][H:2 * H]
    cell = gc.norm(dim=-1).mean(0)
    lag = T - 1 - np.arange(T)
    short = G[torch.as_tensor(lag < SHORT_LAG)].sum(0)
    long = G[torch.as_tensor(lag >= T // 2)].sum(0)
    norm = grad_bf.norm()
    _, f = lstm_gates(model, torch.stack(pres, 1).detach())
    return {
        "steps": T, "hidden": H, "batch": B, "gate_init": gate_init,
        "cell_ratio": float(cell[0] / cell[-1]),
        "by_lag": pd.DataFrame({"t": np.arange(T), "lag": lag,
                                "contribution": G.norm(dim=1).numpy(),
                                "cell_grad": cell.detach().numpy()}),
        "grad_bf": grad_bf.detach().numpy(),
        "grad_bf_norm": float(norm),
        "short_share": float(short.norm() / norm),
        "short_cosine": float(torch.dot(short, grad_bf) / (short.norm() * norm)),
        "long_share": float(long.norm() / norm),
        "units_down": float((grad_bf > 0).double().mean()),
        "mean_f": float(f.mean()),
    }


# ---------------------------------------------------------------- 2. the first steps, for real

FIRST_RUNS: dict[str, tuple[str, dict]] = {
    "recall, default init": ("recall", {}),
    "recall, chrono init": ("recall", {"gate_init": "chrono"}),
    "adding, default init": ("adding", {}),
}


@measured
def first_steps(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
                steps: int = RUN_STEPS, every: int = RUN_EVERY) -> dict:
    """Three real trainings (core.train.Trainer, batch 64, Adam lr 0.003, probed every
    ``every`` steps from step 0 to step ``steps``): the runs of :data:`FIRST_RUNS`. Returns

    * ``runs``: frame, one row per run and probe step: ``run``, ``step``, ``bf_mean`` /
      ``bf_max`` (the forget-gate bias sum b_ih + b_hh over units, mean / most open unit),
      ``bf_change`` (bf_mean − its value at step 0), the probe's ``mean_f`` and
      ``mean_f_max`` (f averaged over the sequence; the most open unit's), ``reach``;
    * ``first_update``: for the first run, the first Adam update of b_f per unit (its bias
      sum after step 1 minus at init: b_ih and b_hh each move, so up to 2 × lr), as an array;
    * ``lr``, ``steps``, ``seconds`` (wall time of the three runs), ``metrics``: {run: (first,
      last)} held-out metric (256 sequences) at step 0 and at step ``steps``, ``metric_names``.
    """
    import time

    rows, metrics, names = [], {}, {}
    first_update = None
    t0 = time.perf_counter()
    for label, (task, options) in FIRST_RUNS.items():
        # steps + 1 training steps, so that the last probe is at step ``steps``
        config = lag_config(task, seq_len, hidden, seed, steps=steps + 1, probe_every=every,
                            eval_every=steps, eval_size=256, threads=1, **options)
        trainer = Trainer(config)
        start = _bias_sum(trainer.model, "f")
        evals = []
        for record in trainer.run():
            if record.kind == "probe":
                b = _bias_sum(trainer.model, "f")
                rows.append({"run": label, "step": record.step, "bf_mean": float(b.mean()),
                             "bf_max": float(b.max()),
                             "bf_change": float(b.mean() - start.mean()),
                             "mean_f": record.summary.get("mean_f", float("nan")),
                             "mean_f_max": record.summary.get("mean_f_max", float("nan")),
                             "reach": int(record.summary["gradient_reach"])})
            elif record.kind == "step" and record.step == 1 and first_update is None:
                first_update = (_bias_sum(trainer.model, "f") - start).numpy()
            elif record.kind == "eval":
                evals.append((record.step, record.metric))
        at = dict(evals)
        metrics[label] = (at[0], at[steps])
        names[label] = trainer.task.metric_name
    return {"runs": pd.DataFrame(rows), "first_update": first_update, "lr": LAG_TRAINING["lr"],
            "steps": steps, "seconds": time.perf_counter() - t0, "metrics": metrics,
            "metric_names": names}


# ---------------------------------------------------------------- 3. why adding is learnable


@measured
def marker_gradients(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
                     batch: int = MARKER_BATCH) -> tuple[pd.DataFrame, dict]:
    """The default LSTM at init on adding and on recall (float64): for each sequence, the
    gradient reaching each informative input, ‖∂ℓ_b/∂x_t‖ at that step t, relative to the
    gradient reaching the last input ‖∂ℓ_b/∂x_T−1‖ (the same sequence's).

    Returns (frame, summary). ``frame``: one row per sequence and informative input:
    ``input`` ("adding: second marker", "adding: first marker", "recall: the symbol"),
    ``lag`` = T − 1 − t, ``ratio``. ``summary``: per input the median ratio
    (``median[input]``) and the share of sequences whose ratio is ≥ 1e-3, the gradient
    reach's threshold (``usable[input]``); ``usable_lag``: the longest lag at which the
    second marker's median ratio is still ≥ 1e-3.
    """
    frames = []
    for task_name in ("adding", "recall"):
        model, task, _ = variant_model("lstm", task_name, seq_len, hidden, seed)
        model = model.double()
        x, y = task.sample(batch, torch.Generator().manual_seed(seed + DATA_SEED_OFFSET))
        x = x.double().requires_grad_(True)
        out, _ = model.unroll(x)
        (gx,) = torch.autograd.grad(task.loss(out, y).sum(), [x])
        g = gx.norm(dim=-1)                                  # (B, T)
        ratio = (g / g[:, -1:]).detach()
        T = x.shape[1]
        rows = torch.arange(batch)
        if task_name == "adding":
            marked = x.detach()[..., 1] > 0
            pos = torch.stack([torch.nonzero(m).flatten() for m in marked])  # (B, 2), sorted
            for k, name in ((1, "adding: second marker"), (0, "adding: first marker")):
                frames.append(pd.DataFrame({"input": name, "lag": (T - 1 - pos[:, k]).numpy(),
                                            "ratio": ratio[rows, pos[:, k]].numpy()}))
        else:
            frames.append(pd.DataFrame({"input": "recall: the symbol", "lag": T - 1,
                                        "ratio": ratio[:, 0].numpy()}))
    frame = pd.concat(frames, ignore_index=True)
    summary: dict = {"median": {}, "usable": {}, "steps": int(seq_len)}
    for name, d in frame.groupby("input", sort=False):
        summary["median"][name] = float(d["ratio"].median())
        summary["usable"][name] = float((d["ratio"] >= 1e-3).mean())
    second = frame[frame["input"] == "adding: second marker"]
    by_lag = second.groupby("lag")["ratio"].median()
    ok = by_lag[by_lag >= 1e-3]
    summary["usable_lag"] = int(ok.index.max()) if len(ok) else 0
    return frame, summary


# ---------------------------------------------------------------- 4. the input gate; 1997

NFG_REMEDY = f"lstm:no_forget_gate=true:bias_i={NFG_INPUT_BIAS:g}"
DRIFT_VARIANTS: dict[str, str] = {
    "default init (f ≈ 0.5, i ≈ 0.5)": "lstm",
    "forget bias 5 alone (f only)": "lstm:forget_bias=5",
    "chrono's f, input bias left at default": "lstm:gate_init=chrono:bias_i=default",
    "chrono (f open, i shut)": "lstm:gate_init=chrono",
    "no forget gate (1997, f ≡ 1)": "lstm:no_forget_gate=true",
    f"no forget gate, input bias {NFG_INPUT_BIAS:g}": NFG_REMEDY,
}


@measured
def cell_drift(seq_len: int = SEQ_LEN, hidden: int = HIDDEN, seed: int = SEED,
               n: int = STATS_BATCH, grad_batch: int = GRAD_BATCH) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each LSTM variant of :data:`DRIFT_VARIANTS` at init on recall.

    Returns (table, curves). ``table``, one row per variant: ``variant``, ``spec`` (its
    variant string), ``mean_f`` and ``i_distractors`` (the gates' means on steps ≥ 1,
    i.e. over the distractors), ``rms_end`` (the cell's root mean square over units and
    ``n`` fresh sequences at t = T − 1), ``saturated`` (share of units with
    |tanh c_T−1| > 0.95), ``dh_dc`` (mean of o_T−1 ⊙ (1 − tanh² c_T−1): how much of the
    output's gradient enters the cell at the last step), ``cell_ratio`` (‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖) and ``dx0`` (‖∂ℓ/∂x₀‖,
    the gradient reaching the symbol's input) on ``grad_batch`` sequences in float64.
    ``curves``: (variant, t, rms) for every t.
    """
    rows, curves = [], []
    for label, spec in DRIFT_VARIANTS.items():
        model, task, _ = variant_model(spec, "recall", seq_len, hidden, seed)
        with torch.no_grad():
            x, _ = task.sample(n, torch.Generator().manual_seed(seed + DATA_SEED_OFFSET))
            u = model.recurrent.unroll(x, record=True)
            c = torch.stack(u.states["c"], 1).double()           # (n, T, H)
            pre = torch.stack(u.gates["ifgo"], 1).double()
            i, f = lstm_gates(model, pre)
            H = c.shape[-1]
            o_end = torch.sigmoid(pre[:, -1, 3 * H:])
            rms = c.pow(2).mean((0, 2)).sqrt()
            c_end = c[:, -1]
            tanh_end = torch.tanh(c_end)
        g = _init_grad(model, task, seed, grad_batch)
        rows.append({"variant": label, "spec": spec, "mean_f": float(f[:, 1:].mean()),
                     "i_distractors": float(i[:, 1:].mean()), "rms_end": float(rms[-1]),
                     "saturated": float((tanh_end.abs() > SATURATED).double().mean()),
                     "dh_dc": float((o_end * (1 - tanh_end ** 2)).mean()), **g})
        curves.append(pd.DataFrame({"variant": label, "t": np.arange(c.shape[1]),
                                    "rms": rms.numpy()}))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def _init_grad(model: SequenceModel, task: Task, seed: int, batch: int) -> dict:
    """‖∂ℓ/∂c₀‖ / ‖∂ℓ/∂c_T−1‖ and ‖∂ℓ/∂x₀‖ (batch means) at init, float64."""
    model = model.double()
    x, y = task.sample(batch, torch.Generator().manual_seed(seed + 2 * DATA_SEED_OFFSET))
    x = x.double().requires_grad_(True)
    out, u = model.unroll(x, record=True)
    cs = u.states["c"]
    grads = torch.autograd.grad(task.loss(out, y).sum(), [x, cs[0], cs[-1]])
    first, last = grads[1].norm(dim=-1).mean(), grads[2].norm(dim=-1).mean()
    return {"cell_ratio": float(first / last), "dx0": float(grads[0][:, 0].norm(dim=-1).mean())}


# ---------------------------------------------------------------- derived from the above


def first_update(bias: dict, runs: dict) -> dict:
    """Adam's first update of b_f (from :func:`first_steps`' first run) against the gradient
    :func:`bias_gradient` measured on the same batch and weights: ``size`` (mean |Δb_f| over
    units; ``size_min``, ``size_max``), ``down`` (units whose b_f fell), ``agree`` (units that moved along −∂L/∂b_f),
    ``units``; and what opening the gate would take at that rate: ``f_needed`` (the f whose
    (T − 1)-th power is 1e-3, the gradient reach's threshold), ``b_needed`` = logit(f_needed),
    ``updates_needed`` = (b_needed − mean b_f at init) / size (each update pushing up)."""
    delta = np.asarray(runs["first_update"], dtype=float)
    grad = np.asarray(bias["grad_bf"], dtype=float)
    size = float(np.abs(delta).mean())
    T = int(bias["steps"])
    f_needed = 1e-3 ** (1.0 / (T - 1))
    b_needed = float(np.log(f_needed / (1 - f_needed)))
    start = runs["runs"]
    b0 = float(start[(start["run"] == next(iter(FIRST_RUNS))) & (start["step"] == 0)]["bf_mean"].iloc[0])
    return {"size": size, "size_min": float(np.abs(delta).min()),
            "size_max": float(np.abs(delta).max()),
            "down": int((delta < 0).sum()), "units": int(delta.size),
            "agree": int((np.sign(delta) == -np.sign(grad)).sum()),
            "f_needed": f_needed, "b_needed": b_needed, "b_start": b0,
            "updates_needed": (b_needed - b0) / size if size > 0 else float("inf")}

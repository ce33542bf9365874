"""The learner's own run on the Explain page: its first probe against its latest, and
its saved weights against the same model at step 0 (re-measured, never assumed).
"""

from __future__ import annotations

from pathlib import Path

from core.archspec import SPEC
from core.explain.jacobians import (
    PROBE_BATCH,
    direct_path_gain,
    gate_values,
    measured,
    probe_summary,
    sample_batch,
)
from core.models import SequenceModel
from core.runs import RunData, RunStore
from core.tasks import Task
from core.train import make_model

# Re-measuring a run's saved weights is skipped above this T·H² (≈ 1 s per model here).
TRAINED_BUDGET = 1_000_000


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
    """The activation that is the arch's carry gain (LSTM f, GRU z, later ones "gain")."""
    return SPEC[arch].carry if arch in SPEC else None


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
    summary, _, _ = probe_summary(model, task, x, y)
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


@measured
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

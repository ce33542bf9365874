"""The Explain page's last section in words: one principle, each architecture's number.

Reads the table of :func:`core.explain.principle.principle`; every clause is said only
when the measured numbers show it (a factor counts as "near 1" at ≥ NEAR_ONE, as
"shrinking" below SHRINKS; between the two, the sentence gives the number alone).
"""

from __future__ import annotations

import math

import pandas as pd

from core.narrate.numbers import _finite, sci

NEAR_ONE = 0.95     # per-step factor: 0.95^100 = 6e-3, the gradient still reaches 100 steps
SHRINKS = 0.9       # 0.9^100 = 3e-5: gone within the reach threshold (1e-3) by ~66 steps


def _list(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _names(rows: pd.DataFrame) -> str:
    return _list(f"{r.label} ({r.factor:.3f})" for r in rows.itertuples())


def principle_sentence(table: pd.DataFrame, T: int) -> str:
    """What the table shows: whose path carries the gradient at init, whose does not, and
    how the gated ones' recorded carry gain explains it."""
    t = table[table["factor"].map(_finite)]
    if t.empty:
        return "No per-step factor could be measured (no finite Jacobian norm)."
    near = t[t["factor"] >= NEAR_ONE]
    shrink = t[t["factor"] < SHRINKS]
    parts = []
    if len(near):
        fixed = near[near["fixed"]]
        learned = near[~near["fixed"]]
        clause = f"At initialisation the path's per-step factor is near 1 for {_names(near)}"
        worst = near["jac_first"].min()
        clause += (f": ‖∂p_{T - 1}/∂p_0‖ is still at least {sci(worst)} after {T - 1} steps"
                   if _finite(worst) and worst > 0 else "")
        parts.append(clause + ".")
        said = []
        if len(fixed):
            said.append(f"{_list(fixed['label'])} have it by construction")
        opened = learned[learned["carry_mean"] >= NEAR_ONE - 0.1]
        if len(opened):
            said.append(f"{_list(opened['label'])} because their gate starts open "
                        f"(mean carry gain {_list([f'{v:.2f}' for v in opened['carry_mean']])})")
        few = learned[learned["carry_mean"] < NEAR_ONE - 0.1]
        for r in few.itertuples():
            said.append(f"{r.label} through a few units whose gate its init opens (mean carry "
                        f"gain {r.carry_mean:.2f}, its most carrying unit {r.carry_max:.2f}: "
                        "the Jacobian's norm follows the most carrying direction)")
        if said:
            parts.append("; ".join(said) + ".")
    if len(shrink):
        gated = shrink[~shrink["fixed"] & shrink["carry_mean"].between(0.4, 0.6)]
        clause = (f"It is below {SHRINKS} for {_names(shrink)}: the gradient shrinks by that "
                  f"factor per step, {sci(float(shrink['factor'].max()) ** (T - 1))} or less "
                  f"over {T - 1} steps")
        parts.append(clause + ".")
        if len(gated):
            gains = ", ".join(f"{r.label} {r.carry_mean:.2f}" for r in gated.itertuples())
            parts.append(f"The gated ones start with their carry gain near a half ({gains}, "
                         "mean over units): the same path that can carry the gradient, with a "
                         "gain training must first raise, and only where some gradient "
                         "already reaches (section 5).")
    middle = t[(t["factor"] >= SHRINKS) & (t["factor"] < NEAR_ONE)]
    if len(middle):
        parts.append(f"In between: {_names(middle)}.")
    return " ".join(parts)


def cost_sentence(table: pd.DataFrame) -> str:
    """The measured price of each answer: one training step's time, fastest to slowest."""
    t = table[table["step_ms"].map(lambda v: _finite(v) and v > 0)]
    t = t[~t["label"].str.contains("(", regex=False)]   # one row per architecture
    if t.empty:
        return ""
    t = t.sort_values("step_ms")
    fast, slow = t.iloc[0], t.iloc[-1]
    ratio = slow.step_ms / fast.step_ms if fast.step_ms > 0 else math.nan
    return (f"One training step (forward and backward, batch 16) took {fast.step_ms:.1f} ms "
            f"for {fast.label} and {slow.step_ms:.1f} ms for {slow.label}"
            + (f", {ratio:.0f}× longer" if _finite(ratio) and ratio >= 2 else "")
            + ", on this server, now. The recurrences that are linear in their state "
            "(LRU, minGRU, minLSTM) can run as a scan over all steps at once; the others "
            "step through time.")

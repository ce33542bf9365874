"""The pure lag (issue 16): sentences on the shipped sweeps and on the Explain page's
pure-lag measurements.
"""

from __future__ import annotations

import pandas as pd

from core.narrate.numbers import sci


def duration(seconds: float) -> str:
    """A wall time for people: '48 s', '12 min', '2.3 h'."""
    s = float(seconds)
    if s < 100:
        return f"{s:.0f} s"
    if s < 6000:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _chance(task) -> float | None:
    """Chance accuracy of a classification task whose classes are uniform (recall,
    temporal order): 1 / number of classes; None for other metrics."""
    return 1.0 / task.output_size if task.metric_name == "accuracy" else None


def shipped_cell_sentence(row: dict, task) -> str:
    """One training of a shipped sweep, read from its results row (``label``, ``seq_len``,
    ``seed``, ``solved``, ``steps_to_solve``, ``steps_done``, ``eval_metric``,
    ``metric_name``, ``gradient_reach``, ``wall_s``) and its task (threshold, chance)."""
    name = row.get("metric_name") or task.metric_name
    head = f"**{row['label']}**, T = {int(row['seq_len'])}, seed {int(row['seed'])}: "
    sign = "≥" if task.higher_is_better else "<"
    reach = row.get("gradient_reach")
    steps = task.steps
    tail = (f" At the end the gradient reached {int(reach)} of {steps} steps (final probe)."
            if reach is not None and reach == reach else "")
    if row.get("solved"):
        return (head + f"solved at step {int(row['steps_to_solve'])} (the first evaluation with "
                f"held-out {name} {sign} {task.success:g}), after {float(row['wall_s']):.0f} s of "
                "training under the sweep's load." + tail)
    chance = _chance(task)
    versus = (f" (chance: {chance:.3g})" if chance is not None else
              f" (baseline: {task.baseline_loss:.3g})")
    return (head + f"not solved in {int(row['steps_done'])} steps: held-out {name} "
            f"{sci(row['eval_metric'])}{versus}." + tail)


def _direction(x: float, up: str = "rose", down: str = "fell") -> str:
    return f"{up} by {x:.3f}" if x > 0 else f"{down} by {-x:.3f}" if x < 0 else "did not move"


def _share_words(p: float) -> str:
    """How a share of units reads: no consistent direction between a quarter and three."""
    if 0.25 <= p <= 0.75:
        return "no consistent direction"
    return ("a consistent direction, down (closing the gate)" if p > 0.75 else
            "a consistent direction, up (opening the gate)")


def pure_lag_gradient_sentence(default: dict, chrono: dict, short_lag: int) -> str:
    """The chicken and egg, from two :func:`core.explain.purelag.bias_gradient` results."""
    T = default["steps"]
    return (
        f"At torch's default init (mean f = {default['mean_f']:.2f}) the gradient reaching the "
        f"first cell state is {sci(default['cell_ratio'])} of the last one's after {T - 1} "
        f"steps. The forget-gate bias b_f is shared by every step, so its gradient is a sum "
        f"over steps, ∂L/∂b_f = Σ_t ∂L/∂a^f_t. On the first training batch ({default['batch']} "
        f"sequences) the last {short_lag} steps make {default['short_share']:.1%} of that sum "
        f"(cosine {default['short_cosine']:.5f} with it), the steps at lags ≥ {T // 2} only "
        f"{sci(default['long_share'])} of it: the direction b_f is pushed in is set by the "
        f"last few distractors, and the symbol at step 0 has no say in it. Over the units it "
        f"has {_share_words(default['units_down'])}: {default['units_down']:.0%} of them "
        f"point down. With chrono init (mean f = {chrono['mean_f']:.2f}) the gradient reaching the "
        f"first cell state is {sci(chrono['cell_ratio'])} of the last one's, and the lags "
        f"≥ {T // 2} make {sci(chrono['long_share'])} of ∂L/∂b_f."
    )


def first_steps_sentence(update: dict, runs: pd.DataFrame, metrics: dict, names: dict,
                         lr: float, steps: int, T: int) -> str:
    """What the first real training steps did (:func:`core.explain.purelag.first_steps`,
    :func:`core.explain.purelag.first_update`)."""
    def at(run, step, col):
        d = runs[(runs["run"] == run) & (runs["step"] == step)]
        return float(d[col].iloc[0])

    lo, hi = f"{update['size_min']:.4f}", f"{update['size_max']:.4f}"
    first = ("Adam's first update, taken for real on that batch, moved every unit's b_f by "
             + (lo if lo == hi else f"{lo} to {hi}"))
    ratio = update["size"] / lr
    if abs(ratio - 2) < 0.05:
        first += (f" = 2 × lr (lr = {lr:g}: b_ih and b_hh each move by lr, since Adam's first "
                  "step is lr times the gradient's sign, whatever its size)")
    text = (first + f", {update['down']} of {update['units']} units down, and "
            f"{update['agree']} of {update['units']} along −∂L/∂b_f as measured above. To carry "
            f"1e-3 of the gradient back {T - 1} steps a unit needs f ≥ {update['f_needed']:.3f}, "
            f"b_f ≥ {update['b_needed']:.2f}: from b_f ≈ {round(update['b_start'], 2) + 0.0:.2f} "
            f"at {update['size']:.4f} per update, {update['updates_needed']:.0f} updates or "
            f"more, every one pushing up.\n\nIn {steps} real training steps:")
    parts = []
    for run in dict.fromkeys(runs["run"]):
        change = at(run, steps, "bf_mean") - at(run, 0, "bf_mean")
        m0, m1 = metrics[run]
        name = names[run]
        parts.append(
            f"{run}: mean b_f {_direction(change)} (mean f {at(run, 0, 'mean_f'):.3f} → "
            f"{at(run, steps, 'mean_f'):.3f}, most open unit {at(run, 0, 'mean_f_max'):.3f} → "
            f"{at(run, steps, 'mean_f_max'):.3f}), gradient reach {at(run, 0, 'reach'):.0f} → "
            f"{at(run, steps, 'reach'):.0f} of {T}, held-out {name} {sci(m0)} → {sci(m1)}")
    return text + " " + "; ".join(parts) + "."


def marker_sentence(summary: dict, runs: pd.DataFrame, steps: int) -> str:
    """Why adding is learnable at default init (:func:`core.explain.purelag.marker_gradients`
    and the adding run of :func:`core.explain.purelag.first_steps`)."""
    T = summary["steps"]
    med, use = summary["median"], summary["usable"]
    second, first, symbol = ("adding: second marker", "adding: first marker",
                             "recall: the symbol")

    def reach(run, step):
        d = runs[(runs["run"] == run) & (runs["step"] == step)]
        return int(d["reach"].iloc[0]) if len(d) else None

    text = (f"At init the gradient reaching adding's second marker (lag 0 to {T - T // 2 - 1}) is "
            f"≥ 1e-3 of the last input's in {use[second]:.0%} of sequences: its median stays "
            f"above 1e-3 up to a lag of {summary['usable_lag']}. The first marker's median is "
            f"{sci(med[first])} (≥ 1e-3 in {use[first]:.0%}), recall's symbol's "
            f"{sci(med[symbol])} (≥ 1e-3 in {use[symbol]:.0%}).")
    a0, a1 = reach("adding, default init", 0), reach("adding, default init", steps)
    r0, r1 = reach("recall, default init", 0), reach("recall, default init", steps)
    if None not in (a0, a1, r0, r1):
        grew = "grew" if a1 > a0 else "did not grow"
        text += (f" A marker at a short lag gives the forget gate a gradient that asks it to "
                 f"keep something, and the reach can grow from there: in the real run above, "
                 f"adding's reach {grew} from {a0} to {a1} steps in {steps} training steps; "
                 f"recall's went from {r0} to {r1}.")
    return text


def _row(table: pd.DataFrame, spec: str) -> dict:
    return table[table["spec"] == spec].iloc[0].to_dict()


def _solved(summary: pd.DataFrame, variant: str, T: int) -> str:
    d = summary[(summary["arch"] == variant) & (summary["seq_len"] == T)]
    return f"{int(d['successes'].iloc[0])}/{int(d['n'].iloc[0])}" if len(d) else "—"


def input_gate_sentence(table: pd.DataFrame, T: int, sweep: pd.DataFrame | None = None) -> str:
    """What chrono's input-gate bias does: the f-only rows of
    :func:`core.explain.purelag.cell_drift` against chrono (and the shipped sweep's
    outcome of each, when ``sweep`` — its summary — is given)."""
    f_only = _row(table, "lstm:forget_bias=5")
    chrono = _row(table, "lstm:gate_init=chrono")
    half = _row(table, "lstm:gate_init=chrono:bias_i=default")
    more = f_only["dx0"] > chrono["dx0"]
    text = (f"Opening the forget gate alone (bias 5, f ≈ {f_only['mean_f']:.3f}) "
            + ("passes more gradient to the symbol than chrono does"
               if more else "passes less gradient to the symbol than chrono")
            + f" (‖∂ℓ/∂x₀‖ = {sci(f_only['dx0'])} against {sci(chrono['dx0'])}). What differs is "
            f"the cell: with the input gate at i ≈ {f_only['i_distractors']:.2f} on the "
            f"{T - 1} distractor steps it adds them up, to an RMS of {f_only['rms_end']:.3g} at "
            f"t = T−1, with {f_only['saturated']:.0%} of the units in tanh's flat tails "
            f"(|tanh c| > 0.95), where the output's gradient enters the cell only at "
            f"o·(1 − tanh² c) = {f_only['dh_dc']:.3f} on average. Chrono also closes the input "
            f"gate (i ≈ {chrono['i_distractors']:.3f}): the cell's RMS is "
            f"{chrono['rms_end']:.3g}, {chrono['saturated']:.0%} saturated, o·(1 − tanh² c) = "
            f"{chrono['dh_dc']:.3f}. Chrono's forget biases with the input bias left at "
            f"torch's default do what the forget bias alone does: RMS {half['rms_end']:.3g}, "
            f"{half['saturated']:.0%} saturated.")
    if sweep is not None:
        text += (f" In the shipped sweep (recall, 3 seeds, 2000 steps) the forget bias alone "
                 f"solved {_solved(sweep, 'lstm:forget_bias=5', 50)} at T = 50, "
                 f"{_solved(sweep, 'lstm:forget_bias=5', 100)} at T = 100 and "
                 f"{_solved(sweep, 'lstm:forget_bias=5', 200)} at T = 200; chrono "
                 f"{_solved(sweep, 'lstm:gate_init=chrono', 50)}, "
                 f"{_solved(sweep, 'lstm:gate_init=chrono', 100)} and "
                 f"{_solved(sweep, 'lstm:gate_init=chrono', 200)}.")
    return text


def no_forget_gate_sentence(table: pd.DataFrame, curves: pd.DataFrame, remedy: str,
                            sweep: pd.DataFrame | None = None) -> str:
    """The 1997 LSTM (f ≡ 1) at init: its cell's drift and the remedy's row ``remedy``
    (a variant string of :data:`core.explain.purelag.DRIFT_VARIANTS`)."""
    nfg = _row(table, "lstm:no_forget_gate=true")
    fix = _row(table, remedy)
    c = curves[curves["variant"] == nfg["variant"]].sort_values("t")
    T = len(c)
    rms = c["rms"].to_numpy(dtype=float)
    bias = remedy.rpartition("bias_i=")[2]
    text = (f"Without a forget gate the cell is a running sum, c_t = Σ_s i_s ⊙ g_s: at torch's "
            f"init each distractor step adds i·g with i ≈ {nfg['i_distractors']:.2f}, and the "
            f"cell's RMS grows from {rms[1]:.3g} at t = 1 to {rms[T // 2]:.3g} at t = {T // 2} "
            f"and {rms[-1]:.3g} at t = {T - 1}, {nfg['saturated']:.0%} of the units saturated "
            f"(o·(1 − tanh² c) = {nfg['dh_dc']:.3f}). The gradient still reaches the first "
            f"cell state ({sci(nfg['cell_ratio'])} of the last one's): what the drift takes away "
            f"is the cell's use to the output. The 1997 paper's remedy, input gates biased "
            f"towards shut, here b_i = {bias} (i ≈ {fix['i_distractors']:.3f}): RMS "
            f"{fix['rms_end']:.3g} at t = {T - 1}, {fix['saturated']:.0%} saturated, "
            f"o·(1 − tanh² c) = {fix['dh_dc']:.3f}, and the gradient reaching c₀ is "
            f"{sci(fix['cell_ratio'])} of the last one's.")
    if sweep is not None:
        text += (f" In the shipped sweep the no-forget-gate LSTM at torch's init solved "
                 f"{_solved(sweep, 'lstm:no_forget_gate=true', 50)} at T = 50, "
                 f"{_solved(sweep, 'lstm:no_forget_gate=true', 100)} at T = 100 and "
                 f"{_solved(sweep, 'lstm:no_forget_gate=true', 200)} at T = 200.")
    return text


def pure_lag_law_sentence(summary: pd.DataFrame, labels: dict, order: list) -> str:
    """The shipped sweep in one sentence: per model, the longest T solved on every seed."""
    parts = []
    for variant in order:
        d = summary[summary["arch"] == variant].sort_values("seq_len")
        full = d[d["successes"] == d["n"]]
        best = d["rate"].max()
        if len(full):
            parts.append(f"{labels.get(variant, variant)} up to T = {int(full['seq_len'].max())}")
        else:
            parts.append(f"{labels.get(variant, variant)} at no T (at best "
                         f"{int(d.loc[d['rate'] == best, 'successes'].iloc[0])}/"
                         f"{int(d['n'].iloc[0])})")
    return ("The longest lag each model bridged on every seed: " + "; ".join(parts) + ".")

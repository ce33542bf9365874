"""The three answers of the original question, decided by the measurements.

:func:`claim_evidence` picks out the numbers each claim is judged on and applies the
thresholds; :func:`core.narrate.verdicts` words the result (verdict and evidence).
A different measurement changes the decision: nothing here is fixed in advance.
"""

from __future__ import annotations

import math

import pandas as pd

from core.explain.mechanisms import FORGET_VARIANTS, SATURATION_SCALE, SATURATION_VARIANTS


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def claim_evidence(rnn: dict, lstm: dict, forget: pd.DataFrame,
                   saturation: pd.DataFrame) -> dict:
    """The numbers behind each claim, and the claims' tests on them.

    From :func:`~core.explain.mechanisms.rnn_facts`, ``lstm_facts``, the table of
    ``forget_gate_gain`` and ``saturation_effect``. Returns:

    * ``steps`` (T), ``rnn`` and ``lstm`` (the facts, as given), ``scale``
      (``SATURATION_SCALE``);
    * ``forget``: rows of the forget-gate table by role, each a dict: ``default``
      (torch's init), ``bias_3`` (forget_bias = 3), ``none`` (no forget gate, f ≡ 1);
    * ``saturation``: rows of the saturation table by role: ``lstm`` (default init),
      ``lstm_shut`` (gates i f o saturated shut), ``lstm_open`` (forget gate saturated
      open), ``rnn`` (default init), ``rnn_scaled`` (weights and biases × scale);
    * ``checks``, each a threshold test on those numbers:

      - ``gate_sets_gain``: with f ≡ 1 the cell ratio ‖∂ℓ/∂c₀‖/‖∂ℓ/∂c_T−1‖ is > 1e-2,
        with forget_bias = 3 it is > 1e3 × the default's and the reach is longer;
      - ``lstm_vanishes_at_init``: the default cell ratio is < 1e-3;
      - ``rnn_passes_state``: ‖∂h_T−1/∂h_T−2‖₂ > 0.1 and ‖∂h_T−1/∂x₀‖₂ > 0;
      - ``both_vanish``: the RNN's and the LSTM's vanishing ratios are < 1e-3;
      - ``saturation_kills``: gates saturated shut give a vanishing ratio of 0 or
        < 1e-3 × the default init's;
      - ``bounded_explodes``: the scaled tanh RNN's ratio is not finite or > 1e2;
      - ``product_shrinks``: the default cell ratio is < 1e-3 while f ≡ 1's is > 1e-2;
      - ``cell_keeps_and_drops``: the forget gate saturated open reaches ≥ T−1 steps,
        the gates saturated shut fewer than T/2.
    """
    T = rnn["steps"]
    fg = forget.set_index("variant")
    names = list(FORGET_VARIANTS)
    f = {role: fg.loc[names[i]].to_dict() for role, i in (("default", 0), ("bias_3", 2),
                                                          ("none", 3))}
    sat = saturation.set_index("variant")
    s = {role: sat.loc[v[0]].to_dict() for role, v in zip(
        ("lstm", "lstm_shut", "lstm_open", "rnn", "rnn_scaled"), SATURATION_VARIANTS)}
    default, fb3, nofg = f["default"], f["bias_3"], f["none"]
    big = s["rnn_scaled"]["vanishing_ratio"]
    checks = {
        "gate_sets_gain": bool(nofg["cell_ratio"] > 1e-2
                               and fb3["cell_ratio"] > 1e3 * default["cell_ratio"]
                               and fb3["gradient_reach"] > default["gradient_reach"]),
        "lstm_vanishes_at_init": bool(default["cell_ratio"] < 1e-3),
        "rnn_passes_state": bool(rnn["jac_one_step"] > 0.1 and rnn["dep_x0"] > 0),
        "both_vanish": bool(rnn["vanishing_ratio"] < 1e-3 and lstm["vanishing_ratio"] < 1e-3),
        "saturation_kills": bool(s["lstm_shut"]["vanishing_ratio"] == 0
                                 or s["lstm_shut"]["vanishing_ratio"]
                                 < 1e-3 * s["lstm"]["vanishing_ratio"]),
        "bounded_explodes": bool((not _finite(big)) or big > 1e2),
        "product_shrinks": bool(default["cell_ratio"] < 1e-3 and nofg["cell_ratio"] > 1e-2),
        "cell_keeps_and_drops": bool(s["lstm_open"]["gradient_reach"] >= T - 1
                                     and s["lstm_shut"]["gradient_reach"] < T // 2),
    }
    return {"steps": T, "rnn": rnn, "lstm": lstm, "scale": SATURATION_SCALE,
            "forget": f, "saturation": s, "checks": checks}

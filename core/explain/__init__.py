"""Measurements behind the Explain page: why LSTM and GRU gradients survive.

Every number is measured by autograd on a real model (the model the Train page would
build from the same settings, before its first step, or a run's saved weights);
nothing is simulated, fitted or hard-coded. By concern:

* :mod:`core.explain.jacobians`: the instruments (Jacobians by autograd and their
  norms, gate values, the carry path's gain), the notation, and the untrained
  models and fixed batches they measure;
* :mod:`core.explain.mechanisms`: the RNN's product of Jacobians, the LSTM's cell
  path and its forget gate, the GRU's update gate, saturation (numbers and tables);
* :mod:`core.explain.learner`: the learner's own run, first probe against latest and
  trained weights against step 0;
* :mod:`core.explain.claims`: the three answers of the original question decided on
  those numbers;
* :mod:`core.explain.purelag`: a pure lag (recall), when the forget gate cannot learn to
  open: the forget-gate bias's gradient by lag, the first training steps, the gradient
  reaching adding's markers, the cell's drift with and without input-gate bias (and the
  tools of bench/pure_lag.py).

The words that read them are in :mod:`core.narrate`. The public names are
re-exported here: ``from core import explain; explain.rnn_facts(...)``.
"""

from core.explain.claims import claim_evidence
from core.explain.jacobians import (
    DATA_SEED_OFFSET,
    HIDDEN,
    JAC_BATCH,
    PROBE_BATCH,
    SEED,
    SEQ_LEN,
    TASK,
    direct_path_gain,
    gate_values,
    one_thread,
    per_step_factor,
    sample_batch,
    spectral_norms,
    state_jacobians,
    untrained_model,
)
from core.explain.purelag import (
    DRIFT_VARIANTS,
    FIRST_RUNS,
    bias_gradient,
    cell_drift,
    first_steps,
    first_update,
    marker_gradients,
)
from core.explain.learner import TRAINED_BUDGET, pick_run, probed_runs, run_story, trained_vs_init
from core.explain.mechanisms import (
    FORGET_VARIANTS,
    GRU_Z_BIAS,
    SATURATION_BIAS,
    SATURATION_SCALE,
    SATURATION_VARIANTS,
    decay_curves,
    forget_gate_gain,
    gru_facts,
    jacobian_norms,
    lstm_facts,
    rnn_facts,
    saturation_effect,
)

__all__ = [
    "DATA_SEED_OFFSET", "DRIFT_VARIANTS", "FIRST_RUNS", "FORGET_VARIANTS", "GRU_Z_BIAS", "HIDDEN", "JAC_BATCH", "PROBE_BATCH",
    "SATURATION_BIAS", "SATURATION_SCALE", "SATURATION_VARIANTS", "SEED", "SEQ_LEN", "TASK",
    "TRAINED_BUDGET", "bias_gradient", "cell_drift", "claim_evidence", "decay_curves",
    "direct_path_gain", "first_steps", "first_update", "forget_gate_gain", "marker_gradients",
    "gate_values", "gru_facts", "jacobian_norms", "lstm_facts", "one_thread", "per_step_factor",
    "pick_run", "probed_runs", "rnn_facts", "run_story", "sample_batch", "saturation_effect",
    "spectral_norms", "state_jacobians", "trained_vs_init", "untrained_model",
]

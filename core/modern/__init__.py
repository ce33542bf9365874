"""The field's later answers to the vanishing gradient (issue 17), one file each.

Every layer here is used exactly like the classic ones of :mod:`core.cells`, and is
registered in :mod:`core.archspec` (its states, gates, carry gain, paper):

* ``Layer(input_size, hidden_size, **options)``; ``options`` are the TrainConfig fields
  named in its ArchSpec, plus ``t_max`` (the task's steps per sequence) where the spec
  lists it under ``derived``. Attributes ``input_size``, ``hidden_size`` (the width of
  the output the readout sees), ``gate_names`` (the spec's gates), ``uses_fused = False``.
* ``forward(x)``: (batch, steps, input) → (batch, steps, hidden), the *training* path:
  the fastest exact form (a parallel scan where the recurrence is linear).
* ``unroll(x, record=False)`` → :class:`core.cells.Unrolled`: the probe's path. With
  ``record=True`` it fills

  - ``states[q]`` for each of the spec's states: either a list with one (batch, width)
    tensor per step, every later use of q_t going through that tensor (so autograd's
    ∂ℓ/∂q_t is the *total* derivative), or a :class:`core.cells.Scanned` (values and
    the graph node whose gradient is that total derivative, for a scan);
  - ``gates[g]`` for each gate: its pre-activation (the argument of its nonlinearity),
    a list per step or one (batch, steps, width) tensor when it depends on x only;
  - ``activations``: (steps,) mean over batch and units of each gate's activation, and
    ``gain`` / ``gain_max``: the carry path's per-step gain (the diagonal of
    ∂state_t/∂state_{t−1} along that path; its mean over units, and the batch-mean of
    its most carrying unit).

The probe (:func:`core.probe.probe`), the Jacobians of :mod:`core.explain.jacobians`,
the heatmaps and the trainer need nothing else.
"""

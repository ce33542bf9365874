"""The probe input z: total derivatives out of a hand-written backward pass.

IndRNN and the orthogonal RNN train through an autograd Function whose backward walks the
steps by hand, computing δ_t = ∂ℓ/∂h_t (total) on its way. Their probe runs that same
Function with one more input, a zero tensor z entering as

.. math::
    h_t = φ(a_t) + z_t.

z_t enters h_t with coefficient 1 and reaches the loss only through h_t, so by the chain
rule ∂ℓ/∂z_t = ∂ℓ/∂h_t · ∂h_t/∂z_t = ∂ℓ/∂h_t: the *total* derivative δ_t along every later
step, which the backward writes out for z. z = 0 adds exactly 0.0, so h is bit for bit the
training path's. The state is recorded as a :class:`core.cells.Scanned` (values h, totals
z), as for a scan, so the probe costs one forward and one backward of the training path
instead of a graph node per step (measured in BENCHMARKS.md, "Probe cost").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from core.cells import Scanned, Unrolled

Tensor = torch.Tensor


def probe_through(recurrence, g: Tensor, weight: Tensor, hidden_size: int,
                  unit_gain: Callable[[Tensor], Tensor]) -> Unrolled:
    """Run ``recurrence.apply(g, weight, z)`` (g time first: (steps, batch, hidden)) with
    the zero probe input z, and record h with its total derivatives and the carry gain.

    ``unit_gain(h)`` maps h (batch, steps, hidden) to the per-step gain of each unit,
    averaged over the batch: (steps, hidden), the diagonal of ∂h_t/∂h_{t−1} along the
    carry path. ``gain`` is its mean over units, ``gain_max`` its most carrying unit.
    """
    steps, batch = g.shape[0], g.shape[1]
    z = g.new_zeros(batch, steps, hidden_size, requires_grad=True)  # (B, T, H), all zeros
    h = recurrence.apply(g, weight, z.transpose(0, 1)).transpose(0, 1)  # h_t = φ(a_t) + 0
    with torch.no_grad():
        d = unit_gain(h)
        gain, gain_max = d.mean(1), d.amax(1)
    return Unrolled(h=h, states={"h": Scanned(values=h, totals=z)},
                    activations={"gain": gain, "gain_max": gain_max})

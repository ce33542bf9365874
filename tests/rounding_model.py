"""How far a correct float32 computation may land from the exact result: a rounding model.

A float32 result differs from the exact one by the rounding errors of every operation,
carried forward by the computation: how far depends on the data (an LSTM whose cell
grows without bound over 100 steps amplifies them ~1000-fold; the same cell with a
forget gate does not). So a tolerance must come from the quantity's own conditioning,
not from what one CPU's kernels happened to produce. This module measures it.

:class:`Float32Rounding` runs a float64 computation under a dispatch mode that gives
every arithmetic result x the error of one float32 rounding, x(1 + δ) with δ random
(Monte Carlo arithmetic, Parker 1997). The standard model of floating point is
fl(x ∘ y) = (x ∘ y)(1 + δ), |δ| ≤ u = 2⁻²⁴ (round to nearest); δ is drawn with the
standard deviation u/√3 of a δ uniform on [−u, u], independently per element and
per operation. Per kind of operation:

* ``+ − × ÷``, x²: one rounding of the result.
* ``addcmul`` (a + v·b·c): two, the product's and the sum's.
* ``sigmoid``, ``tanh``, ``exp``: an error uniform within ±FUNC_REL = 3.2e-7, the
  largest of the bounds tests/test_native.py holds the float32 functions to (C's and
  torch's), except tanh's near |x| = 1/4, where cancellation allows up to 8.1e-7: few
  inputs, and the largest error measured there (2.8e-7) is within the √3 below. (The
  functions' measured RMS errors, ≤ 0.5 u, are a sixth of the model's 1.8e-7.)
* inner products and sums of K terms (``mm``, ``addmm``, ``sum``, ``mean``): the
  error of recursive summation (Higham, Accuracy and Stability of Numerical
  Algorithms, ch. 4), Σ_k s_k δ_k with s_k the k-th partial sum, whose
  variance (u²/3)·Σ_k s_k² is taken for terms t_k of random order and sign,
  E Σ_k s_k² ≈ K·c²/3 + K·Σ_k t_k²/2 (c the sum: its drift, and the random walk
  of the rest), Σ_k t_k² computed exactly as (A∘A)(B∘B) in float64. Recursive
  summation is the least accurate of the orders BLAS libraries use (blocked,
  pairwise, FMA chains round less), so this covers MKL and OpenBLAS alike.
* ``log_softmax`` and its backward (cross-entropy losses): the errors of the
  operations they are made of (x − max, exp, the sum over classes, log; exp(out) ·
  Σ g and the difference), added as independent.
* views, copies, fills, max, negation, a loss picked per element (``nll_loss``
  without reduction) and its gradient: exact, no error.

Any other floating-point operation raises: a change to the code under test that
introduces a new kind of arithmetic must be classified here, not silently go
unmodelled.

Each run of the float64 computation under the mode is one draw of "a float32
computation of these operations": the spread of ``draws`` such runs around the exact
float64 result, ``spread()``, is the error a correct float32 implementation must be
expected to have, quantity by quantity (and time step by time step). A float32
implementation whose error exceeds FACTOR times that spread is not explained by
rounding. FACTOR = 8, from two margins:

* the model is a root mean square, built from the worst case of each operation
  taken uniform (each term's RMS is 1/√3 of its worst case); an implementation can
  be worse than the RMS by up to √3 per term where its rounding is systematically at
  the bound (a function accurate to exactly FUNC_REL everywhere), and
* the spread is estimated from 4 draws: for a quantity that is a single number (a
  bias gradient), an implementation drawn from exactly the model's distribution
  exceeds 8 times the 4-draw estimate with probability 0.13 % (Student's t with
  4 degrees of freedom: P(|t| > 8) ≈ 0.0013, P(|t| > 8/√3) ≈ 0.01); for tensors of
  many elements the estimate is far tighter.

(Measured, AMD EPYC Zen 4 with MKL: both LSTM implementations at 0.55 of the spread at
most, 0.07 of the allowance, for every quantity and step of the four variants at
H = 64, T = 100; faults of 1e-4 at 19-63 times the allowance: tests/test_native.py.)

What it does not model: underflow (results below float32's normal range, 2⁻¹²⁶,
lose relative accuracy); :func:`beyond` allows 2⁻¹²⁶ per element for it.

For float64 the same spread, scaled by u₆₄/u₃₂ = 2⁻²⁹, is the error float64 rounding
must be expected to have (the conditioning is the problem's, the same in both); two
float64 implementations differ by √2 times that (two independent draws).
"""

from __future__ import annotations

import math
import random

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

U32 = 2.0**-24  # float32's unit roundoff: |fl(x) − x| ≤ u·|x| (round to nearest)
U64 = 2.0**-53  # float64's
FLT_MIN = 2.0**-126  # float32's smallest normal number
DBL_MIN = 2.0**-1022  # float64's
FUNC_REL = 3.2e-7  # relative accuracy of the float32 exp, sigmoid, tanh (tests/test_native.py)
FACTOR = 8.0
DRAWS = 4

_ONE_ROUNDING = {
    aten.add.Tensor, aten.add_.Tensor, aten.add.out, aten.add.Scalar, aten.add_.Scalar,
    aten.sub.Tensor, aten.sub_.Tensor, aten.sub.out, aten.sub.Scalar, aten.rsub.Scalar,
    aten.rsub.Tensor, aten.mul.Tensor, aten.mul_.Tensor, aten.mul.out, aten.mul.Scalar,
    aten.mul_.Scalar, aten.div.Tensor, aten.div_.Tensor, aten.div.out, aten.div.Scalar,
    aten.div_.Scalar, aten.pow.Tensor_Scalar, aten.pow.Tensor_Scalar_out,
    aten.reciprocal.default, aten.sqrt.default,
}
_FUNCTIONS = {
    aten.sigmoid.default, aten.sigmoid.out, aten.sigmoid_.default,
    aten.tanh.default, aten.tanh.out, aten.tanh_.default,
    aten.exp.default, aten.exp.out, aten.exp_.default,
}
_ADDCMUL = {aten.addcmul.default, aten.addcmul.out, aten.addcmul_.default}
_MM = {aten.mm.default, aten.mm.out}
_ADDMM = {aten.addmm.default, aten.addmm.out, aten.addmm_.default}
_SUMS = {aten.sum.default, aten.sum.dim_IntList, aten.sum.IntList_out}
_MEANS = {aten.mean.default, aten.mean.dim}
_LOG_SOFTMAX = {aten._log_softmax.default}
_LOG_SOFTMAX_BACKWARD = {aten._log_softmax_backward_data.default}
# Exact when they pick one element per output (reduction "none" = 0); a reduction would sum.
_PICK = {aten.nll_loss_forward.default: 3, aten.nll_loss2d_forward.default: 3,
         aten.nll_loss_backward.default: 4, aten.nll_loss2d_backward.default: 4}
_EXACT = {
    aten.detach.default, aten.clone.default, aten.copy_.default, aten._to_copy.default,
    aten.contiguous.default, aten.empty.memory_format, aten.empty_like.default,
    aten.zeros.default, aten.zeros_like.default, aten.ones.default, aten.ones_like.default,
    aten.full.default, aten.full_like.default, aten.fill_.Scalar, aten.zero_.default,
    aten.cat.default, aten.stack.default, aten.expand.default, aten.select.int,
    aten.slice.Tensor, aten.split.Tensor, aten.split_with_sizes.default, aten.unbind.int,
    aten.t.default, aten.transpose.int, aten.permute.default, aten.reshape.default,
    aten.view.default, aten._unsafe_view.default, aten.unsqueeze.default,
    aten.squeeze.dim, aten.squeeze.default, aten.select_backward.default,
    aten.slice_backward.default, aten.max.dim, aten.max.default, aten.amax.default,
    aten.neg.default, aten.neg.out, aten.neg_.default, aten.abs.default, aten.sign.out,
    aten.sign.default, aten.relu.default, aten.relu_.default, aten.alias.default,
    aten.lift_fresh.default, aten.new_empty.default, aten.new_zeros.default,
}


class Float32Rounding(TorchDispatchMode):
    """float64 arithmetic with a random float32 rounding error on every result (see above)."""

    def __init__(self, seed: int):
        super().__init__()
        # Noise comes from one pre-drawn buffer at random offsets: drawing afresh for
        # each of the ~1,500 operations of a pass would cost more than the pass.
        self._normal = torch.randn(1 << 22, generator=torch.Generator().manual_seed(seed),
                                   dtype=torch.float64)
        self._offsets = random.Random(seed)

    def _add_noise(self, out: torch.Tensor, std: torch.Tensor) -> None:
        """out += N(0, std²), element by element."""
        n = out.numel()
        if n > self._normal.numel():
            raise ValueError(f"rounding model: a result of {n} elements is larger than its noise buffer")
        k = self._offsets.randrange(self._normal.numel() - n + 1)
        out.addcmul_(std, self._normal[k : k + n].view(out.shape))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _PICK:
            if args[_PICK[func]] != 0:
                raise NotImplementedError(f"rounding model: {func} with a reduction")
            return out
        if isinstance(out, (tuple, list)):  # max.dim, split, unbind: views or exact picks
            if func not in _EXACT and any(isinstance(o, torch.Tensor) and o.is_floating_point()
                                          for o in out):
                raise NotImplementedError(f"rounding model: classify {func} (see {__name__})")
            return out
        if not isinstance(out, torch.Tensor) or out.dtype != torch.float64:
            return out  # indices, masks
        rms = U32 / math.sqrt(3)  # of δ uniform on [−u, u]
        f_rms = FUNC_REL / math.sqrt(3)
        if func in _ONE_ROUNDING:
            self._add_noise(out, out.abs() * rms)
        elif func in _FUNCTIONS:
            self._add_noise(out, out.abs() * f_rms)
        elif func in _ADDCMUL:  # self + value · t1 · t2: the product rounds, then the sum
            product = args[1] * args[2] * kwargs.get("value", 1.0)
            self._add_noise(out, torch.sqrt(product * product + out * out) * rms)
        elif func in _MM or func in _ADDMM:
            if func in _MM:
                a, b, extra = args[0], args[1], None
            else:
                extra, a, b = args[0], args[1], args[2]
            squares = (a * a) @ (b * b)  # Σ_k t_k² of each inner product, exactly
            terms = a.shape[-1]
            if extra is not None:  # addmm: the added matrix is one more term
                squares = squares + extra * extra
                terms += 1
            self._add_noise(out, _summation_std(out, squares, terms) * rms)
        elif func in _SUMS or func in _MEANS:
            x = args[0]
            dims = args[1] if len(args) > 1 else kwargs.get("dim")
            keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
            terms = max(1, x.numel() // max(1, out.numel()))
            squares = (x * x).sum(dim=dims, keepdim=keepdim) if dims is not None else (x * x).sum()
            total = out * terms if func in _MEANS else out
            std = _summation_std(total, squares, terms) * rms
            self._add_noise(out, std / terms if func in _MEANS else std)
        elif func in _LOG_SOFTMAX:  # out = (x − m) − log Σ_j exp(x_j − m), m = max x
            x, dim = args[0], args[1]
            shifted = x - x.amax(dim, keepdim=True)
            e = shifted.exp()
            total = e.sum(dim, keepdim=True)
            terms = x.shape[dim]
            var_total = (f_rms**2) * (e * e).sum(dim, keepdim=True) + (
                _summation_std(total, (e * e).sum(dim, keepdim=True), terms) * rms) ** 2
            var_log = var_total / (total * total) + (f_rms * total.log()) ** 2
            self._add_noise(out, torch.sqrt(rms**2 * (shifted * shifted + out * out) + var_log))
        elif func in _LOG_SOFTMAX_BACKWARD:  # out = g − exp(y) · Σ_j g_j, y the forward's output
            g, y, dim = args[0], args[1], args[2]
            p = y.exp()
            total = g.sum(dim, keepdim=True)
            sum_std = _summation_std(total, (g * g).sum(dim, keepdim=True), g.shape[dim]) * rms
            product = p * total
            var = (rms**2) * (out * out + product * product) + (f_rms * product) ** 2 + (p * sum_std) ** 2
            self._add_noise(out, torch.sqrt(var))
        elif func not in _EXACT:
            raise NotImplementedError(f"rounding model: classify {func} (see {__name__})")
        return out


def _summation_std(total: torch.Tensor, squares: torch.Tensor, terms: int) -> torch.Tensor:
    """sqrt(E Σ_k s_k²) of recursive summation, plus the final result's own rounding."""
    t2 = total * total
    return torch.sqrt(terms * (t2 / 3 + squares / 2) + t2)


def spread(exact: dict[str, torch.Tensor], draws: list[dict[str, torch.Tensor]],
           per_step: tuple[str, ...] = ()) -> dict[str, tuple[float, torch.Tensor | None]]:
    """Root mean square over the draws of ‖draw − exact‖, per quantity; for the names
    starting with ``per_step`` also per time step (first dimension), as a tensor."""
    out = {}
    for k, t in exact.items():
        devs = [(d[k].double() - t) for d in draws]
        whole = math.sqrt(sum(e.norm().item() ** 2 for e in devs) / len(devs))
        steps = None
        if k.startswith(per_step) and t.dim() >= 2:
            steps = torch.sqrt(sum(e.flatten(1).norm(dim=1) ** 2 for e in devs) / len(devs))
        out[k] = (whole, steps)
    return out


def beyond(result: dict[str, torch.Tensor], exact: dict[str, torch.Tensor],
           spreads: dict[str, tuple[float, torch.Tensor | None]], factor: float = FACTOR,
           tiny: float = FLT_MIN):
    """The worst ratio of error to allowed error, and every quantity (and step) where
    ``result`` is further from ``exact`` than ``factor`` times the model's spread, plus
    ``tiny`` per element (underflow): (worst ratio, [(name, step or None, error, allowed)])."""
    worst, bad = 0.0, []
    for k, t in exact.items():
        whole, steps = spreads[k]
        err = result[k].double() - t
        allowed = factor * whole + tiny * math.sqrt(t.numel())
        e = err.norm().item()
        worst = max(worst, e / allowed)
        if not e <= allowed:
            bad.append((k, None, e, allowed))
        if steps is not None:
            e_t = err.flatten(1).norm(dim=1)
            allowed_t = factor * steps + tiny * math.sqrt(t[0].numel())
            ratio = e_t / allowed_t
            worst = max(worst, ratio.max().item())
            for s in torch.nonzero(~(e_t <= allowed_t)).flatten().tolist():
                bad.append((k, s, e_t[s].item(), allowed_t[s].item()))
    return worst, bad

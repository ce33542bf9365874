"""Backpropagation through time, written out by hand: every per-step gradient in one pass.

:func:`core.probe.probe` measures ∂ℓ/∂q_t by asking autograd for the gradient of
every per-step tensor of the explicit unroll. That is the *reference* definition,
but it builds a graph of ~15 nodes per time step and keeps every one of their
gradients, which costs several plain training steps. Here the same numbers come
from the analytic backward pass of each cell, run once over the whole batch:

* the **forward** pass runs the cell equations step by step, writing each step's
  h_t, c_t and gate activations into preallocated time-major buffers (RNN and
  GRU: the input projection W_ih x_t + b of all steps is one matmul before the
  loop; LSTM: one matmul per step on the concatenated row [x_t, 1, h_{t−1}]);
* the **readout and loss**: only ∂ℓ/∂(outputs) comes from autograd (of the
  task's loss, whatever it is); through the Linear readout that gives
  dy_t = ∂ℓ/∂h_t *through the readout of step t only*: the gradient that enters
  the recurrence at step t;
* the **backward** pass walks t = T−1 … 0 and applies the chain rule of the cell
  by hand. It produces exactly the *total* derivatives ∂ℓ/∂h_t, ∂ℓ/∂c_t and
  δ_t = ∂ℓ/∂(gate pre-activations) that the probe reports, and nothing more.
  Everything elementwise that does not depend on the gradient (σ'(·), tanh'(·),
  products of gates) is computed for all steps at once before the loop, so the
  loop itself is one small matmul and a few multiplies per step;
* the **parameter gradients** are then a few large matmuls over all steps at
  once, e.g. ∂ℓ/∂W_hh = Σ_t δ_tᵀ h_{t−1} is one (T·B)-row matmul.

Shapes: B sequences, T steps, H hidden units; buffers are time-major (T, B, ·)
so that one step's slice is contiguous, and are kept from one step to the next
(:class:`Workspace`). A gate's "pre-activation" is the
argument of its nonlinearity, in torch's gate order (LSTM i, f, g, o; GRU r, z,
n). Since sequences in a batch do not interact, the backward pass of Σ_b ℓ_b
gives every per-sequence ∂ℓ_b/∂q_{t,b} at once, as in :mod:`core.probe`; the
parameter gradients are those of the *mean* loss (divided by B).

It is the same computation as the reference, only organised differently: in
float64 the profile agrees with :func:`core.probe.probe` to ~1e-15
(tests/test_bptt.py), and it is exact for every architecture and variant.

One file on purpose (~730 lines): the three cells' backward passes share one
set of conventions (time-major buffers, row form, the workspace, the readout and
the parameter gradients) and are meant to be read side by side, each against its
forward equations in :mod:`core.cells` and its reference in :mod:`core.probe`.

Derivatives used below: σ'(a) = σ(a)(1 − σ(a)), tanh'(a) = 1 − tanh²(a),
relu'(a) = [a > 0]; ⊙ is the elementwise product. Steps are written in "row
form" (a batch of row vectors): W h becomes h Wᵀ and Wᵀ δ becomes δ W.

Public functions:

* :func:`fast_probe` — drop-in for :func:`core.probe.probe` (same ProbeResult).
* :func:`fast_train_step` — the same pass without the probe's bookkeeping: sets
  ``p.grad`` of every parameter, returns (mean loss, outputs).
* :func:`backprop` — the raw pass: every per-step gradient as a tensor.
* :func:`use_fast_probe`, :func:`use_fast_train` — what the trainer uses.
  ``RNNLAB_REFERENCE_PROBE=1`` in the environment (or ``core.bptt.REFERENCE =
  True``) sends the trainer back to :func:`core.probe.probe` and torch.nn.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch

from core import native, settings
from core.models import SequenceModel
from core.probe import CARRY_GATES, ProbeResult, long_table, summarise_arrays
from core.tasks import Task

Tensor = torch.Tensor

#: Escape hatch: when True the trainer uses the reference probe (core.probe.probe)
#: and torch.nn's fused module for every step, never this module.
REFERENCE: bool = settings.get("RNNLAB_REFERENCE_PROBE")

#: Architectures whose plain training step is faster here than through torch.nn
#: (measured by ``python -m bench``, see BENCHMARKS.md): torch.nn's GRU and RNN
#: run a per-step autograd graph on CPU. Its LSTM has a fused oneDNN kernel, which
#: the LSTM pass beats only with its loops in C (core.native); LSTM variants (no
#: forget gate, CIFG) have no fused kernel at all.
FASTER_THAN_TORCH = ("rnn_tanh", "rnn_relu", "gru")


def use_fast_probe(model: SequenceModel) -> bool:
    """Whether probed training steps should use :func:`fast_probe` (all archs, exact)."""
    return not REFERENCE and model.arch in _PASSES


def use_fast_train(model: SequenceModel) -> bool:
    """Whether unprobed training steps should use :func:`fast_train_step`."""
    if REFERENCE or model.arch not in _PASSES:
        return False
    if model.arch == "lstm" and _native_lstm(model.recurrent.weight_hh_l0.dtype) is not None:
        return True
    return model.arch in FASTER_THAN_TORCH or not model.recurrent.uses_fused


def _native_lstm(dtype: torch.dtype):
    """The C loops for an LSTM of this dtype, or None (then the loops run in Python)."""
    kernels = native.lstm_kernels()
    return kernels if kernels is not None and kernels.supports(dtype) else None


@dataclass
class Backprop:
    """What one hand-written forward/backward pass over a batch yields.

    ``states`` maps h (and c for the LSTM) to a (T, B, H) tensor of total
    derivatives ∂ℓ_b/∂q_{t,b} of the per-sequence losses; ``gates`` maps each
    gate name to its pre-activation gradient (T, B, H) (possibly a strided view);
    ``activations`` maps a gate name to its (T,) mean activation over batch and
    units (the gates the reference probe records). ``param_grads`` are gradients
    of the *mean* loss in ``model.parameters()`` order.

    ``states`` and ``gates`` live in the model's workspace (see :class:`Workspace`)
    and are overwritten by its next pass: clone them to keep them.
    """

    per_seq: Tensor  # (B,) per-sequence losses ℓ_b
    outputs: Tensor  # (B, T, output) readout outputs, detached
    param_grads: list[Tensor]
    states: dict[str, Tensor] = field(default_factory=dict)
    gates: dict[str, Tensor] = field(default_factory=dict)
    activations: dict[str, Tensor] = field(default_factory=dict)
    # The same gradients as contiguous (T, B, k, H) blocks with their k names ("" =
    # not reported): norms over these are several times faster than over strided slices.
    blocks: list[tuple[tuple[str, ...], Tensor]] = field(default_factory=list)

    def grad_norms(self) -> dict[str, Tensor]:
        """grad_norm(t, q) = mean_b ‖∂ℓ_b/∂q_{t,b}‖₂ for every recorded quantity: (T,) each."""
        out = {}
        with torch.inference_mode():
            for names, block in self.blocks:
                norms = _unit_norms(block).mean(dim=1)  # (T, k)
                out.update((q, norms[:, j]) for j, q in enumerate(names) if q)
        return out


def _unit_norms(block: Tensor) -> Tensor:
    """‖·‖₂ over the last dimension, as float64.

    float32 norms run with subnormal floats flushed to zero: a vanished gradient
    (say 1e-25, common at init) has a square below float32's normal range (1.2e-38),
    and x86 handles each subnormal result in microcode, ~100x slower, which made
    this the slowest part of a probe. The reference probe loses those squares in
    float32 as well (below 1.4e-45 they round to zero; between, they keep a few
    digits), so only norms under ~1e-19 can differ, and there the reference is
    itself inexact. float64 (the tests) is unaffected.
    """
    if block.dtype != torch.float32:
        return block.norm(dim=-1).double()
    was_flushing = _flushes_subnormals()
    torch.set_flush_denormal(True)
    try:
        return block.norm(dim=-1).double()
    finally:
        torch.set_flush_denormal(was_flushing)


def _flushes_subnormals() -> bool:
    """Whether this thread already flushes subnormals (torch has no getter for it)."""
    return torch.tensor([1e-40], dtype=torch.float32).mul_(1.0).item() == 0.0


class Workspace:
    """Named buffers kept from one pass to the next, one set per model.

    An LSTM pass over (T, B) = (100, 64) with H = 64 needs ~40 MB of buffers.
    Allocated afresh each step, that memory comes back from the OS zero-filled,
    page by page (glibc returns large blocks to the OS on free): ~4000 page faults
    per LSTM probe, a third of its time. Reused, it costs nothing. The trainer
    releases a model's workspace when its run ends (:func:`release_workspace`).
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape, dtype: torch.dtype) -> Tensor:
        """An uninitialised buffer of this shape and dtype (the same one as last time)."""
        shape = torch.Size(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = torch.empty(shape, dtype=dtype)
        return buf

    def getter(self, dtype: torch.dtype):
        """``buf(name, *shape)`` for one dtype: how the passes below ask for memory."""
        return lambda name, *shape: self.get(name, shape, dtype)


_WORKSPACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_WORKSPACES_LOCK = threading.Lock()  # trainings may run in threads side by side


def workspace(model: SequenceModel) -> Workspace:
    """The model's workspace (freed with the model). One pass at a time per model."""
    with _WORKSPACES_LOCK:
        ws = _WORKSPACES.get(model)
        if ws is None:
            ws = _WORKSPACES[model] = Workspace()
        return ws


def release_workspace(model: SequenceModel) -> None:
    """Free the model's buffers now (they are rebuilt on its next pass)."""
    with _WORKSPACES_LOCK:
        _WORKSPACES.pop(model, None)


#: When a dict, every pass appends the thread CPU seconds of each of its sections
#: to it (``python -m bench.profile`` does this); None records nothing.
PHASE_TIMES: dict[str, list[float]] | None = None


class _Phases:
    """Labels the sections of a pass for torch.profiler (see ``python -m bench.profile``):
    ``phase("forward")`` ends the previous section and starts ``bptt.forward``.
    Nothing at all unless a profiler runs or PHASE_TIMES is set (a record_function
    costs ~30 µs a label even with no profiler: 0.15 ms a pass, 3 % of a small probe)."""

    def __init__(self) -> None:
        self._on = PHASE_TIMES is not None or torch.autograd._profiler_enabled()
        self._current = None
        self._name = ""
        self._t0 = 0.0

    def __call__(self, name: str | None) -> None:
        if not self._on:
            return
        if self._current is not None:
            self._current.__exit__(None, None, None)
            self._current = None
            if PHASE_TIMES is not None:
                PHASE_TIMES.setdefault(self._name, []).append(time.thread_time() - self._t0)
        if name:
            self._name, self._t0 = name, time.thread_time()
            self._current = torch.profiler.record_function(f"bptt.{name}")
            self._current.__enter__()


# ----------------------------------------------------------------------------- helpers


def _weights(layer: torch.nn.RNNBase) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(W_ih, W_hh, b_ih, b_hh), detached: the hand-written passes build no graph."""
    return (
        layer.weight_ih_l0.detach(),
        layer.weight_hh_l0.detach(),
        layer.bias_ih_l0.detach(),
        layer.bias_hh_l0.detach(),
    )


def _inputs(x: Tensor, buf) -> Tensor:
    """The batch-first input x (B, T, in) as time-major rows (T·B, in + 1), last column 1.

    The column of ones turns the bias into one more weight column: W_ih x_t + b is
    one matmul, and so are both of its gradients (see :func:`_weight_grad`).
    """
    B, T, n_in = x.shape
    x1 = buf("x1", T * B, n_in + 1)
    x1[:, :n_in].view(T, B, n_in).copy_(x.transpose(0, 1))
    x1[:, n_in].fill_(1.0)
    return x1


def _input_projection(x1: Tensor, w_ih: Tensor, bias: Tensor, out: Tensor) -> Tensor:
    """W_ih x_t + bias for every step at once: one (T·B)-row matmul into ``out`` (T, B, rows)."""
    T, B, rows = out.shape
    torch.addmm(bias, x1[:, :-1], w_ih.t(), out=out.view(T * B, rows))
    return out


def _weight_grad(delta: Tensor, inputs: Tensor) -> Tensor:
    """∂ℓ/∂W = Σ_{t,b} δ_{t,b}ᵀ v_{t,b} for a map v ↦ W v, all steps in one matmul.

    ``delta`` holds ∂ℓ/∂(W v) and ``inputs`` the v, both with T·B rows (any
    leading shape). With the ones column of :func:`_inputs` appended to v, the
    last column of the result is ∂ℓ/∂b = Σ δ. (Computed as (vᵀ δ)ᵀ: MKL is much
    faster that way round for these thin matrices.)
    """
    d = delta.reshape(-1, delta.shape[-1])
    v = inputs.reshape(-1, inputs.shape[-1])
    return torch.mm(v.t(), d).t()


def _split_bias(g: Tensor) -> tuple[Tensor, Tensor]:
    """(∂ℓ/∂W, ∂ℓ/∂b) from a gradient computed with the ones column (last)."""
    return g[:, :-1].contiguous(), g[:, -1].contiguous()


def _readout(model: SequenceModel, task: Task, h_out: Tensor, y: Tensor, dy: Tensor):
    """The readout y_t = W_out h_t + b_out of every step, the loss, and their gradients.

    Only ∂ℓ/∂(outputs) comes from autograd (of the task's loss, whatever it is);
    the Linear layer is differentiated by hand. Fills ``dy`` (T, B, H) with
    dy_t = ∂(Σ_b ℓ_b)/∂h_t through the readout of step t only: the gradient that
    *enters* the recurrence at step t. Returns (per-sequence losses, outputs
    (B, T, out), [∂ℓ/∂W_out, ∂ℓ/∂b_out]).
    """
    T, B, H = h_out.shape
    w_out, b_out = model.readout.weight.detach(), model.readout.bias.detach()
    h_flat = h_out.reshape(T * B, H)
    with torch.inference_mode(False), torch.enable_grad():  # autograd, for the task's loss only
        out = torch.addmm(b_out, h_flat, w_out.t()).view(T, B, -1)  # y_t = W_out h_t + b_out
        outputs = out.transpose(0, 1).detach().requires_grad_(True)  # (B, T, out), as the task expects
        per_seq = task.loss(outputs, y)
        (d_out,) = torch.autograd.grad(per_seq.sum(), [outputs])  # ∂(Σ_b ℓ_b)/∂y_t
    d_out = d_out.transpose(0, 1).reshape(T * B, -1)
    torch.mm(d_out, w_out, out=dy.view(T * B, H))  # dy_t = W_outᵀ ∂ℓ/∂y_t
    d_w_out = _weight_grad(d_out, h_flat)  # ∂ℓ/∂W_out = Σ_t (∂ℓ/∂y_t)ᵀ h_t
    d_b_out = d_out.sum(0)  # ∂ℓ/∂b_out = Σ_t ∂ℓ/∂y_t
    return per_seq.detach(), outputs.detach().contiguous(), [d_w_out.contiguous(), d_b_out]


def _one_minus_square(v: Tensor, out: Tensor | None = None) -> Tensor:
    """1 − v² in one pass (tanh' from the tanh's output)."""
    return torch.addcmul(torch.ones((), dtype=v.dtype), v, v, value=-1.0, out=out)


# --------------------------------------------------------------------------- tanh / relu RNN


def _rnn_pass(model: SequenceModel, task: Task, x: Tensor, y: Tensor, record: bool) -> Backprop:
    """Elman RNN:  a_t = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh,  h_t = φ(a_t)."""
    layer = model.recurrent
    w_ih, w_hh, b_ih, b_hh = _weights(layer)
    B, T, _ = x.shape
    H = layer.hidden_size
    relu = layer.nonlinearity == "relu"
    ws = workspace(model)
    buf = ws.getter(x.dtype)
    phase = _Phases()
    phase("forward")
    x1 = _inputs(x, buf)

    # hs[t + 1] = h_t and hs[0] = h_{−1} = 0, so hs[:-1] are the inputs h_{t−1}.
    hs = buf("hs", T + 1, B, H)
    hs[0].zero_()
    gx = _input_projection(x1, w_ih, b_ih + b_hh, buf("gx", T, B, H))  # W_ih x_t + b_ih + b_hh
    w_hh_t = w_hh.t()
    h_, gx_ = hs.unbind(0), gx.unbind(0)
    phi_ = torch.Tensor.relu_ if relu else torch.Tensor.tanh_
    for t in range(T):
        a = torch.addmm(gx_[t], h_[t], w_hh_t, out=h_[t + 1])  # a_t = … + W_hh h_{t−1}
        phi_(a)  # h_t = φ(a_t)
    h_out = hs[1:]

    phase("readout")
    dy = buf("dy", T, B, H)
    per_seq, outputs, readout_grads = _readout(model, task, h_out, y, dy)

    phase("local_derivatives")  # the backward pass starts here
    # φ'(a_t) from the output alone: tanh' = 1 − h_t², relu' = [h_t > 0] = sign(h_t).
    dphi = buf("dphi", T, B, H)
    if relu:
        torch.sign(h_out, out=dphi)
    else:
        _one_minus_square(h_out, out=dphi)
    phase("backward_loop")
    dh = buf("dh", T, B, H)  # ∂ℓ/∂h_t (total)
    da = buf("da", T + 1, B, H)  # δ_t = ∂ℓ/∂a_t;  δ_T = 0: nothing after the last step
    da[T].zero_()
    dh_, da_, dy_, dphi_ = dh.unbind(0), da.unbind(0), dy.unbind(0), dphi.unbind(0)
    for t in range(T - 1, -1, -1):
        # ∂ℓ/∂h_t = dy_t + W_hhᵀ δ_{t+1}          (h_t feeds the readout and step t+1)
        torch.addmm(dy_[t], da_[t + 1], w_hh, out=dh_[t])
        # δ_t = ∂ℓ/∂h_t ⊙ φ'(a_t)
        torch.mul(dh_[t], dphi_[t], out=da_[t])

    phase("parameter_grads")  # a_t is linear in W_ih, W_hh and both biases
    da = da[:T]
    d_w_ih, d_b = _split_bias(_weight_grad(da, x1))  # Σ_t δ_tᵀ x_t,  Σ_t δ_t
    d_w_hh = _weight_grad(da, hs[:T]).contiguous()  # Σ_t δ_tᵀ h_{t−1}
    grads = _param_grads(model, [d_w_ih, d_w_hh, d_b, d_b], readout_grads, B)
    phase(None)
    result = Backprop(per_seq, outputs, grads)
    if record:
        result.states = {"h": dh}
        result.blocks = [(("h",), dh.unsqueeze(2))]
    return result


# ------------------------------------------------------------------------------------- LSTM


def _lstm_pass(model: SequenceModel, task: Task, x: Tensor, y: Tensor, record: bool) -> Backprop:
    """LSTM with torch's gate order (i, f, g, o); see :class:`core.cells.LSTMLayer`.

    pre_t = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh          (4H rows: i, f, g, o)
    i_t, f_t, o_t = σ(pre_t^{i,f,o}),  g_t = tanh(pre_t^g)
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t,   h_t = o_t ⊙ tanh(c_t)

    Variants: no_forget_gate sets f_t ≡ 1; coupled_gates (CIFG) sets i_t = 1 − f_t.
    """
    layer = model.recurrent
    w_ih, w_hh, b_ih, b_hh = _weights(layer)
    B, T, _ = x.shape
    H = layer.hidden_size
    no_forget, coupled = layer.no_forget_gate, layer.coupled_gates
    ws = workspace(model)
    buf = ws.getter(x.dtype)
    phase = _Phases()
    phase("forward")
    # One matmul per step, on the row [x_t, 1, h_{t−1}]:
    #   pre_t = [W_ih | b_ih + b_hh | W_hh] [x_t; 1; h_{t−1}]
    # xh[t] holds that row, and step t writes h_t into the h columns of xh[t + 1].
    # (The step's pre-activations go to one small buffer that stays in cache.)
    n_in = x.shape[2]
    xh = buf("xh", T + 1, B, n_in + 1 + H)
    xh[:T, :, :n_in].copy_(x.transpose(0, 1))
    xh[:, :, n_in].fill_(1.0)
    xh[0, :, n_in + 1 :].zero_()  # h_{−1} = 0
    # Contiguous (K, 4H): a transposed view makes each step's small matmul ~30 % slower.
    w_t = torch.cat([w_ih, (b_ih + b_hh)[:, None], w_hh], dim=1).t().contiguous()
    pre = buf("pre", B, 4 * H)
    # act[t] = (i_t, f_t, g_t, o_t). An extra all-zero step T makes f_T = 0, so the
    # backward loop needs no special case at its first step.
    act = buf("act", T + 1, B, 4 * H)
    act[T].zero_()
    cs = buf("cs", T + 1, B, H)  # cs[t + 1] = c_t, cs[0] = c_{−1} = 0
    cs[0].zero_()
    tanh_c = buf("tanh_c", T, B, H)  # tanh(c_t), reused by the backward pass
    kernels = _native_lstm(x.dtype)
    variant = native.variant(no_forget, coupled)
    if kernels is not None:  # the same loop in C (core/native/lstm.c), one call
        kernels.forward(T, B, H, n_in + 1 + H, variant, xh, w_t, pre, act, cs, tanh_c)
    else:
        _lstm_forward_loop(xh, w_t, pre, act, cs, tanh_c, n_in, H, no_forget, coupled)
    h_out = xh[1:, :, n_in + 1 :]  # (T, B, H): h_0 … h_{T−1}

    phase("readout")
    dy = buf("dy", T, B, H)
    per_seq, outputs, readout_grads = _readout(model, task, h_out, y, dy)

    dh = buf("dh", T, B, H)  # ∂ℓ/∂h_t (total)
    dc = buf("dc", T + 1, B, H)  # ∂ℓ/∂c_t (total); ∂ℓ/∂c_T = 0
    dpre = buf("dpre", T + 1, B, 4 * H)  # δ_t; δ_T = 0
    dc[T].zero_()
    dpre[T].zero_()
    if kernels is not None:
        phase("backward_loop")  # local derivatives computed inside the loop, per step
        kernels.backward(T, B, H, variant, dy, w_hh.contiguous(), act, cs, tanh_c, dh, dc, dpre)
    else:
        _lstm_backward_loop(act, cs, tanh_c, dy, w_hh, dh, dc, dpre, H, no_forget, coupled, phase, buf)

    phase("parameter_grads")  # pre_t is linear in W_ih, W_hh and both biases
    # Σ_t δ_tᵀ [x_t, 1, h_{t−1}] in one matmul = [∂ℓ/∂W_ih | ∂ℓ/∂b | ∂ℓ/∂W_hh]
    dpre = dpre[:T]
    g_all = _weight_grad(dpre, xh[:T])
    d_w_ih, d_b, d_w_hh = (g_all[:, :n_in].contiguous(), g_all[:, n_in].contiguous(),
                           g_all[:, n_in + 1 :].contiguous())
    grads = _param_grads(model, [d_w_ih, d_w_hh, d_b, d_b], readout_grads, B)
    phase(None)
    result = Backprop(per_seq, outputs, grads)
    if record:
        a = act[:T]
        result.states = {"h": dh, "c": dc[:T]}
        result.gates = dict(zip("ifgo", dpre.split(H, dim=2)))
        result.blocks = [(("h",), dh.unsqueeze(2)), (("c",), dc[:T].unsqueeze(2)),
                         (("i", "f", "g", "o"), dpre.view(T, B, 4, H))]
        # The reference records i, f, o (f ≡ 1 without forget gate; i = 1 − f for CIFG).
        per_unit = a.view(T, B, 4, H).mean(dim=1)  # (T, 4, H): batch mean of each gate unit
        means = per_unit.mean(dim=2)  # (T, 4): mean of each gate per step
        result.activations = {"i": means[:, 0], "f": means[:, 1], "o": means[:, 3],
                              "f_max": per_unit[:, 1].max(dim=1).values}  # most open unit
    return result


def _lstm_forward_loop(xh, w_t, pre, act, cs, tanh_c, n_in, H, no_forget, coupled) -> None:
    """The forward loop of :func:`_lstm_pass` in torch calls (when the C loop is unavailable)."""
    T = act.shape[0] - 1
    pre_g = pre[:, 2 * H : 3 * H]
    i_, f_, g_, o_ = (v.unbind(0) for v in act.split(H, dim=2))
    xh_, h_ = xh.unbind(0), xh[:, :, n_in + 1 :].unbind(0)  # h_[t + 1] = h_t
    act_, c_, tc_ = act.unbind(0), cs.unbind(0), tanh_c.unbind(0)
    for t in range(T):
        torch.mm(xh_[t], w_t, out=pre)  # pre_t = W_ih x_t + b_ih + b_hh + W_hh h_{t−1}
        torch.sigmoid(pre, out=act_[t])  # i_t, f_t, o_t = σ(pre_t)   (g's block is redone next)
        torch.tanh(pre_g, out=g_[t])  # g_t = tanh(pre_t^g)
        if no_forget:
            f_[t].fill_(1.0)  # f_t ≡ 1: the constant error carousel
        elif coupled:
            torch.neg(f_[t], out=i_[t]).add_(1.0)  # CIFG: i_t = 1 − f_t
        c = torch.mul(f_[t], c_[t], out=c_[t + 1])  # f_t ⊙ c_{t−1}
        c.addcmul_(i_[t], g_[t])  # c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t
        torch.tanh(c, out=tc_[t])  # tanh(c_t)
        torch.mul(o_[t], tc_[t], out=h_[t + 1])  # h_t = o_t ⊙ tanh(c_t)


def _lstm_backward_loop(act, cs, tanh_c, dy, w_hh, dh, dc, dpre, H, no_forget, coupled, phase, buf) -> None:
    """The backward loop of :func:`_lstm_pass` in torch calls (when the C loop is unavailable)."""
    T, B = dy.shape[0], dy.shape[1]
    phase("local_derivatives")  # the backward pass starts here
    # Local derivatives of every step, before the loop. With δ_t = ∂ℓ/∂pre_t:
    #   δ^i = ∂ℓ/∂c ⊙ g ⊙ σ'(i)     δ^f = ∂ℓ/∂c ⊙ c_{t−1} ⊙ σ'(f)
    #   δ^g = ∂ℓ/∂c ⊙ i ⊙ tanh'(g)  δ^o = ∂ℓ/∂h ⊙ tanh(c) ⊙ σ'(o)
    # k holds the factors multiplying ∂ℓ/∂c (blocks i, f, g) and ∂ℓ/∂h (block o).
    a = act[:T]
    i, f, g, o = a.split(H, dim=2)
    k = torch.addcmul(a, a, a, value=-1.0, out=buf("k", T, B, 4 * H))  # σ(1 − σ) = σ' for i, f, o
    k_i, k_f, k_g, k_o = k.split(H, dim=2)
    _one_minus_square(g, out=k_g)  # tanh' = 1 − g² for g
    if coupled:
        # i_t = 1 − f_t reads pre^f, not pre^i: c_t = f ⊙ c_{t−1} + (1 − f) ⊙ g, so
        # ∂c_t/∂pre^f = (c_{t−1} − g_t) ⊙ σ'(f), and pre^i has no effect.
        k_f.mul_(torch.sub(cs[:T], g, out=k_i))
        k_i.zero_()
    else:
        k_i.mul_(g)  # ∂c_t/∂pre^i = g_t ⊙ σ'(i)
        if no_forget:
            k_f.zero_()  # f_t ≡ 1 does not read pre^f
        else:
            k_f.mul_(cs[:T])  # ∂c_t/∂pre^f = c_{t−1} ⊙ σ'(f)
    k_g.mul_(i)  # ∂c_t/∂pre^g = i_t ⊙ tanh'(g)
    k_o.mul_(tanh_c)  # ∂h_t/∂pre^o = tanh(c_t) ⊙ σ'(o)
    dh_dc = _one_minus_square(tanh_c, out=buf("dh_dc", T, B, H)).mul_(o)  # ∂h_t/∂c_t = o_t ⊙ tanh'(c_t)

    phase("backward_loop")
    f_next = act[1:, :, H : 2 * H].unbind(0)  # f_{t+1}  (f_T = 0: the padding step)
    dh_, dc_, dy_, dpre_, dh_dc_ = dh.unbind(0), dc.unbind(0), dy.unbind(0), dpre.unbind(0), dh_dc.unbind(0)
    dc_b = dc.unsqueeze(2).unbind(0)  # ∂ℓ/∂c_t as (B, 1, H), to broadcast over three gates
    k_ifg = k[:, :, : 3 * H].view(T, B, 3, H).unbind(0)
    dpre_ifg = dpre[:, :, : 3 * H].view(T + 1, B, 3, H).unbind(0)
    k_o_, dpre_o = k_o.unbind(0), dpre[:, :, 3 * H :].unbind(0)
    for t in range(T - 1, -1, -1):
        # ∂ℓ/∂h_t = dy_t + W_hhᵀ δ_{t+1}                 (h_t feeds the readout and step t+1)
        d_h = torch.addmm(dy_[t], dpre_[t + 1], w_hh, out=dh_[t])
        # ∂ℓ/∂c_t = ∂ℓ/∂h_t ⊙ ∂h_t/∂c_t + ∂ℓ/∂c_{t+1} ⊙ f_{t+1}   (through h_t, and along the cell)
        torch.mul(dc_[t + 1], f_next[t], out=dc_[t]).addcmul_(d_h, dh_dc_[t])
        # δ_t^{i,f,g} = ∂ℓ/∂c_t ⊙ k_t^{i,f,g}             (one broadcast multiply for three gates)
        torch.mul(dc_b[t], k_ifg[t], out=dpre_ifg[t])
        # δ_t^o = ∂ℓ/∂h_t ⊙ tanh(c_t) ⊙ σ'(o_t)
        torch.mul(d_h, k_o_[t], out=dpre_o[t])


# -------------------------------------------------------------------------------------- GRU


def _gru_pass(model: SequenceModel, task: Task, x: Tensor, y: Tensor, record: bool) -> Backprop:
    """GRU in torch's convention (r, z, n); see :class:`core.cells.GRULayer`.

    s_t = W_hh h_{t−1} + b_hh                         (3H rows: s^r, s^z, s^n)
    r_t = σ(W_ir x_t + b_ir + s_t^r),  z_t = σ(W_iz x_t + b_iz + s_t^z)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ s_t^n)
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}
    """
    layer = model.recurrent
    w_ih, w_hh, b_ih, b_hh = _weights(layer)
    B, T, _ = x.shape
    H = layer.hidden_size
    H2 = 2 * H
    ws = workspace(model)
    buf = ws.getter(x.dtype)
    phase = _Phases()
    phase("forward")
    x1 = _inputs(x, buf)

    gx = _input_projection(x1, w_ih, b_ih, buf("gx", T, B, 3 * H))  # W_ih x_t + b_ih, every t
    s = buf("s", T, B, 3 * H)  # s_t = W_hh h_{t−1} + b_hh
    # rz[t] = (r_t, z_t) and n[t] = n_t in buffers of their own, so that σ and tanh
    # run on contiguous memory (twice as fast on CPU as on a strided slice).
    # rz has one all-zero step T (z_T = 0) so the backward loop needs no special case.
    rz = buf("rz", T + 1, B, H2)
    rz[T].zero_()
    n = buf("n", T, B, H)
    hs = buf("hs", T + 1, B, H)  # hs[t + 1] = h_t, hs[0] = h_{−1} = 0
    hs[0].zero_()
    diff = buf("diff", B, H)
    gx_rz, gx_n = (v.unbind(0) for v in gx.split([H2, H], dim=2))
    s_, s_rz, s_n = s.unbind(0), s[:, :, :H2].unbind(0), s[:, :, H2:].unbind(0)
    rz_, r_, z_ = rz.unbind(0), rz[:, :, :H].unbind(0), rz[:, :, H:].unbind(0)
    n_, h_ = n.unbind(0), hs.unbind(0)
    w_hh_t = w_hh.t()
    for t in range(T):
        torch.addmm(b_hh, h_[t], w_hh_t, out=s_[t])  # s_t = W_hh h_{t−1} + b_hh
        torch.add(gx_rz[t], s_rz[t], out=rz_[t]).sigmoid_()  # r_t, z_t = σ(W_i· x_t + b_i· + s_t^·)
        torch.addcmul(gx_n[t], r_[t], s_n[t], out=n_[t]).tanh_()  # n_t = tanh(W_in x_t + b_in + r_t ⊙ s_t^n)
        torch.sub(h_[t], n_[t], out=diff)  # h_{t−1} − n_t
        torch.addcmul(n_[t], z_[t], diff, out=h_[t + 1])  # h_t = n_t + z_t ⊙ (h_{t−1} − n_t)
    h_out = hs[1:]

    phase("readout")
    dy = buf("dy", T, B, H)
    per_seq, outputs, readout_grads = _readout(model, task, h_out, y, dy)

    phase("local_derivatives")  # the backward pass starts here
    # Local derivatives of every step, before the loop; with δ = ∂ℓ/∂(pre-activations):
    #   δ^n = ∂ℓ/∂h ⊙ (1 − z) ⊙ tanh'(n)         δ^z = ∂ℓ/∂h ⊙ (h_{t−1} − n) ⊙ σ'(z)
    #   δ^r = δ^n ⊙ s^n ⊙ σ'(r)
    # and what flows into s_t = W_hh h_{t−1} + b_hh:  ∂ℓ/∂s = (δ^r, δ^z, δ^n ⊙ r).
    # ks holds the three factors that turn ∂ℓ/∂h_t into ∂ℓ/∂s_t.
    r, z = rz[:T, :, :H], rz[:T, :, H:]
    h_prev = hs[:T]
    ks = buf("ks", T, B, 3, H)
    k_r, k_z, k_sn = ks.unbind(2)
    k_n = _one_minus_square(n, out=buf("k_n", T, B, H))  # tanh'(n)
    k_n.addcmul_(z, k_n, value=-1.0)  # ∂h_t/∂pre^n = (1 − z_t) ⊙ tanh'(n_t)
    sig = torch.addcmul(rz[:T], rz[:T], rz[:T], value=-1.0, out=buf("sig", T, B, H2))  # σ' for r, z
    torch.mul(k_n, s[:, :, H2:], out=k_r).mul_(sig[:, :, :H])  # ∂h_t/∂pre^r = k_n ⊙ s^n ⊙ σ'(r)
    torch.sub(h_prev, n, out=k_z).mul_(sig[:, :, H:])  # ∂h_t/∂pre^z = (h_{t−1} − n) ⊙ σ'(z)
    torch.mul(k_n, r, out=k_sn)  # ∂h_t/∂s^n = k_n ⊙ r_t

    phase("backward_loop")
    dh = buf("dh", T + 1, B, H)  # ∂ℓ/∂h_t (total); ∂ℓ/∂h_T = 0
    ds = buf("ds", T + 1, B, 3, H)  # ∂ℓ/∂s_t; ∂ℓ/∂s_T = 0
    dh[T].zero_()
    ds[T].zero_()
    dh_, dy_, ds_ = dh.unbind(0), dy.unbind(0), ds.unbind(0)
    dh_b = dh.unsqueeze(2).unbind(0)  # ∂ℓ/∂h_t as (B, 1, H), to broadcast over three blocks
    ds_rows = ds.view(T + 1, B, 3 * H).unbind(0)
    ks_, z_next = ks.unbind(0), rz[1:, :, H:].unbind(0)  # z_{t+1} (z_T = 0: the padding step)
    for t in range(T - 1, -1, -1):
        # ∂ℓ/∂h_t = dy_t + W_hhᵀ ∂ℓ/∂s_{t+1} + z_{t+1} ⊙ ∂ℓ/∂h_{t+1}   (gates of step t+1, and directly)
        torch.addmm(dy_[t], ds_rows[t + 1], w_hh, out=dh_[t]).addcmul_(z_next[t], dh_[t + 1])
        # ∂ℓ/∂s_t = ∂ℓ/∂h_t ⊙ (k^r, k^z, k_n ⊙ r)_t
        torch.mul(dh_b[t], ks_[t], out=ds_[t])

    dh, ds = dh[:T], ds[:T]
    d_n = torch.mul(dh, k_n, out=buf("d_n", T, B, H))  # δ^n = ∂ℓ/∂h_t ⊙ (1 − z) ⊙ tanh'(n), all t

    phase("parameter_grads")
    # W_ih x_t + b_ih feeds pre^r, pre^z, pre^n directly, so its gradient is
    # δ = (δ^r, δ^z, δ^n) = (∂ℓ/∂s^r, ∂ℓ/∂s^z, δ^n); W_hh h_{t−1} + b_hh is s_t.
    ds_rows = ds.view(T * B, 3 * H)
    g_rz = _weight_grad(ds_rows[:, :H2], x1)  # rows r, z of (∂ℓ/∂W_ih | ∂ℓ/∂b_ih)
    g_n = _weight_grad(d_n, x1)  # rows n
    d_w_ih, d_b_ih = _split_bias(torch.cat([g_rz, g_n]))
    d_w_hh = _weight_grad(ds_rows, h_prev).contiguous()  # Σ_t (∂ℓ/∂s_t)ᵀ h_{t−1}
    d_b_hh = ds_rows.sum(0)  # Σ_t ∂ℓ/∂s_t
    grads = [d_w_ih, d_w_hh, d_b_ih, d_b_hh]
    phase(None)
    result = Backprop(per_seq, outputs, _param_grads(model, grads, readout_grads, B))
    if record:
        result.states = {"h": dh}
        result.gates = {"r": ds[:, :, 0], "z": ds[:, :, 1], "n": d_n}
        result.blocks = [(("h",), dh.unsqueeze(2)), (("r", "z", ""), ds), (("n",), d_n.unsqueeze(2))]
        per_unit = rz[:T].view(T, B, 2, H).mean(dim=1)  # (T, 2, H): batch mean per unit
        means = per_unit.mean(dim=2)  # (T, 2): mean r and z per step
        result.activations = {"r": means[:, 0], "z": means[:, 1],
                              "z_max": per_unit[:, 1].max(dim=1).values}  # most carrying unit
    return result


_PASSES = {"rnn_tanh": _rnn_pass, "rnn_relu": _rnn_pass, "lstm": _lstm_pass, "gru": _gru_pass}


def _param_grads(model, recurrent: list[Tensor], readout: list[Tensor], batch: int) -> list[Tensor]:
    """Gradients of Σ_b ℓ_b in ``model.parameters()`` order (:func:`backprop` divides by B)."""
    by_name = dict(zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), recurrent))
    by_name.update(zip(("weight", "bias"), readout))
    return [by_name[name.rpartition(".")[2]] for name, _ in model.named_parameters()]


# ------------------------------------------------------------------------------- public API


def backprop(model: SequenceModel, task: Task, x: Tensor, y: Tensor, record: bool = True) -> Backprop:
    """One hand-written forward/backward pass; ``record`` keeps the per-step gradients.

    The pass runs in ``torch.inference_mode`` (no autograd bookkeeping at all: ~20%
    less overhead per small op than ``no_grad``), so the per-step tensors it
    returns are inference tensors: read them, or clone them to modify them.
    """
    if x.dim() != 3 or x.shape[-1] != model.recurrent.input_size:
        raise ValueError(f"expected input of shape (batch, steps, {model.recurrent.input_size}), "
                         f"got {tuple(x.shape)}")
    with torch.inference_mode():
        result = _PASSES[model.arch](model, task, x, y, record)
    batch = x.shape[0]
    # Gradients of the mean loss, made outside inference mode: ordinary tensors that
    # the optimizer and gradient clipping may update in place.
    result.param_grads = [g / batch for g in result.param_grads]
    return result


def fast_train_step(model: SequenceModel, task: Task, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Set ``p.grad`` (of the mean loss) for every parameter; return (mean loss, outputs)."""
    bp = backprop(model, task, x, y, record=False)
    for p, g in zip(model.parameters(), bp.param_grads):
        p.grad = g
    return bp.per_seq.mean(), bp.outputs


# The reference's quantity order: states (h, then c), then the gates in torch's order,
# keeping only those the variant has (``gate_names`` of the layer).
_GATE_ORDER = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}


def fast_probe(model: SequenceModel, task: Task, x: Tensor, y: Tensor) -> ProbeResult:
    """Same result as :func:`core.probe.probe`, from the hand-written pass."""
    bp = backprop(model, task, x, y, record=True)
    steps = x.shape[1]
    have = set(getattr(model.recurrent, "gate_names", ()))
    quantities = [*bp.states, *(q for q in _GATE_ORDER.get(model.arch, ()) if q in have)]
    grad_norms = bp.grad_norms()  # grad_norm(t, q) = mean_b ‖∂ℓ_b/∂q_{t,b}‖₂
    norms = torch.stack([grad_norms[q] for q in quantities])
    norms = norms.double().cpu().numpy()  # (quantities, T)
    profile = long_table(norms, tuple(quantities), "quantity", "grad_norm")
    gates = tuple(bp.activations)
    means = (torch.stack([bp.activations[q] for q in gates]).double().cpu().numpy() if gates
             else np.zeros((0, steps)))
    activations = long_table(means, gates, "gate", "mean")
    row = dict(zip(quantities, norms))
    summary = summarise_arrays(
        row["h"], row.get("c", np.zeros(0)), {q: m for q, m in zip(gates, means) if q in CARRY_GATES}
    )
    return ProbeResult(
        loss=bp.per_seq.mean(),
        outputs=bp.outputs,
        profile=profile,
        activations=activations,
        summary=summary,
        param_grads=bp.param_grads,
    )

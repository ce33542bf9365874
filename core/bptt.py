"""Backpropagation through time, written out by hand: every per-step gradient in one pass.

:func:`core.probe.probe` measures ∂ℓ/∂q_t by asking autograd for the gradient of
every per-step tensor of the explicit unroll. That is the *reference* definition,
but it builds a graph of ~15 nodes per time step and retains all their
gradients, which costs ~3x a plain training step. Here the same numbers come
from the analytic backward pass of each cell, run once over the whole batch:

* the **forward** pass runs the cell equations step by step into preallocated
  time-major buffers (step t's h_t, c_t and gate activations), with the input
  projection W_ih x_t + b of all steps done as one matmul before the loop;
* the **readout and loss** (a Linear layer and the task's loss) are left to
  autograd: it hands back ∂ℓ/∂h_t *from the readout at step t* (written dy_t);
* the **backward** pass walks t = T−1 … 0 and applies the chain rule of the
  cell by hand. Each step produces the *total* derivatives ∂ℓ/∂h_t, ∂ℓ/∂c_t and
  ∂ℓ/∂(gate pre-activation) that the probe reports, and nothing else;
* the **parameter gradients** are then a few large matmuls over all steps at
  once, e.g. ∂ℓ/∂W_hh = Σ_t δ_tᵀ h_{t−1} is one (T·B)-row matmul.

Shapes: B sequences, T steps, H hidden units. Buffers are time-major (T, B, ·)
so that one step's slice is contiguous. A "pre-activation" is the argument of
the gate's nonlinearity, in torch's gate order (LSTM i, f, g, o; GRU r, z, n).
Because sequences in a batch do not interact, the backward pass of Σ_b ℓ_b gives
every per-sequence ∂ℓ_b/∂q_{t,b} at once (exactly as in :mod:`core.probe`); the
parameter gradients are those of the *mean* loss, so they are divided by B.

Numerically this is the same computation as the reference: in float64 the
profile agrees with :func:`core.probe.probe` to ~1e-12 (tests/test_bptt.py).

Public functions:

* :func:`fast_probe` — drop-in for :func:`core.probe.probe` (same ProbeResult).
* :func:`fast_train_step` — the same pass without the probe bookkeeping: sets
  ``p.grad`` of every parameter, returns (mean loss, outputs).
* :func:`backprop` — the raw pass: every per-step gradient as a tensor.
* :func:`use_fast_path` — whether the trainer should use this module;
  ``RNNLAB_REFERENCE_PROBE=1`` in the environment (or ``core.bptt.REFERENCE =
  True``) sends the trainer back to the reference implementations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from core.models import SequenceModel
from core.probe import ProbeResult, summarise
from core.tasks import Task

Tensor = torch.Tensor

#: Escape hatch: when True the trainer uses core.probe.probe and torch.nn's fused
#: training step, never this module. Set from the environment at import time.
REFERENCE = os.environ.get("RNNLAB_REFERENCE_PROBE", "").strip().lower() not in ("", "0", "false", "no")


def use_fast_path(model: SequenceModel) -> bool:
    """True unless the reference implementation was asked for (see ``REFERENCE``).

    Every architecture and variant the app builds is supported, so this is only
    the escape hatch; it is a function so that the trainer reads it at run time.
    """
    return not REFERENCE and model.arch in _FORWARD


@dataclass
class Backprop:
    """What one hand-written forward/backward pass over a batch yields.

    ``states`` maps h (and c for the LSTM) to a (T, B, H) tensor of total
    derivatives ∂ℓ_b/∂q_{t,b} of the per-sequence losses; ``gates`` maps each gate
    name to its pre-activation gradient (T, B, H); ``activations`` maps a gate name
    to its (T,) mean activation over batch and units (the same gates as the
    reference probe records). ``param_grads`` are gradients of the *mean* loss in
    ``model.parameters()`` order.
    """

    per_seq: Tensor  # (B,) per-sequence losses ℓ_b
    outputs: Tensor  # (B, T, output) readout outputs, detached
    param_grads: list[Tensor]
    states: dict[str, Tensor] = field(default_factory=dict)
    gates: dict[str, Tensor] = field(default_factory=dict)
    activations: dict[str, Tensor] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def _weights(layer: torch.nn.RNNBase) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(W_ih, W_hh, b_ih, b_hh), detached: the hand-written passes build no graph."""
    return (
        layer.weight_ih_l0.detach(),
        layer.weight_hh_l0.detach(),
        layer.bias_ih_l0.detach(),
        layer.bias_hh_l0.detach(),
    )


def _input_projection(x_tm: Tensor, w_ih: Tensor, bias: Tensor) -> Tensor:
    """W_ih x_t + bias for every step in one matmul: (T, B, in) → (T, B, rows)."""
    T, B, n_in = x_tm.shape
    return torch.addmm(bias, x_tm.reshape(T * B, n_in), w_ih.t()).view(T, B, -1)


def _flat(v: Tensor) -> Tensor:
    """(T, B, k) → (T·B, k): all steps stacked as rows, for the parameter matmuls."""
    return v.reshape(-1, v.shape[-1])


def _readout_backward(model: SequenceModel, task: Task, h_tm: Tensor, y: Tensor):
    """Readout and loss by autograd, on the (T, B, H) hidden states.

    Returns (per-sequence losses, outputs (B, T, out), dy (T, B, H), readout grads)
    where dy_t = ∂(Σ_b ℓ_b)/∂h_t through the readout of step t only: the gradient
    that *enters* the recurrence at step t.
    """
    with torch.enable_grad():
        h_leaf = h_tm.detach().requires_grad_(True)
        out_tm = model.readout(h_leaf)  # y_t = W_out h_t + b_out, all steps at once
        outputs = out_tm.transpose(0, 1)  # (B, T, out) as the task expects
        per_seq = task.loss(outputs, y)
        readout_params = list(model.readout.parameters())
        grads = torch.autograd.grad(per_seq.sum(), [h_leaf, *readout_params])
    return per_seq.detach(), outputs.detach().contiguous(), grads[0], list(grads[1:])


# --------------------------------------------------------------------------- tanh / relu RNN


def _rnn_pass(model: SequenceModel, task: Task, x: Tensor, y: Tensor, record: bool) -> Backprop:
    """Elman RNN:  h_t = φ(a_t),  a_t = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh."""
    layer = model.recurrent
    w_ih, w_hh, b_ih, b_hh = _weights(layer)
    x_tm = x.transpose(0, 1)
    T, B = x_tm.shape[:2]
    H = layer.hidden_size
    relu = layer.nonlinearity == "relu"

    # ---- forward
    # hs[t + 1] = h_t and hs[0] = h_{−1} = 0, so hs[:-1] are the inputs h_{t−1}.
    hs = x.new_zeros(T + 1, B, H)
    gx = _input_projection(x_tm, w_ih, b_ih + b_hh)  # W_ih x_t + b_ih + b_hh, every t
    w_hh_t = w_hh.t()
    h_steps, gx_steps = hs.unbind(0), gx.unbind(0)
    phi_ = torch.Tensor.relu_ if relu else torch.Tensor.tanh_
    for t in range(T):
        h = torch.addmm(gx_steps[t], h_steps[t], w_hh_t, out=h_steps[t + 1])  # a_t
        phi_(h)  # h_t = φ(a_t)
    h_out = hs[1:]

    per_seq, outputs, dy, readout_grads = _readout_backward(model, task, h_out, y)

    # ---- backward
    # φ'(a_t) from the output alone: tanh' = 1 − h_t², relu' = [h_t > 0].
    dphi = (h_out > 0).to(h_out.dtype) if relu else 1.0 - h_out * h_out
    dh = torch.empty_like(h_out)  # ∂ℓ/∂h_t (total)
    da = x.new_zeros(T + 1, B, H)  # ∂ℓ/∂a_t; da[T] = 0: nothing after the last step
    dh_steps, da_steps, dy_steps, dphi_steps = dh.unbind(0), da.unbind(0), dy.unbind(0), dphi.unbind(0)
    for t in range(T - 1, -1, -1):
        # ∂ℓ/∂h_t = dy_t + W_hhᵀ ∂ℓ/∂a_{t+1}      (row form: δ_{t+1} W_hh)
        torch.addmm(dy_steps[t], da_steps[t + 1], w_hh, out=dh_steps[t])
        # ∂ℓ/∂a_t = ∂ℓ/∂h_t ⊙ φ'(a_t)
        torch.mul(dh_steps[t], dphi_steps[t], out=da_steps[t])

    # ---- parameter gradients: Σ over steps (and sequences) as single matmuls
    da_flat = _flat(da[:T])
    d_w_ih = da_flat.t() @ _flat(x_tm)  # ∂ℓ/∂W_ih = Σ_t δ_tᵀ x_t
    d_w_hh = da_flat.t() @ _flat(hs[:T])  # ∂ℓ/∂W_hh = Σ_t δ_tᵀ h_{t−1}
    d_b = da_flat.sum(0)  # ∂ℓ/∂b_ih = ∂ℓ/∂b_hh = Σ_t δ_t
    result = Backprop(per_seq, outputs, _param_grads(model, [d_w_ih, d_w_hh, d_b, d_b], readout_grads, B))
    if record:
        result.states = {"h": dh}
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
    x_tm = x.transpose(0, 1)
    T, B = x_tm.shape[:2]
    H = layer.hidden_size
    no_forget, coupled = layer.no_forget_gate, layer.coupled_gates

    # ---- forward
    pre = _input_projection(x_tm, w_ih, b_ih + b_hh)  # W_ih x_t + b_ih + b_hh, every t
    # act[t] holds (i_t, f_t, g_t, o_t). One extra zero step at T makes f_T = 0,
    # so the backward loop needs no special case for its first step.
    act = x.new_zeros(T + 1, B, 4 * H)
    hs = x.new_zeros(T + 1, B, H)  # hs[t + 1] = h_t, hs[0] = h_{−1} = 0
    cs = x.new_zeros(T + 1, B, H)  # cs[t + 1] = c_t, cs[0] = c_{−1} = 0
    tanh_c = torch.empty(T, B, H, dtype=x.dtype)  # tanh(c_t), reused by the backward pass
    i_, f_, g_, o_ = (v.unbind(0) for v in act.split(H, dim=2))
    pre_g = pre[:, :, 2 * H : 3 * H].unbind(0)
    pre_steps, act_steps = pre.unbind(0), act.unbind(0)
    h_steps, c_steps, tc_steps = hs.unbind(0), cs.unbind(0), tanh_c.unbind(0)
    w_hh_t = w_hh.t()
    for t in range(T):
        p = pre_steps[t].addmm_(h_steps[t], w_hh_t)  # pre_t += W_hh h_{t−1}
        torch.sigmoid(p, out=act_steps[t])  # i_t, f_t, o_t = σ(pre_t)  (g's block redone below)
        torch.tanh(pre_g[t], out=g_[t])  # g_t = tanh(pre_t^g)
        if no_forget:
            f_[t].fill_(1.0)  # f_t ≡ 1: the constant error carousel
        elif coupled:
            torch.neg(f_[t], out=i_[t]).add_(1.0)  # CIFG: i_t = 1 − f_t
        c = torch.mul(f_[t], c_steps[t], out=c_steps[t + 1])  # f_t ⊙ c_{t−1}
        c.addcmul_(i_[t], g_[t])  # c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t
        torch.tanh(c, out=tc_steps[t])  # tanh(c_t)
        torch.mul(o_[t], tc_steps[t], out=h_steps[t + 1])  # h_t = o_t ⊙ tanh(c_t)
    h_out = hs[1:]

    per_seq, outputs, dy, readout_grads = _readout_backward(model, task, h_out, y)

    # ---- backward
    # Local derivatives of all steps at once (elementwise, before the loop):
    a = act[:T]
    i, f, g, o = a.split(H, dim=2)
    c_prev = cs[:T]
    # ∂h_t/∂c_t = o_t ⊙ (1 − tanh²(c_t))   (the direct path through h_t = o_t ⊙ tanh(c_t))
    dh_dc = o * (1.0 - tanh_c * tanh_c)
    # k[t] turns ∂ℓ/∂c_t into the pre-activation gradients of i, f, g (σ' = σ(1 − σ), tanh' = 1 − tanh²)
    # and ∂ℓ/∂h_t into that of o:
    k = torch.empty(T, B, 4 * H, dtype=x.dtype)
    k_i, k_f, k_g, k_o = k.split(H, dim=2)
    if coupled:
        k_i.zero_()  # i_t = 1 − f_t does not read pre^i
        # ∂c_t/∂pre^f = (c_{t−1} − g_t) ⊙ f_t(1 − f_t)   (f_t appears twice: f ⊙ c + (1 − f) ⊙ g)
        torch.mul(c_prev - g, f * (1.0 - f), out=k_f)
    else:
        torch.mul(g, i * (1.0 - i), out=k_i)  # ∂c_t/∂pre^i = g_t ⊙ i_t(1 − i_t)
        if no_forget:
            k_f.zero_()  # f_t ≡ 1 does not read pre^f
        else:
            torch.mul(c_prev, f * (1.0 - f), out=k_f)  # ∂c_t/∂pre^f = c_{t−1} ⊙ f_t(1 − f_t)
    torch.mul(i, 1.0 - g * g, out=k_g)  # ∂c_t/∂pre^g = i_t ⊙ (1 − g_t²)
    torch.mul(tanh_c, o * (1.0 - o), out=k_o)  # ∂h_t/∂pre^o = tanh(c_t) ⊙ o_t(1 − o_t)

    dh = torch.empty(T, B, H, dtype=x.dtype)  # ∂ℓ/∂h_t (total)
    dc = x.new_zeros(T + 1, B, H)  # ∂ℓ/∂c_t (total); dc[T] = 0
    dpre = x.new_zeros(T + 1, B, 4 * H)  # δ_t = ∂ℓ/∂pre_t; δ_T = 0
    f_next = act[1:, :, H : 2 * H].unbind(0)  # f_{t+1} (f_T = 0 from the padding step)
    dh_steps, dc_steps, dy_steps = dh.unbind(0), dc.unbind(0), dy.unbind(0)
    dpre_steps, dh_dc_steps = dpre.unbind(0), dh_dc.unbind(0)
    k_ifg = k[:, :, : 3 * H].view(T, B, 3, H).unbind(0)
    k_o_steps = k_o.unbind(0)
    dpre_ifg = dpre[:, :, : 3 * H].view(T + 1, B, 3, H).unbind(0)
    dpre_o = dpre[:, :, 3 * H :].unbind(0)
    for t in range(T - 1, -1, -1):
        # ∂ℓ/∂h_t = dy_t + W_hhᵀ δ_{t+1}             (h_t feeds step t+1's four gates)
        d_h = torch.addmm(dy_steps[t], dpre_steps[t + 1], w_hh, out=dh_steps[t])
        # ∂ℓ/∂c_t = ∂ℓ/∂h_t ⊙ ∂h_t/∂c_t + ∂ℓ/∂c_{t+1} ⊙ f_{t+1}   (through h_t, and along the cell)
        d_c = torch.mul(dc_steps[t + 1], f_next[t], out=dc_steps[t])
        d_c.addcmul_(d_h, dh_dc_steps[t])
        # δ_t^{i,f,g} = ∂ℓ/∂c_t ⊙ k_t^{i,f,g}            (one broadcast multiply for three gates)
        torch.mul(d_c.unsqueeze(1), k_ifg[t], out=dpre_ifg[t])
        # δ_t^o = ∂ℓ/∂h_t ⊙ tanh(c_t) ⊙ o_t(1 − o_t)
        torch.mul(d_h, k_o_steps[t], out=dpre_o[t])

    # ---- parameter gradients (pre_t is linear in W_ih, W_hh and both biases)
    d_flat = _flat(dpre[:T])
    d_w_ih = d_flat.t() @ _flat(x_tm)  # ∂ℓ/∂W_ih = Σ_t δ_tᵀ x_t
    d_w_hh = d_flat.t() @ _flat(hs[:T])  # ∂ℓ/∂W_hh = Σ_t δ_tᵀ h_{t−1}
    d_b = d_flat.sum(0)  # ∂ℓ/∂b_ih = ∂ℓ/∂b_hh = Σ_t δ_t
    result = Backprop(per_seq, outputs, _param_grads(model, [d_w_ih, d_w_hh, d_b, d_b], readout_grads, B))
    if record:
        result.states = {"h": dh, "c": dc[:T]}
        d_i, d_f, d_g, d_o = dpre[:T].split(H, dim=2)
        result.gates = {"i": d_i, "f": d_f, "g": d_g, "o": d_o}
        # The reference records i, f, o (f ≡ 1 without forget gate; i = 1 − f for CIFG).
        result.activations = {
            "i": i.mean(dim=(1, 2)), "f": f.mean(dim=(1, 2)), "o": o.mean(dim=(1, 2)),
        }
    return result


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
    x_tm = x.transpose(0, 1)
    T, B = x_tm.shape[:2]
    H = layer.hidden_size
    H2 = 2 * H

    # ---- forward
    gx = _input_projection(x_tm, w_ih, b_ih)  # W_ih x_t + b_ih, every t
    s = torch.empty(T, B, 3 * H, dtype=x.dtype)  # s_t = W_hh h_{t−1} + b_hh
    # act[t] holds (r_t, z_t, n_t); one zero step at T makes z_T = 0 for the backward loop.
    act = x.new_zeros(T + 1, B, 3 * H)
    hs = x.new_zeros(T + 1, B, H)  # hs[t + 1] = h_t, hs[0] = h_{−1} = 0
    diff = torch.empty(B, H, dtype=x.dtype)
    gx_rz, gx_n = (v.unbind(0) for v in gx.split([H2, H], dim=2))
    s_steps = s.unbind(0)
    s_rz, s_n = (v.unbind(0) for v in s.split([H2, H], dim=2))
    rz_, r_, z_, n_ = (v.unbind(0) for v in (act[:, :, :H2], *act.split(H, dim=2)))
    h_steps = hs.unbind(0)
    w_hh_t = w_hh.t()
    for t in range(T):
        torch.addmm(b_hh, h_steps[t], w_hh_t, out=s_steps[t])  # s_t = W_hh h_{t−1} + b_hh
        rz = torch.add(gx_rz[t], s_rz[t], out=rz_[t])  # pre-activations of r_t and z_t
        rz.sigmoid_()  # r_t, z_t = σ(·)
        n = torch.addcmul(gx_n[t], r_[t], s_n[t], out=n_[t])  # W_in x_t + b_in + r_t ⊙ s_t^n
        n.tanh_()  # n_t = tanh(·)
        torch.sub(h_steps[t], n, out=diff)  # h_{t−1} − n_t
        torch.addcmul(n, z_[t], diff, out=h_steps[t + 1])  # h_t = n_t + z_t ⊙ (h_{t−1} − n_t)
    h_out = hs[1:]

    per_seq, outputs, dy, readout_grads = _readout_backward(model, task, h_out, y)

    # ---- backward
    a = act[:T]
    r, z, n = a.split(H, dim=2)
    h_prev = hs[:T]
    sn = s[:, :, H2:]
    # ∂h_t/∂(pre-activation of n) = (1 − z_t) ⊙ (1 − n_t²)
    k_n = (1.0 - z) * (1.0 - n * n)
    # k turns ∂ℓ/∂h_t into the three pre-activation gradients (r, z, n):
    k = torch.empty(T, B, 3, H, dtype=x.dtype)
    torch.mul(k_n * sn, r * (1.0 - r), out=k[:, :, 0])  # ∂h_t/∂pre^r = k_n ⊙ s^n ⊙ r(1 − r)
    torch.mul(h_prev - n, z * (1.0 - z), out=k[:, :, 1])  # ∂h_t/∂pre^z = (h_{t−1} − n_t) ⊙ z(1 − z)
    k[:, :, 2] = k_n  # ∂h_t/∂pre^n
    # ks turns it into ∂ℓ/∂s_t, what flows into W_hh h_{t−1}: equal for r, z; × r_t for n.
    ks = k.clone()
    ks[:, :, 2] *= r

    dh = x.new_zeros(T + 1, B, H)  # ∂ℓ/∂h_t (total); dh[T] = 0
    ds = x.new_zeros(T + 1, B, 3, H)  # ∂ℓ/∂s_t; ds[T] = 0
    dh_steps, ds_steps, dy_steps = dh.unbind(0), ds.unbind(0), dy.unbind(0)
    ds_flat_steps = ds.view(T + 1, B, 3 * H).unbind(0)
    ks_steps = ks.unbind(0)
    z_next = act[1:, :, H:H2].unbind(0)  # z_{t+1} (z_T = 0 from the padding step)
    for t in range(T - 1, -1, -1):
        # ∂ℓ/∂h_t = dy_t + W_hhᵀ ∂ℓ/∂s_{t+1} + z_{t+1} ⊙ ∂ℓ/∂h_{t+1}   (through the gates, and directly)
        d_h = torch.addmm(dy_steps[t], ds_flat_steps[t + 1], w_hh, out=dh_steps[t])
        d_h.addcmul_(z_next[t], dh_steps[t + 1])
        # ∂ℓ/∂s_t = ∂ℓ/∂h_t ⊙ (k^r, k^z, k^n ⊙ r_t)
        torch.mul(d_h.unsqueeze(1), ks_steps[t], out=ds_steps[t])

    dh = dh[:T]
    dpre = dh.unsqueeze(2) * k  # δ_t = ∂ℓ/∂(pre-activations r, z, n), all steps at once

    # ---- parameter gradients
    d_gx = _flat(dpre.view(T, B, 3 * H))  # ∂ℓ/∂(W_ih x_t + b_ih) = δ_t (all three gates)
    d_s = _flat(ds[:T].view(T, B, 3 * H))
    d_w_ih = d_gx.t() @ _flat(x_tm)  # ∂ℓ/∂W_ih = Σ_t δ_tᵀ x_t
    d_w_hh = d_s.t() @ _flat(h_prev)  # ∂ℓ/∂W_hh = Σ_t (∂ℓ/∂s_t)ᵀ h_{t−1}
    grads = [d_w_ih, d_w_hh, d_gx.sum(0), d_s.sum(0)]  # ∂ℓ/∂b_ih = Σ δ_t, ∂ℓ/∂b_hh = Σ ∂ℓ/∂s_t
    result = Backprop(per_seq, outputs, _param_grads(model, grads, readout_grads, B))
    if record:
        result.states = {"h": dh}
        result.gates = {"r": dpre[:, :, 0], "z": dpre[:, :, 1], "n": dpre[:, :, 2]}
        result.activations = {"r": r.mean(dim=(1, 2)), "z": z.mean(dim=(1, 2))}
    return result


_FORWARD = {"rnn_tanh": _rnn_pass, "rnn_relu": _rnn_pass, "lstm": _lstm_pass, "gru": _gru_pass}


def _param_grads(model, recurrent: list[Tensor], readout: list[Tensor], batch: int) -> list[Tensor]:
    """Gradients of the mean loss, in ``model.parameters()`` order."""
    by_name = dict(zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), recurrent))
    by_name.update(zip(("weight", "bias"), readout))
    out = []
    for name, _ in model.named_parameters():
        part, _, leaf = name.partition(".")
        out.append(by_name[leaf] / batch)
    return out


# ------------------------------------------------------------------------------- public API


@torch.no_grad()
def backprop(model: SequenceModel, task: Task, x: Tensor, y: Tensor, record: bool = True) -> Backprop:
    """One hand-written forward/backward pass; ``record`` keeps the per-step gradients."""
    if x.dim() != 3 or x.shape[-1] != model.recurrent.input_size:
        raise ValueError(f"expected input of shape (batch, steps, {model.recurrent.input_size}), "
                         f"got {tuple(x.shape)}")
    return _FORWARD[model.arch](model, task, x, y, record)


def fast_train_step(model: SequenceModel, task: Task, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Set ``p.grad`` (mean loss) for every parameter; return (mean loss, outputs), detached."""
    bp = backprop(model, task, x, y, record=False)
    for p, g in zip(model.parameters(), bp.param_grads):
        p.grad = g
    return bp.per_seq.mean(), bp.outputs


# Gate order of each architecture (the reference's profile row order), and which
# gates a variant actually has (``gate_names`` of the layer).
_GATE_ORDER = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}


def fast_probe(model: SequenceModel, task: Task, x: Tensor, y: Tensor) -> ProbeResult:
    """Same result as :func:`core.probe.probe`, from the hand-written pass."""
    bp = backprop(model, task, x, y, record=True)
    steps = x.shape[1]
    t = np.arange(steps)
    names = set(getattr(model.recurrent, "gate_names", ()))
    # grad_norm(t, q) = mean_b ‖∂ℓ_b/∂q_{t,b}‖₂ ; quantities in the reference's order
    quantities = list(bp.states.items()) + [
        (q, bp.gates[q]) for q in _GATE_ORDER.get(model.arch, ()) if q in names
    ]
    norms = torch.stack([g.norm(dim=2).mean(dim=1) for _, g in quantities]).double().cpu().numpy()
    profile = pd.DataFrame({
        "t": np.tile(t, len(quantities)),
        "quantity": np.repeat([q for q, _ in quantities], steps),
        "grad_norm": norms.reshape(-1),
    })
    if bp.activations:
        means = torch.stack(list(bp.activations.values())).double().cpu().numpy()
        activations = pd.DataFrame({
            "t": np.tile(t, len(bp.activations)),
            "gate": np.repeat(list(bp.activations), steps),
            "mean": means.reshape(-1),
        })
    else:
        activations = pd.DataFrame({"t": [], "gate": [], "mean": []})
    return ProbeResult(
        loss=bp.per_seq.mean(),
        outputs=bp.outputs,
        profile=profile,
        activations=activations,
        summary=summarise(profile, activations),
        param_grads=bp.param_grads,
    )

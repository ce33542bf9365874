"""core.native: the LSTM's time loops in C, against the same loops in torch calls.

The Python loops of core.bptt are themselves tested against autograd and torch.nn
(test_bptt.py, which runs with the C loops when they build, as here); these tests
pin the C loops to the Python ones directly, in float64 to rounding and in float32
at a realistic size, and check what happens when the C loops cannot be built.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from core import bptt, native
from core.models import build_model
from core.tasks import make_task

VARIANTS = [{}, {"forget_bias": 1.0}, {"no_forget_gate": True}, {"coupled_gates": True}]


@pytest.fixture(autouse=True)
def _fresh_native_state():
    native.reset()
    yield
    native.reset()


def _setup(options, seq_len=12, hidden=7, batch=5, dtype=torch.float64, task_name="adding", seed=0):
    task = make_task(task_name, seq_len)
    torch.manual_seed(seed)
    model = build_model("lstm", task.input_size, hidden, task.output_size, **options).to(dtype)
    with torch.no_grad():  # a trained-looking net: gates away from 0.5, cells away from 0
        for p in model.parameters():
            p.mul_(3.0)
    x, y = task.sample(batch, torch.Generator().manual_seed(seed + 100))
    return model, task, x.to(dtype), y


def _pass(model, task, x, y, use_c: bool, monkeypatch) -> dict:
    """Every per-step quantity of one hand-written pass, copied out of the workspace."""
    if not use_c:
        monkeypatch.setattr(native, "lstm_kernels", lambda: None)
    try:
        bp = bptt.backprop(model, task, x, y, record=True)
    finally:
        monkeypatch.undo()
    out = {f"state_{k}": v.clone() for k, v in bp.states.items()}
    out.update({f"gate_{k}": v.clone() for k, v in bp.gates.items()})
    out.update({f"act_{k}": v.clone() for k, v in bp.activations.items()})
    out.update({f"param_{i}": g.clone() for i, g in enumerate(bp.param_grads)})
    out["loss"] = bp.per_seq.clone()
    out["outputs"] = bp.outputs.clone()
    return out


def test_the_kernels_build_on_this_machine():
    kernels = native.lstm_kernels()
    assert kernels is not None, native.status()
    assert native.status().startswith("C loops")
    assert kernels.supports(torch.float32) and kernels.supports(torch.float64)
    assert kernels.path.exists() and kernels.path.suffix == ".so"


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("task_name,seq_len", [("adding", 12), ("copy", 3)])
def test_c_loops_equal_python_loops_in_float64(options, task_name, seq_len, monkeypatch):
    model, task, x, y = _setup(options, seq_len=seq_len, task_name=task_name)
    ours = _pass(model, task, x, y, True, monkeypatch)
    ref = _pass(model, task, x, y, False, monkeypatch)
    assert ours.keys() == ref.keys()
    for k in ref:
        # The same arithmetic in another order (e.g. δ^i = (∂ℓ/∂c · g) · σ' against
        # ∂ℓ/∂c · (g · σ')): equal up to rounding, measured against the tensor's scale
        # (elements that cancel to ~1e-10 of it keep only a few exact digits either way).
        scale = ref[k].abs().max().item()
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-12, atol=1e-14 * scale, msg=k)


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(o) or "plain")
def test_c_loops_in_float32_are_as_accurate_as_python_loops(options, monkeypatch):
    """H = 64, T = 100, batch 64, with the vectorised float32 exp/tanh inside: against
    the float64 pass as the truth, the C loops' float32 error is within a small factor
    of the torch calls' own float32 error, for every per-step quantity."""
    model, task, x, y = _setup(options, seq_len=100, hidden=64, batch=64, dtype=torch.float32)
    ours = _pass(model, task, x, y, True, monkeypatch)
    torch_calls = _pass(model, task, x, y, False, monkeypatch)
    truth = _pass(copy.deepcopy(model).double(), task, x.double(), y, True, monkeypatch)
    for k in truth:
        scale = max(truth[k].abs().max().item(), 1e-30)
        err_c = (ours[k].double() - truth[k]).abs().max().item() / scale
        err_torch = (torch_calls[k].double() - truth[k]).abs().max().item() / scale
        assert err_c <= 3 * err_torch + 1e-6, (k, err_c, err_torch)


@pytest.mark.parametrize("name,fn,lo,hi,rel", [
    ("exp", torch.exp, -87.0, 88.0, 2e-7),
    ("sigmoid", torch.sigmoid, -80.0, 80.0, 3e-7),
    ("tanh", torch.tanh, -20.0, 20.0, 3e-7),
])
def test_float32_functions_are_accurate_to_a_few_ulp(name, fn, lo, hi, rel):
    kernels = native.lstm_kernels()
    x = torch.cat([torch.linspace(lo, hi, 400_001), torch.logspace(-10, 0, 10_001),
                   -torch.logspace(-10, 0, 10_001)])
    x = x[(x >= lo) & (x <= hi)].float()
    ours = kernels.elementwise(name, x).double()
    exact = fn(x.double())
    err = ((ours - exact).abs() / exact.abs().clamp_min(1e-300)).max().item()
    assert err <= rel, f"{name}: max relative error {err:.2e}"


def test_rejects_non_contiguous_buffers():
    kernels = native.lstm_kernels()
    t = torch.zeros(4, 8)
    with pytest.raises(ValueError, match="contiguous"):
        kernels.backward(1, 1, 2, 0, t.t(), t, t, t, t, t, t, t)


def test_no_compiler_falls_back_to_python_loops_with_the_reason(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RNNLAB_NATIVE_CACHE", str(tmp_path))  # nothing built there yet
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang
    monkeypatch.delenv("CC", raising=False)
    with caplog.at_level(logging.WARNING, logger="core.native"):
        assert native.lstm_kernels() is None
    assert "no C compiler" in native.status()
    assert "Python loops" in native.status()
    assert any("no C compiler" in r.getMessage() for r in caplog.records)
    # and the pass still runs, with the same numbers
    model, task, x, y = _setup({})
    ref = bptt.backprop(model, task, x, y, record=True).states["c"].clone()
    monkeypatch.undo()
    native.reset()
    ours = bptt.backprop(model, task, x, y, record=True).states["c"]
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)


def test_a_failed_build_is_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "CFLAGS", [*native.CFLAGS, "-fno-such-flag-anywhere"])
    assert native.lstm_kernels() is None
    assert "failed to build" in native.status()
    assert not list(tmp_path.glob("*.so"))  # no half-written library left behind


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("RNNLAB_NATIVE", "0")
    assert native.lstm_kernels() is None
    assert native.status() == "Python loops (RNNLAB_NATIVE=0)"
    model = build_model("lstm", 2, 4, 1)
    assert not bptt.use_fast_train(model)  # torch.nn's fused LSTM then trains faster


def test_built_once_then_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_NATIVE_CACHE", str(tmp_path))
    first = native.lstm_kernels()
    assert first is not None
    stamp = first.path.stat().st_mtime_ns
    native.reset()
    again = native.lstm_kernels()
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    assert len(list(tmp_path.glob("*.so"))) == 1


def test_a_cache_directory_others_can_write_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # like a directory someone else prepared in /tmp
    monkeypatch.setenv("RNNLAB_NATIVE_CACHE", str(shared))
    kernels = native.lstm_kernels()
    assert kernels is None or shared not in kernels.path.parents
    assert not list(shared.glob("*.so"))

"""The LSTM's time loops in C (``lstm.c``), compiled on first use and called through ctypes.

Why C: the hand-written LSTM pass in :mod:`core.bptt` makes ~12 small torch calls
per time step, and at H ≤ 64 their dispatch (3-5 µs each) costs more than their
arithmetic; torch.nn's fused kernel makes one call per direction. ``lstm.c`` runs
each direction's loop in one call: a BLAS matmul per step (torch's own MKL
``sgemm_``/``dgemm_``, looked up in libtorch_cpu) and one fused pass over the
step's units. See BENCHMARKS.md for what it saves.

No build step: the first call compiles ``lstm.c`` with the system's C compiler
(``cc``, ``gcc`` or ``clang``; ~0.7 s) into a cache directory
(``$RNNLAB_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/rnnlab`` or ``~/.cache/rnnlab``,
else a temporary directory), keyed by a hash of the source, the flags and the CPU,
so processes share one build and a changed source rebuilds. ``-march=native``: the
library is built for the machine it runs on.

When it cannot be used (no compiler, no BLAS symbol, a failed build, or
``RNNLAB_NATIVE=0``), :func:`lstm_kernels` returns None, the reason is logged once
and kept in :func:`status`, and core.bptt runs the same equations in Python: the
numbers are the same, only slower (tests/test_native.py checks both paths agree).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("lstm.c")
HEADERS = [Path(__file__).with_name("lstm_loops.h")]  # included by lstm.c: part of the cache key
# -ffp-contract=off: a*b + c stays two roundings, never one FMA, so the element-wise
# code gives the same bits on every CPU and compiler (gcc's -std=c99 implies it; clang
# contracts by default); vector width (SSE, AVX2, AVX-512) does not change results, as
# the unit loops have no reductions. What still varies by CPU is BLAS's summation order.
CFLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-std=c99", "-fno-math-errno", "-ffp-contract=off"]

#: The LSTM variants the C loops know (``enum`` in lstm.c): f ≡ 1, and CIFG's i = 1 − f.
PLAIN, NO_FORGET, COUPLED = 0, 1, 2


def variant(no_forget_gate: bool, coupled_gates: bool) -> int:
    """The C loops' code for an LSTM layer's variant."""
    return NO_FORGET if no_forget_gate else COUPLED if coupled_gates else PLAIN


_lock = threading.Lock()
_state: dict = {"loaded": False, "lib": None, "status": "not loaded yet"}


def enabled() -> bool:
    """False when $RNNLAB_NATIVE is 0/false/no/off: always the Python loops."""
    from core import settings

    return settings.get("RNNLAB_NATIVE")


def status() -> str:
    """What the LSTM loops run on here, in words (for the benchmark and the app)."""
    lstm_kernels()
    return _state["status"]


class Kernels:
    """The loaded library and the BLAS functions it calls."""

    def __init__(self, lib: ctypes.CDLL, gemm: dict[torch.dtype, int], path: Path):
        self.lib, self.gemm, self.path = lib, gemm, path
        ptr, i = ctypes.c_void_p, ctypes.c_int
        for suf in ("f32", "f64"):
            fwd = getattr(lib, f"lstm_forward_{suf}")
            fwd.argtypes = [i, i, i, i, i, ptr, ptr, ptr, ptr, ptr, ptr, ptr]
            fwd.restype = i
            bwd = getattr(lib, f"lstm_backward_{suf}")
            bwd.argtypes = [i, i, i, i, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr]
            bwd.restype = i
        for name in ("exp_f32_n", "sigmoid_f32_n", "tanh_f32_n"):
            getattr(lib, name).argtypes = [ptr, ptr, i]

    def supports(self, dtype: torch.dtype) -> bool:
        return dtype in self.gemm

    def forward(self, T, B, H, K, variant, xh, w, pre, act, cs, tanh_c) -> None:
        fn, gemm = self._pick("forward", xh.dtype)
        _check(xh, w, pre, act, cs, tanh_c)
        fn(T, B, H, K, variant, *(v.data_ptr() for v in (xh, w, pre, act, cs, tanh_c)), gemm)

    def backward(self, T, B, H, variant, dy, w_hh, act, cs, tanh_c, dh, dc, dpre) -> None:
        fn, gemm = self._pick("backward", dy.dtype)
        _check(dy, w_hh, act, cs, tanh_c, dh, dc, dpre)
        fn(T, B, H, variant, *(v.data_ptr() for v in (dy, w_hh, act, cs, tanh_c, dh, dc, dpre)), gemm)

    def elementwise(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """The float32 ``exp``, ``sigmoid`` or ``tanh`` of lstm.c, for tests."""
        x = x.to(torch.float32).contiguous()
        y = torch.empty_like(x)
        getattr(self.lib, f"{name}_f32_n")(x.data_ptr(), y.data_ptr(), x.numel())
        return y

    def _pick(self, which: str, dtype: torch.dtype):
        suf = {torch.float32: "f32", torch.float64: "f64"}[dtype]
        return getattr(self.lib, f"lstm_{which}_{suf}"), self.gemm[dtype]


def _check(*tensors: torch.Tensor) -> None:
    """The C loops index raw memory: every tensor must be contiguous, on the CPU, of one dtype."""
    dtype = tensors[0].dtype
    for v in tensors:
        if not (v.is_contiguous() and v.device.type == "cpu" and v.dtype == dtype):
            raise ValueError(f"native LSTM kernel: expected contiguous CPU {dtype} tensors, got "
                             f"{v.dtype} {tuple(v.shape)} on {v.device}, contiguous={v.is_contiguous()}")


def lstm_kernels() -> Kernels | None:
    """The compiled kernels, or None when they cannot be used here (see :func:`status`)."""
    if _state["loaded"]:
        return _state["lib"]
    with _lock:
        if not _state["loaded"]:
            try:
                lib = _load() if enabled() else None
                _state["status"] = (f"C loops ({lib.path.name})" if lib else
                                    "Python loops (RNNLAB_NATIVE=0)")
            except Exception as e:  # noqa: BLE001 - any failure means: use the Python loops
                lib = None
                _state["status"] = f"Python loops (native kernels unavailable: {e})"
                log.warning("core.native: %s; the LSTM probe runs its loops in Python (slower, "
                            "same numbers)", e)
            _state["lib"], _state["loaded"] = lib, True
    return _state["lib"]


def reset() -> None:
    """Forget the loaded state (tests: to load again under other settings)."""
    with _lock:
        _state.update(loaded=False, lib=None, status="not loaded yet")


def _gemm_pointers() -> dict[torch.dtype, int]:
    """Addresses of the Fortran BLAS sgemm_/dgemm_ that torch itself is linked with."""
    libdir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        path = libdir / name
        if path.exists():
            lib = ctypes.CDLL(str(path))
            try:
                return {torch.float32: ctypes.cast(lib.sgemm_, ctypes.c_void_p).value,
                        torch.float64: ctypes.cast(lib.dgemm_, ctypes.c_void_p).value}
            except AttributeError as e:
                raise RuntimeError(f"{path.name} exports no sgemm_/dgemm_") from e
    raise RuntimeError(f"no libtorch_cpu in {libdir}")


def _cache_dir() -> Path:
    from core import settings

    for candidate in (settings.get("RNNLAB_NATIVE_CACHE"),
                      os.environ.get("XDG_CACHE_HOME") and Path(os.environ["XDG_CACHE_HOME"]) / "rnnlab",
                      Path.home() / ".cache" / "rnnlab",
                      Path(tempfile.gettempdir()) / f"rnnlab-{os.getuid() if hasattr(os, 'getuid') else 0}"):
        if not candidate:
            continue
        path = Path(candidate)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            # A library loaded from here runs as this process: the directory must be ours
            # and writable by no one else (a shared /tmp could hold someone else's).
            st = path.stat()
            if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
                continue
            probe = path / f".w{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return path
        except OSError:
            continue
    raise RuntimeError("no writable cache directory for the compiled kernels")


def _cpu_id() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def _compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise RuntimeError("no C compiler found (cc, gcc or clang)")


def _load() -> Kernels:
    if sys.platform == "win32":
        raise RuntimeError("not supported on Windows")
    gemm = _gemm_pointers()
    cc = _compiler()
    source = b"".join(p.read_bytes() for p in [SOURCE, *HEADERS])
    key = hashlib.sha256(b"\0".join([source, " ".join([cc, *CFLAGS]).encode(),
                                     _cpu_id().encode(), platform.machine().encode()]))
    target = _cache_dir() / f"lstm-{key.hexdigest()[:16]}.so"
    if not target.exists():
        # Build under a unique name, then rename: processes building at once never
        # load a half-written file.
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.{threading.get_ident()}.tmp.so")
        proc = subprocess.run([cc, *CFLAGS, "-o", str(tmp), str(SOURCE), "-lm"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"{cc} failed to build {SOURCE.name}: {proc.stderr.strip()[-500:]}")
        os.replace(tmp, target)
    return Kernels(ctypes.CDLL(str(target)), gemm, target)

"""A run's identity: what determines its records, bit for bit.

Training is deterministic (CPU, one torch thread per training, every random draw
from a generator seeded by the config; tests/test_determinism.py checks it: the
same config gives the same losses, metrics, gradient norms, probe and gate tables
and final weights, in this process or in a training child process, with or
without the C loops). So two trainings with the same identity would produce the
same run, and the app trains it once: a second Train press attaches to the first
(core.jobs.JobRegistry.train_or_attach).

The identity is a hash of

* the configs, in order (a lockstep group is one identity: its runs share their
  batches and are trained together);
* the code's version (:func:`code_version`): a hash of the source of the modules
  that compute and record a run. Not ``git describe``: a deployment may have no
  ``.git``, a commit that touches only the README or a page would needlessly
  change it, and uncommitted edits (what a developer's server runs) would not.
  The modules are found by following imports (module-level and lazy) from
  ``core.train``, ``core.worker`` and ``core.runs``, so a new module that training
  imports is covered without a list to keep up to date; packages contribute their
  C sources too (core/native/lstm.c). Python files are hashed by their syntax tree:
  a comment or a reformatting does not change the version, a changed statement
  (or docstring) does;
* the numerics in effect here (:func:`numerics`): torch's and NumPy's versions,
  whether the LSTM's loops run in C or in torch calls (both exact, but not the
  same bits: the C loops sum in another order), the reference-probe switch, and
  the CPU (BLAS picks its kernels, hence its summation order, by CPU).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from core import archspec
from core.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]  # the project's folder (holding core/)
#: The modules whose code makes a run: the trainer, the training process, the run format,
#: and every architecture's layer (core.archspec names them as strings, imported lazily,
#: which following import statements would miss).
ENTRY_MODULES = ("core.train", "core.worker", "core.runs") + tuple(
    dict.fromkeys(s.layer.split(":")[0] for s in archspec.SPECS))
_SOURCE_SUFFIXES = (".c", ".h")  # non-Python sources of a package (core/native)


def _module_path(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports(tree: ast.AST, name: str, is_package: bool) -> Iterable[str]:
    """Every module name an import statement anywhere in ``tree`` may refer to."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def training_sources(root: Path = ROOT, entries: Sequence[str] = ENTRY_MODULES) -> list[Path]:
    """The files the code version hashes: ``entries`` and every core module they import,
    directly or not (lazy imports included), plus the C sources of reached packages."""
    seen: dict[str, Path] = {}
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] != "core" or name == "core":
            continue
        path = _module_path(root, name)
        if path is None:
            continue
        seen[name] = path
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        todo.extend(_imports(tree, name, path.name == "__init__.py"))
    files = set(seen.values())
    for path in list(files):
        if path.name == "__init__.py":
            files |= {p for p in path.parent.iterdir() if p.suffix in _SOURCE_SUFFIXES}
    return sorted(files)


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple, str]] = {}  # root -> (the files' stamps, version)


def _stamp(files: Iterable[Path]) -> tuple | None:
    try:
        return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    except OSError:
        return None


def code_version(root: Path = ROOT) -> str:
    """16 hex digits naming the code that computes and records a run (see the module's
    docstring). Recomputed when one of its source files changes on disk (what a new
    training process would import; a new import can only appear through such a
    change), else served from memory: a stat of each file."""
    with _cache_lock:
        cached = _cache.get(root)
    if cached is not None and _stamp(Path(p) for p, _, _ in cached[0]) == cached[0]:
        return cached[1]
    files = training_sources(root)
    stamp = _stamp(files)
    h = hashlib.sha256()
    for p in files:
        text = p.read_bytes()
        if p.suffix == ".py":
            text = ast.dump(ast.parse(text, str(p)), include_attributes=False).encode()
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + text + b"\0")
    version = h.hexdigest()[:16]
    if stamp is not None:
        with _cache_lock:
            _cache[root] = (stamp, version)
    return version


def _cpu() -> str:
    """What BLAS's choice of kernels depends on: the CPU's model and feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        cpu = "\n".join(lines)
    except OSError:
        cpu = ""
    cpu = cpu or platform.processor() or ""
    return hashlib.sha256(f"{platform.machine()}\n{cpu}".encode()).hexdigest()[:12]


def numerics() -> dict:
    """What, besides the config and the code, fixes a run's bits on this machine."""
    from core import bptt, native

    return {
        "torch": torch.__version__, "numpy": np.__version__,
        "lstm_loops": "C" if native.lstm_kernels() is not None else "torch",
        "reference_probe": bool(bptt.REFERENCE), "cpu": _cpu(),
    }


def run_identity(configs: Sequence[TrainConfig], *, code: str | None = None,
                 numbers: dict | None = None) -> str:
    """The identity of training ``configs`` together (in lockstep, in this order) with
    this code on this machine: 32 hex digits."""
    if not configs:
        raise ValueError("a run's identity needs at least one configuration")
    payload = {
        "configs": [c.to_dict() for c in configs],
        "code": code if code is not None else code_version(),
        "numerics": numbers if numbers is not None else numerics(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def describe(root: Path = ROOT) -> str:
    """One line for people: the code version and the files it covers."""
    files = training_sources(root)
    return (f"code {code_version(root)} over {len(files)} files "
            f"({', '.join(os.path.relpath(p, root) for p in files)})")

"""Sections measured by other engineers' scripts, run when those scripts exist.

  --app    tests/e2e/measure.py (the app's figures, in a browser)
  --sweep  the sweep CLI (``python -m core sweep``) on a small fixed grid with
           1 and 2 workers, for its scaling

Each is run as a subprocess; its output is passed through and its wall time
recorded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_SCRIPT = ROOT / "tests" / "e2e" / "measure.py"
SWEEP_MODULE = ROOT / "core" / "sweeps"

# A small grid: 3 archs × 2 lengths × 2 seeds = 12 runs of at most 300 steps.
SWEEP_ARGS = ["--task", "adding", "--archs", "rnn_tanh,lstm,gru", "--seq-lens", "10,20",
              "--seeds", "2", "--steps", "300", "--quiet"]


def _run(cmd: list[str], env: dict | None = None, log=print) -> dict:
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.stdout:
        log(proc.stdout.rstrip())
    if proc.returncode:
        log(proc.stderr.rstrip()[-2000:])
    return {"cmd": cmd, "returncode": proc.returncode, "wall_s": round(wall, 2),
            "stdout": proc.stdout[-20000:]}


def app(log=print) -> dict:
    if not APP_SCRIPT.exists():
        log(f"--app: {APP_SCRIPT.relative_to(ROOT)} does not exist yet; nothing to run")
        return {"skipped": f"{APP_SCRIPT.relative_to(ROOT)} not found"}
    return _run([sys.executable, "-m", "tests.e2e.measure"], log=log)


def sweep(log=print) -> dict:
    if not SWEEP_MODULE.exists():
        log("--sweep: core/sweeps/ does not exist yet; nothing to run")
        return {"skipped": "core/sweeps/ not found"}
    out = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as runs_dir:  # a fresh store: nothing to resume
            out[f"workers_{workers}"] = _run(
                [sys.executable, "-m", "core", "sweep", *SWEEP_ARGS, "--workers", str(workers),
                 "--out", runs_dir], log=log)
    w1, w2 = out["workers_1"]["wall_s"], out["workers_2"]["wall_s"]
    out["speedup_2_workers"] = round(w1 / w2, 3) if w2 else None
    log(f"sweep: 1 worker {w1:.1f} s, 2 workers {w2:.1f} s, speed-up {out['speedup_2_workers']}")
    return out

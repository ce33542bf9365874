"""What training in a child process (the app's way, ``core.worker``) costs against
training in a thread of this process (the library's and CLI's way), without a server.

    .venv/bin/python -m bench.worker_overhead [--rounds 3] [--steps 600]

Both modes run the same configuration through ``core.jobs.TrainingJob`` (probes and the
run store included), interleaved round by round with the order alternating, so a noisy
machine affects both alike. Prints steps/s per run and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from core.config import TrainConfig
from core.jobs import TrainingJob
from core.runs import RunStore


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    a = ap.parse_args(argv)
    cfg = TrainConfig(task="adding", arch="lstm", seq_len=100, hidden_size=64, batch_size=64,
                      steps=a.steps, probe_every=50)
    store = RunStore(tempfile.mkdtemp(prefix="rnnlab-worker-bench-"))
    rates: dict[str, list[float]] = {"thread": [], "process": []}
    for rnd in range(a.rounds):
        for mode in ("thread", "process") if rnd % 2 == 0 else ("process", "thread"):
            job = TrainingJob([cfg], store=store, slots=None, mode=mode).start()
            job.join(3600)
            rates[mode].append(job.runs[0].data.status_copy()["steps_per_s"])
    for mode, v in rates.items():
        print(f"{mode:8s} steps/s: {', '.join(f'{x:.1f}' for x in v)}")
    ratio = statistics.median(rates["process"]) / statistics.median(rates["thread"])
    print(f"process / thread (medians): {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What each lesson's training costs: steps and core-seconds, for the capacity arithmetic.

    python -m bench.lesson_capacity [--repeat 2] [--json FILE]

Trains every step of the lesson (core.lessons.STEPS, the ones that train: their models in
lockstep, stopping 100 steps after solving, as the Learn page does) through the core API in
this process with one torch thread, and reports per step: each model's steps and the step
it solved at, the wall time and the CPU time of the whole lockstep job. The CPU time is
what a training costs a core (the wall time grows with the machine's load, the CPU time
much less): trainings per core-minute = 60 / CPU seconds. Repeated ``--repeat`` times
(the records are the same each time: training is deterministic); the least CPU time is
kept, the other figures are listed. ``--seeds`` trains each step with other seeds (a room
pressing distinct configurations): its steps to solve, hence its cost, vary by seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def train_step(step, seed: int | None = None) -> dict:
    from core.train import Trainer, run_lockstep

    configs = [c if seed is None else c.replace(seed=seed) for c in step.configs()]
    trainers = [Trainer(c) for c in configs]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    run_lockstep(trainers, lambda i, record: None)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "step": step.number, "title": step.title, "models": step.labels(), "seed": seed,
        "steps_done": [t.steps_done for t in trainers],
        "solved_at": [t.solved_at for t in trainers],
        "status": [t.status for t in trainers],
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
    }


def main(argv=None) -> int:
    import torch

    from bench import env
    from core import native
    from core.lessons import STEPS
    from core.train import warm_up

    p = argparse.ArgumentParser(prog="python -m bench.lesson_capacity",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--seeds", default="",
                   help="comma-separated seeds instead of the lesson's own (what a room pressing "
                        "distinct configurations trains)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    warm_up()
    out = {"command": "python -m bench.lesson_capacity " + " ".join(argv or sys.argv[1:]),
           "machine": env.describe(), "lstm_loops": native.status(), "load_start": env.load(),
           "steps": []}
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()] or [None]
    for number, seed in [(n, s) for n in sorted(STEPS) for s in seeds]:
        step = STEPS[number]
        if not step.trains:
            continue
        runs = [train_step(step, seed) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["cpu_s"])
        best.update(cpu_s_all=[r["cpu_s"] for r in runs], wall_s_all=[r["wall_s"] for r in runs],
                    configs=[(c if seed is None else c.replace(seed=seed)).to_dict()
                             for c in step.configs()],
                    trainings_per_core_minute=round(60 / best["cpu_s"], 2), load=env.load())
        assert all(r["steps_done"] == best["steps_done"] for r in runs)  # deterministic
        print(json.dumps({k: v for k, v in best.items() if k != "configs"}), flush=True)
        out["steps"].append(best)
    out["load_end"] = env.load()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

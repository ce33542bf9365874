"""Trainings on a Dask cluster against training processes: speed, relay lag, server CPU.

    python -m bench.dask_training [--where process,local,hand] [--jobs 1,4] [--steps 300]
        [--archs lstm,gru] [--json FILE]

For each place a TrainingJob can train in (``process``: core.worker children, the app's
default; ``local``: RNNLAB_DASK_SCHEDULER=local, a LocalCluster started in this process;
``hand``: ``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` started by hand
with PYTHONPATH, as README's recipe does, and RNNLAB_DASK_SCHEDULER=tcp://...), runs
``--jobs`` trainings at once of the lesson's race settings (adding, T = 50, hidden 32,
batch 64, probes and evaluations every 25 steps on 500 held-out sequences), each with a
seed of its own, into a run store, and reports:

* steps/s per training (measured by the trainer) and in all (steps / wall time);
* time from ``start()`` to the first step in the server's snapshot;
* this process's CPU per live training (% of a core: the server's relay threads, the run
  writer, and for ``local`` also the scheduler, which runs in this process);
* the scheduler's CPU (``hand``: its own process);
* the relay lag (a batch sent on the worker → applied to the run here) for Dask.

The machine's cores are shared: with more trainings than cores they take turns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

RACE = dict(task="adding", seq_len=50, hidden_size=32, batch_size=64, lr=0.02, clip=1.0,
            probe_every=25, eval_every=25, eval_size=500)


def cpu_s(pid: int | None = None) -> float:
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_jobs(configs, store, scheduler_pid: int | None, mode: str = "process") -> dict:
    from core.jobs import TrainingJob

    t0 = time.monotonic()
    me0 = cpu_s()
    sched0 = cpu_s(scheduler_pid) if scheduler_pid else None
    # No queue: as many trainings at once as asked (the cluster has a worker for each).
    jobs = [TrainingJob([c], store=store, mode=mode, slots=None).start() for c in configs]
    first: dict[int, float] = {}
    while any(j.alive for j in jobs):
        for k, j in enumerate(jobs):
            if k not in first and j.runs[0].data.status_copy()["step"] > 0:
                first[k] = time.monotonic() - t0
        time.sleep(0.05)  # this loop's own CPU counts as the server's: poll gently
    wall = time.monotonic() - t0
    me = cpu_s() - me0
    sched = cpu_s(scheduler_pid) - sched0 if scheduler_pid else None
    statuses = [j.runs[0].data.status_copy() for j in jobs]
    bad = [(s["status"], s["message"]) for s in statuses if s["status"] != "finished"]
    if bad:
        raise RuntimeError(f"trainings did not finish: {bad}")
    steps = sum(s["step"] for s in statuses)
    lags = sorted(x for j in jobs for x in getattr(j._worker, "lags", ()))
    # Training time: from each run's first step to its last (the trainer's clock).
    train_s = max(s["wall_s"] for s in statuses)
    return {
        "jobs": len(jobs), "steps_each": statuses[0]["step"], "wall_s": round(wall, 2),
        "steps_per_s_each": [round(s["steps_per_s"], 1) for s in statuses],
        "steps_per_s_total": round(steps / train_s, 1),
        "first_step_s": [round(first.get(k, float("nan")), 2) for k in range(len(jobs))],
        "server_cpu_pct_per_training": round(100 * me / wall / len(jobs), 2),
        "server_cpu_s": round(me, 2),
        "scheduler_cpu_pct": round(100 * sched / wall, 2) if sched is not None else None,
        "relay_lag_ms": {"median": round(1000 * lags[len(lags) // 2], 1),
                         "p95": round(1000 * lags[int(0.95 * len(lags))], 1),
                         "max": round(1000 * lags[-1], 1), "batches": len(lags)}
        if lags else None,
    }


def main(argv=None) -> int:
    import torch

    from bench import env
    from bench.dask_relay import start_by_hand, stop_processes
    from core import dask_training
    from core.config import TrainConfig
    from core.runs import RunStore

    p = argparse.ArgumentParser(prog="python -m bench.dask_training",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--where", default="process,local,hand")
    p.add_argument("--jobs", default="1,4")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--archs", default="lstm,gru")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds; each runs every place in turn (rotated), so that they share "
                        "the machine's load")
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    counts = [int(x) for x in args.jobs.split(",")]
    archs = [a for a in args.archs.split(",") if a]
    wheres = [w for w in args.where.split(",") if w]
    out = {"command": "python -m bench.dask_training " + " ".join(argv or sys.argv[1:]),
           "machine": env.describe(), "load_start": env.load(), "results": [], "ready_s": {}}
    store = RunStore(Path(tempfile.mkdtemp(prefix="rnnlab-dask-bench-")))
    seed = iter(range(100_000))
    os.environ["RNNLAB_MAX_TRAININGS"] = str(max(counts))
    procs: list = []
    clusters: dict[str, dask_training.Cluster] = {}
    settings_of = {"process": None, "local": "local"}

    def use(where: str) -> None:
        """Point the app's setting (and core.dask_training's connection) at ``where``."""
        if settings_of[where] is None:
            os.environ.pop("RNNLAB_DASK_SCHEDULER", None)
        else:
            os.environ["RNNLAB_DASK_SCHEDULER"] = settings_of[where]
            dask_training._cluster = clusters[where]

    try:
        for where in wheres:
            if where == "process":
                continue
            t0 = time.monotonic()
            if where == "hand":
                address, procs = start_by_hand(max(counts))
                out["scheduler_pid"] = procs[0].pid
                settings_of["hand"] = address
            clusters[where] = c = dask_training.Cluster(settings_of[where])
            while c.threads() < max(counts):
                if time.monotonic() - t0 > 180:
                    raise RuntimeError(f"{where}: the cluster's workers did not come up")
                time.sleep(0.5)
                c.refresh()
            out["ready_s"][where] = round(time.monotonic() - t0, 2)
        for where in wheres:  # warm every worker (imports, the C loops), as in a deployment
            use(where)
            run_jobs([TrainConfig(**RACE, arch="gru", steps=5, seed=next(seed))
                      for _ in range(max(counts))], store, None)
        for rnd in range(args.rounds):
            order = wheres[rnd % len(wheres):] + wheres[:rnd % len(wheres)]
            for arch in archs:
                for n in counts:
                    for where in order:
                        use(where)
                        configs = [TrainConfig(**RACE, arch=arch, steps=args.steps,
                                               seed=next(seed)) for _ in range(n)]
                        pid = out.get("scheduler_pid") if where == "hand" else None
                        r = run_jobs(configs, store, pid)
                        r.update(where=where, arch=arch, round=rnd, load=env.load())
                        print(json.dumps(r), flush=True)
                        out["results"].append(r)
    finally:
        dask_training._cluster = None
        for c in clusters.values():
            c.close()
        stop_processes(procs)
    out["load_end"] = env.load()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How a training on a Dask worker should stream its records to the Streamlit server.

    python -m bench.dask_relay [--channels queue,events,variable,actor,store] [--jobs 4]
        [--seconds 20] [--workload replay|train] [--scheduler ADDR] [--json FILE]

Starts a scheduler and ``--jobs`` single-threaded workers by hand (``dask scheduler``,
``dask worker`` with this project on PYTHONPATH, as README's recipe does; or uses
``--scheduler``), then, channel by channel, runs ``--jobs`` producer tasks at once, each
sending record batches as a training task would, and this process (the "server")
receives them. Per channel it reports:

* latency: from a batch handed to the channel on the worker (``time.time()`` there) to
  the batch in the server's hands, unpickled (the same clock: one machine);
* lost batches (sequence numbers), batches per second;
* the scheduler process's CPU per batch (its /proc CPU time over the run, minus its idle
  rate measured beforehand, divided by the batches delivered);
* this process's CPU per batch (the client's event loop and the receiving threads).

Workloads: ``replay`` sends the batches of a real training (the lesson's LSTM: adding,
T = 50, hidden 32, batch 64, probes every 25 steps), recorded here first with the
batching of core.worker (probes and evaluations at once, steps every 0.2 s), at their
recorded times, so the channel is measured without the trainings competing for the
cores; ``train`` trains that config in each task (the cores are then shared by
``--jobs`` trainings, as they would be).

Channels:

``queue``     a ``distributed.Queue`` per job: the task ``put``s each batch (a round trip to
              the scheduler), the server blocks in ``get`` (long poll), then drains.
``events``    the scheduler's structured event log, the replacement of the Pub/Sub that
              distributed removed in 2025: the task's worker ``log_event``s each batch
              (fire and forget, through its batched stream), the server ``subscribe_topic``s.
``variable``  a ``distributed.Variable`` per job holding the latest batch; the server polls
              it every 0.1 s (what is overwritten in between is lost).
``actor``     a mailbox actor per job on a worker: the task calls ``put``, the server calls
              an async ``take`` that waits for data; worker to server directly.
``store``     the run store on shared storage: the task writes the run with RunWriter
              (flush every 2 s, as the server's writer does); the server polls status.json
              every 0.25 s and reads the tables that grew.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import queue as queue_mod
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("queue", "events", "variable", "actor", "store")
TOPIC = "rnnlab-bench-records"
BATCH_S = 0.2
CONFIG = dict(task="adding", seq_len=50, hidden_size=32, batch_size=64, lr=0.02, clip=1.0,
              steps=100000, seed=0, probe_every=25, eval_every=25, eval_size=500, arch="lstm")


# ---------------------------------------------------------------- the batches


def batches_of_training(config: dict, seconds: float):
    """Yield (payload bytes, is_last) as core.worker would send them, for ``seconds``."""
    from core.config import TrainConfig
    from core.train import StepRecord, Trainer

    trainer = Trainer(TrainConfig(**config))
    batch: list = []
    last = time.monotonic()
    end = last + seconds
    for record in trainer.run():
        batch.append((0, record))
        now = time.monotonic()
        if not isinstance(record, StepRecord) or now - last >= BATCH_S:
            yield pickle.dumps(("records", batch), protocol=pickle.HIGHEST_PROTOCOL)
            batch, last = [], now
        if now >= end:
            trainer.stop()
    if batch:
        yield pickle.dumps(("records", batch), protocol=pickle.HIGHEST_PROTOCOL)


def record_batches(seconds: float) -> list[tuple[float, bytes]]:
    """A real training's batches and when each was sent (seconds from the start)."""
    import torch

    torch.set_num_threads(1)
    t0 = time.monotonic()
    return [(time.monotonic() - t0, b) for b in batches_of_training(CONFIG, seconds)]


def replay(batches: list[tuple[float, bytes]]):
    t0 = time.monotonic()
    for at, payload in batches:
        delay = t0 + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield payload


# ---------------------------------------------------------------- worker side


def warm() -> bool:
    """Import what a producer needs, once per worker, before anything is timed."""
    import torch

    import core.runs
    import core.train  # noqa: F401

    torch.set_num_threads(1)
    return True


class Mailbox:
    """The actor channel: batches wait here until the server takes them."""

    def __init__(self):
        self.items: list = []
        self.event: asyncio.Event | None = None

    def put(self, item) -> None:
        self.items.append(item)
        if self.event is not None:
            self.event.set()

    async def take(self, timeout: float = 1.0) -> list:
        if not self.items:
            self.event = self.event or asyncio.Event()
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        items, self.items = self.items, []
        return items


def produce(channel: str, job: str, workload, store_dir: str | None = None, mailbox=None) -> dict:
    """The producer task: send every batch of ``workload`` through ``channel``."""
    import torch
    from distributed import Queue, Variable, get_worker

    torch.set_num_threads(1)
    if workload[0] == "replay":
        source = replay(workload[1])
    else:
        source = (p for p in batches_of_training(workload[1], workload[2]))
    sent = 0
    send_s = 0.0
    if channel == "store":
        return _produce_to_store(job, source, store_dir)
    q = Queue(job) if channel == "queue" else None
    var = Variable(job) if channel == "variable" else None
    worker = get_worker()
    for payload in source:
        msg = {"job": job, "seq": sent, "t": time.time(), "data": payload}
        t = time.perf_counter()
        if channel == "queue":
            q.put(msg)
        elif channel == "events":
            worker.log_event(TOPIC, msg)
        elif channel == "variable":
            var.set(msg)
        elif channel == "actor":
            mailbox.put(msg).result()
        send_s += time.perf_counter() - t
        sent += 1
    done = {"job": job, "seq": sent, "t": time.time(), "data": None}
    if channel == "queue":
        q.put(done)
    elif channel == "events":
        worker.log_event(TOPIC, done)
    elif channel == "variable":
        var.set(done)
    elif channel == "actor":
        mailbox.put(done).result()
    return {"sent": sent, "send_s": send_s}


def _produce_to_store(job: str, source, store_dir: str) -> dict:
    from core.config import TrainConfig
    from core.runs import RunStore
    from core.train import StepRecord

    writer = RunStore(store_dir).create(TrainConfig(**CONFIG), job)
    t_epoch = time.time()
    writer.data.update_status(t_epoch=t_epoch)
    t0 = time.monotonic()
    sent = 0
    send_s = 0.0
    for payload in source:
        _, batch = pickle.loads(payload)
        t = time.perf_counter()
        for _, record in batch:
            if isinstance(record, StepRecord):  # stamped with the time it is handed over
                record = StepRecord(record.step, record.loss, record.metric, record.grad_norm,
                                    time.monotonic() - t0)
            writer.add(record)
        send_s += time.perf_counter() - t
        sent += 1
    writer.data.update_status(done=True)
    writer.flush()
    return {"sent": sent, "send_s": send_s}


# ---------------------------------------------------------------- server side


def cpu_s(pid: int | None = None) -> float:
    path = f"/proc/{pid or 'self'}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Receiver:
    """Collects (latency, seq) per job for one channel; ``done`` when every job ended."""

    def __init__(self, jobs: list[str]):
        self.latencies: list[float] = []
        self.seqs: dict[str, set] = {j: set() for j in jobs}
        self.sent: dict[str, int] = {}
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def take(self, msg: dict) -> None:
        now = time.time()
        if msg["data"] is None:
            with self._lock:
                self.sent[msg["job"]] = msg["seq"]
                if len(self.sent) == len(self.seqs):
                    self.finished.set()
            return
        pickle.loads(msg["data"])  # what the relay does with every batch
        with self._lock:
            self.latencies.append(now - msg["t"])
            self.seqs[msg["job"]].add(msg["seq"])


def run_channel(client, channel: str, jobs: int, workload, scheduler_pid: int | None,
                idle_rate: float, store_root: Path) -> dict:
    from distributed import Queue, Variable

    names = [f"bench-{channel}-{i}-{os.getpid()}" for i in range(jobs)]
    rx = Receiver(names)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    extra: dict = {}
    mailboxes = [None] * jobs
    if channel == "events":
        # As core.dask_training does: the handler (on the client's event loop) only hands
        # the message over; a thread unpickles it.
        inbox: queue_mod.SimpleQueue = queue_mod.SimpleQueue()
        client.subscribe_topic(TOPIC, lambda event: inbox.put(event[1]))

        def relay():
            while not stop.is_set():
                try:
                    rx.take(inbox.get(timeout=0.5))
                except queue_mod.Empty:
                    continue

        threads = [threading.Thread(target=relay, daemon=True)]
    elif channel == "queue":
        queues = [Queue(n, client=client) for n in names]

        def drain(q):
            while not stop.is_set():
                try:
                    first = q.get(timeout=1)
                except (TimeoutError, asyncio.TimeoutError):
                    continue
                for msg in [first] + q.get(batch=True):
                    rx.take(msg)

        threads = [threading.Thread(target=drain, args=(q,), daemon=True) for q in queues]
    elif channel == "variable":
        variables = [Variable(n, client=client) for n in names]

        def poll(v):
            last = -1
            while not stop.is_set():
                try:
                    msg = v.get(timeout=0.5)
                except (TimeoutError, asyncio.TimeoutError):
                    continue
                if msg["seq"] != last:
                    last = msg["seq"]
                    rx.take(msg)
                time.sleep(0.1)

        threads = [threading.Thread(target=poll, args=(v,), daemon=True) for v in variables]
    elif channel == "actor":
        # Keep the actors' futures: an actor lives as long as its future is held.
        extra["actor_futures"] = [client.submit(Mailbox, actor=True, pure=False) for _ in names]
        mailboxes = [f.result() for f in extra["actor_futures"]]

        def take(mb):
            while not stop.is_set():
                for msg in mb.take(1.0).result():
                    rx.take(msg)

        threads = [threading.Thread(target=take, args=(mb,), daemon=True) for mb in mailboxes]
    elif channel == "store":
        from core.runs import RunStore

        store_dir = store_root / channel
        store_dir.mkdir(parents=True, exist_ok=True)
        store = RunStore(store_dir)
        extra["store_dir"] = str(store_dir)

        def watch(name):
            seen_step, seen_mtime = 0, 0
            path = store_dir / name / "status.json"
            while not stop.is_set():
                time.sleep(0.25)
                try:
                    mtime = path.stat().st_mtime_ns
                except OSError:
                    continue
                if mtime == seen_mtime:
                    continue
                seen_mtime = mtime
                status = json.loads(path.read_text())
                if "t_epoch" not in status:
                    continue
                now = time.time()
                # What the server would read to show the run: every table that grew.
                data = store.load(name)
                metrics = data.table("metrics")
                new = metrics[metrics["step"] >= seen_step]
                with rx._lock:
                    rx.latencies += list(now - (status["t_epoch"] + new["wall_s"]))
                    rx.seqs[name] |= set(int(s) for s in new["step"])
                seen_step = int(metrics["step"].max()) + 1 if len(metrics) else 0
                if status.get("done"):
                    rx.take({"job": name, "seq": None, "data": None})
                    return

        threads = [threading.Thread(target=watch, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    time.sleep(0.5)  # subscriptions and queues in place before the first batch
    sched0 = cpu_s(scheduler_pid) if scheduler_pid else None
    me0, t0 = cpu_s(), time.monotonic()
    handles = extra.get("actor_futures", mailboxes)
    futures = [client.submit(produce, channel, n, workload, extra.get("store_dir"), mb,
                             pure=False, key=f"produce-{n}")
               for n, mb in zip(names, handles)]
    results = client.gather(futures)
    rx.finished.wait(60)
    wall = time.monotonic() - t0  # from the submissions to the last batch received
    me_cpu = cpu_s() - me0
    sched_cpu = (cpu_s(scheduler_pid) - sched0 - idle_rate * wall) if scheduler_pid else None
    stop.set()
    for t in threads:
        t.join(5)
    if channel == "events":
        client.unsubscribe_topic(TOPIC)
    elif channel == "queue":
        for q in queues:
            q.close()
    elif channel == "variable":
        for v in variables:
            v.delete()
    del mailboxes, handles
    extra.pop("actor_futures", None)
    sent = sum(r["sent"] for r in results)
    if channel == "store":  # batches as steps: count step records instead
        got = sum(len(s) for s in rx.seqs.values())
        expected = got  # every written step is read eventually (the last flush has them all)
    else:
        got = sum(len(s) for s in rx.seqs.values())
        expected = sent
    lat = sorted(rx.latencies)
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000) if lat else (lambda p: None)
    return {
        "channel": channel, "jobs": jobs, "batches_sent": sent, "delivered": got,
        "lost": expected - got, "wall_s": round(wall, 2),
        "batches_per_s": round(sent / wall, 1),
        "latency_ms": {"median": q(0.5), "p95": q(0.95), "max": lat[-1] * 1000 if lat else None},
        "task_send_ms_per_batch": round(1000 * sum(r["send_s"] for r in results) / max(1, sent), 3),
        "scheduler_cpu_ms_per_batch": round(1000 * sched_cpu / max(1, sent), 3)
        if sched_cpu is not None else None,
        "server_cpu_ms_per_batch": round(1000 * me_cpu / max(1, sent), 3),
    }


# ---------------------------------------------------------------- the cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_by_hand(workers: int) -> tuple[str, list[subprocess.Popen]]:
    """``dask scheduler`` and ``dask worker`` processes, as README's recipe starts them."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    bindir = Path(sys.executable).parent
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--dashboard-address", ":0"],
                             env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    work = subprocess.Popen([str(bindir / "dask"), "worker", address, "--nworkers",
                             str(workers), "--nthreads", "1", "--dashboard-address", ":0"],
                            env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return address, [sched, work]


def stop_processes(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def main(argv=None) -> int:
    from bench import env

    p = argparse.ArgumentParser(prog="python -m bench.dask_relay",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", default=",".join(CHANNELS))
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--workload", choices=("replay", "train"), default="replay")
    p.add_argument("--scheduler", help="a running scheduler (default: start one by hand here)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    from distributed import Client

    load_start = env.load()
    procs: list[subprocess.Popen] = []
    address = args.scheduler
    scheduler_pid = None
    if address is None:
        address, procs = start_by_hand(args.jobs)
        scheduler_pid = procs[0].pid
    tmp = Path(tempfile.mkdtemp(prefix="rnnlab-relay-"))
    out = {"command": "python -m bench.dask_relay " + " ".join(argv or sys.argv[1:]),
           "machine": env.describe(), "load_start": load_start, "results": []}
    try:
        if args.workload == "replay":
            batches = record_batches(args.seconds)
            sizes = sorted(len(b) for _, b in batches)
            out["recorded"] = {"batches": len(batches), "bytes_median": sizes[len(sizes) // 2],
                               "bytes_max": sizes[-1], "seconds": args.seconds}
            print(f"recorded {len(batches)} batches in {args.seconds:g} s "
                  f"(median {sizes[len(sizes) // 2]} B, max {sizes[-1]} B)", flush=True)
            workload = ("replay", batches)
        else:
            workload = ("train", CONFIG, args.seconds)
        # The default client (actor handles need one), talking to workers directly.
        with Client(address, direct_to_workers=True) as client:
            client.wait_for_workers(args.jobs, timeout=120)
            client.run(warm)
            idle_rate = 0.0
            if scheduler_pid:
                c0, t0 = cpu_s(scheduler_pid), time.monotonic()
                time.sleep(5)
                idle_rate = (cpu_s(scheduler_pid) - c0) / (time.monotonic() - t0)
                out["scheduler_idle_cpu_pct"] = round(100 * idle_rate, 2)
            for channel in channels:
                r = run_channel(client, channel, args.jobs, workload, scheduler_pid, idle_rate, tmp)
                r["load"] = env.load()
                out["results"].append(r)
                print(json.dumps(r), flush=True)
    finally:
        stop_processes(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    out["load_end"] = env.load()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

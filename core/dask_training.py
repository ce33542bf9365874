"""Trainings on a Dask cluster: :class:`core.jobs.TrainingJob`'s third mode, ``"dask"``.

With ``RNNLAB_DASK_SCHEDULER`` set (a scheduler's address such as ``tcp://host:8786``,
or ``local`` for a LocalCluster this server starts: one single-threaded worker process
per training slot), a job the app starts in mode "process" runs as one task on the
cluster instead of in a child process, and the server only relays its records::

    server (Streamlit)                        scheduler                   worker
    TrainingJob thread: ClusterSlots, then
      submit(train_task) ─────────────────────────────────────────────▶ train_task: trains,
    record handler ◀── topic rnnlab-records-<server> ◀── log_event ───── batches records
      → the job's inbox → RunData/RunWriter      (the last 1000 kept)    (core.worker.Batcher)
    Stop ── Event <key>-stop .set() ─────────▶ Event ◀── wait(1 s) ──── a watcher thread:
                                                                        Trainer.stop()
    lost worker ◀── topic "all": remove-worker, with the keys it was processing

**Records** travel through the scheduler's structured event log (``Worker.log_event``,
``Client.subscribe_topic``), chosen by measurement against a ``distributed.Queue`` per
job, a ``Variable`` polled by the server, a mailbox actor and the run store on shared
storage (``bench/dask_relay.py``; BENCHMARKS.md, "Trainings on a Dask cluster"):
Pub/Sub, the other candidate, was deprecated in 2024 (dask/distributed#8724: race
conditions that could bring down stream connections) and is gone from this version; the
event log is what replaced it. Sending joins the worker's batched stream: no round trip
(measured: it held the training 0.07 ms a batch on a quiet machine, 1-5 ms with four
trainings on two cores, where ``Queue.put`` held it 1.2-28 ms and an actor call 2.8-18
ms); the scheduler only forwards it (0.5-0.7 ms of its CPU a batch, the least of the
lossless channels but the actor's, which goes round it); nothing is lost (a
``Variable`` polled every 0.1 s lost over half the batches) and it arrives in 2-20 ms
(median; the shared store: 1.2-1.6 s, its flush interval). Each batch is a numbered
message ``{"job", "kind": "records", "seq", "data": pickled [(i, Record), ...]}``; the
scheduler keeps the last 1000 events of a topic (``distributed.admin.low-level-log-
length``), so one topic per server process (a topic per job would never be freed) and
a gap in the numbers (a reconnect) is filled from that copy (``Client.get_events``) or
reported in the run's status.

**Stop**: a ``distributed.Event`` per job; a thread of the task waits on it (one long
poll per second on the scheduler) and calls ``Trainer.stop()``, which the trainer
checks between steps. A job stopped before a worker took its task cancels the task.

**At most one attempt**: Dask re-runs the tasks of a lost worker elsewhere (up to
``distributed.scheduler.allowed-failures`` times). The server puts one ticket in a
``distributed.Queue`` of the job before submitting it; an attempt takes what the queue
holds (``get(batch=True)``: one atomic step on the scheduler, where checking a flag and
then setting it would be two) and trains only if it got the ticket, so a lost worker
never silently restarts a training from step 0 (no retry storm); ``retries=0`` for
errors. A lost worker's job also sets its stop Event, for a worker the scheduler gave up
on that is still training, and the task checks that Event once more after its warm-up.

**Lost worker**: the scheduler's ``remove-worker`` event (topic ``all``) names the tasks
that were running there; the job's runs end ``interrupted`` with every record relayed
until then (written to the run store as they came), and the task is cancelled.

**Identity** (core.identity): the code version is the server's, and the task refuses
to train on a worker whose code differs; the numerics are the cluster's workers'
(``worker_facts`` on every worker when the server connects; on a cluster of one kind
of machine, what process mode would compute on it; ``local``: this machine's), so a run
trained on the cluster is found again by the next identical press.

**The queue**: :class:`ClusterSlots`, the server's visible queue in front of the
cluster, with as many slots as the cluster has worker threads (followed as workers come
and go) and the same wait estimate as the server's own slots. A task can still wait
on the cluster (another server, or a sweep, uses its threads): the job stays
"queued" and its message says it waits on the cluster.

The workers must import this project: run ``dask scheduler`` and ``dask worker`` with
it on ``PYTHONPATH`` (the error says so: :func:`core.executors.cluster_import_error`).

Why one file of ~640 lines: the cluster side (the task that trains on a worker and
sends its records) and the server side (the relay that receives them, the stop event,
the lost-worker rule) speak one message protocol defined here; kept together so the two
ends of each message are read side by side.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from core import settings
from core.config import TrainConfig
from core.executors import BackendError, cluster_import_error
from core.scheduling import INTERACTIVE, Slots
from core.train import EndRecord

#: Seconds the task's watcher waits on the stop Event per long poll.
STOP_POLL_S = 1.0
#: Seconds the relay waits for the task's last messages once its future has ended.
TRAILING_S = 5.0
#: The status messages of a job submitted to the cluster that no worker has started yet:
#: first (status "running"), then once it has waited QUEUED_AFTER_S (status "queued").
STARTING = "Starting on the Dask cluster ({address})…"
QUEUED_ON_CLUSTER = ("Queued on the Dask cluster ({address}): submitted {waited} s ago, waiting "
                     "for one of its {threads} worker thread{s} (all busy, also with work from "
                     "elsewhere)")
#: While the server connects to its cluster (or starts the local one) for the first job.
CONNECTING = "Connecting to the Dask cluster ({setting}) …"
#: Seconds after the submission from which a job not started is said to be queued there.
QUEUED_AFTER_S = 5.0


# ---------------------------------------------------------------- worker side


def worker_facts() -> dict:
    """What a worker would train with: its code version and numerics (core.identity).
    Run on every worker when the server connects (``Client.run``)."""
    from core import identity

    return {"code": identity.code_version(), "numerics": identity.numerics(),
            "host": socket.gethostname()}


def running_trainings(dask_worker) -> list[str]:
    """On a worker (``Client.run(running_trainings)``): the training tasks its threads are
    running, also those the scheduler has cancelled (Dask cannot interrupt a thread: a
    cancelled task runs on until it returns)."""
    return [str(k) for k in dask_worker.state.executing if str(k).startswith("rnnlab-train-")]


def _nice_this_thread(nice: int) -> None:
    """Lower this thread's priority (Linux: niceness is per thread), so that a LocalCluster
    on the server's machine yields to the pages, as training processes do; the worker's
    event loop keeps its priority."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except (OSError, AttributeError):
        pass


def train_task(spec: dict) -> dict:
    """The task: train ``spec["configs"]`` in lockstep on this worker, sending the records
    as numbered batches to the server's topic; returns the final weights.

    ``spec``: key, topic, configs (dicts), code (the server's code version), stop (an
    Event's name), ticket (a Queue's name), nice. Sends ``started``, ``records`` ...,
    ``done``; or one ``refused`` (no ticket, other code, stopped before it started)."""
    from distributed import Event, Queue, get_worker

    from core import identity
    from core.executors import prepare_worker
    from core.train import Trainer, run_lockstep, warm_up
    from core.worker import Batcher

    worker = get_worker()
    key, topic = spec["key"], spec["topic"]

    def send(kind: str, **fields) -> None:
        worker.log_event(topic, {"job": key, "kind": kind, **fields})

    ticket = Queue(spec["ticket"])
    try:
        mine = ticket.get(batch=True)  # atomic: of two attempts, one gets it
    finally:
        ticket.close()
    if not mine:
        send("refused", status="interrupted", message=(
            "the Dask worker training it was lost and Dask started it again elsewhere; it is "
            "not trained twice. Press Train to train it again"))
        return {"status": "refused"}
    stop = Event(spec["stop"])
    if stop.is_set():
        send("refused", status="stopped", message="stopped before a worker started it")
        return {"status": "refused"}
    code = identity.code_version()
    if code != spec["code"]:
        send("refused", status="stopped", message=(
            f"the worker {worker.address} runs other code (version {code}) than the server "
            f"(version {spec['code']}): deploy the same version of the project to the server "
            "and every worker"))
        return {"status": "refused"}
    send("started", worker=worker.address, host=socket.gethostname(), pid=os.getpid())
    prepare_worker()
    warm_up()
    _nice_this_thread(spec.get("nice", 0))
    trainers = [Trainer(TrainConfig.from_dict(d)) for d in spec["configs"]]
    if stop.is_set():  # stopped during the warm-up (seconds on a fresh worker)
        for t in trainers:
            t.stop()
    done = threading.Event()

    def watch_stop() -> None:
        while not done.is_set():
            try:
                if stop.wait(timeout=STOP_POLL_S):
                    for t in trainers:
                        t.stop()
                    return
            except Exception:  # noqa: BLE001 - a reconnecting client: try again
                time.sleep(STOP_POLL_S)

    threading.Thread(target=watch_stop, name="rnnlab-dask-stop", daemon=True).start()
    seq = 0

    def send_batch(batch: list) -> None:
        nonlocal seq
        send("records", seq=seq, t=time.time(),
             data=pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
        seq += 1

    batcher = Batcher(send_batch, at_once=False)  # at most 5 batches a second
    try:
        run_lockstep(trainers, batcher.add)
        batcher.flush()
    finally:
        done.set()
    send("done", batches=seq)
    return {"status": "done", "models": [
        {k: v.detach().contiguous() for k, v in t.model.state_dict().items()} for t in trainers]}


# ---------------------------------------------------------------- the cluster


class Cluster:
    """This server's connection to its Dask cluster: one client (and the LocalCluster
    when the setting is ``local``), one record topic, the workers' threads and facts."""

    def __init__(self, setting: str, connect_timeout: str = "10s"):
        from core.executors import connect

        self.setting = setting
        self.local: LocalClusterProcess | None = None
        if setting == "local":
            n = settings.get("RNNLAB_MAX_TRAININGS")
            self.local = LocalClusterProcess(n)
            try:
                self.client = connect(self.local.address, connect_timeout)
                self.client.wait_for_workers(n, timeout=120)
            except BaseException:
                self.local.close()
                raise
        else:
            self.client = connect(setting, connect_timeout, hint=(
                "or set RNNLAB_DASK_SCHEDULER=local for a cluster on this machine"))
        self.address = self.client.scheduler.address
        self.topic = f"rnnlab-records-{uuid.uuid4().hex[:12]}"
        self.closed = False
        self._inboxes: dict[str, queue.SimpleQueue] = {}
        self._lock = threading.Lock()
        self._threads: dict[str, int] = {}
        self._facts: dict[str, dict] = {}
        try:
            self.refresh()
        except BackendError:
            self.close()
            raise
        self._subscribed_on = None
        self.subscribe()

    def __repr__(self) -> str:
        kind = "LocalCluster" if self.local is not None else "cluster"
        return f"<Dask {kind} {self.address}: {self.threads()} worker thread(s)>"

    # ------------------------------------------------------------ workers

    def refresh(self) -> None:
        """Ask the scheduler for its workers' threads, and each new worker for its facts."""
        try:
            threads = self.client.nthreads()
            new = [w for w in threads if w not in self._facts]
            facts = self.client.run(worker_facts, workers=new) if new else {}
        except Exception as e:  # Dask raises the worker's own error types
            raise BackendError(cluster_import_error(e) or
                               f"the Dask cluster at {self.address} failed: "
                               f"{type(e).__name__}: {e}") from e
        with self._lock:
            self._threads = dict(threads)
            self._facts.update(facts)

    def threads(self) -> int:
        """Worker threads on the cluster now."""
        return sum(self._threads.values())

    def numerics(self) -> dict:
        """The numerics of the cluster's workers (core.identity.numerics): one dict when
        they agree, else the distinct ones (runs may then differ in bits by worker)."""
        with self._lock:
            distinct = {repr(sorted(f["numerics"].items())): f["numerics"]
                        for f in self._facts.values()}
        if len(distinct) == 1:
            return next(iter(distinct.values()))
        return {"dask workers": [distinct[k] for k in sorted(distinct)]}

    # ------------------------------------------------------------ events

    def subscribe(self) -> None:
        """Subscribe to the records' topic and the cluster's events, again after the client
        reconnected (the scheduler forgets a client's subscriptions with the client)."""
        comm = self.client.scheduler_comm
        if comm is not None and comm is self._subscribed_on:
            return
        self._subscribed_on = comm
        self.client.subscribe_topic(self.topic, self._on_record)
        self.client.subscribe_topic("all", self._on_cluster_event)

    def register(self, key: str) -> queue.SimpleQueue:
        box: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._inboxes[key] = box
        return box

    def unregister(self, key: str) -> None:
        with self._lock:
            self._inboxes.pop(key, None)

    def _on_record(self, event) -> None:
        """On the client's event loop: hand the message to its job's relay thread."""
        msg = event[1]
        box = self._inboxes.get(msg.get("job")) if isinstance(msg, dict) else None
        if box is not None:
            box.put(msg)

    def _on_cluster_event(self, event) -> None:
        msg = event[1]
        if not isinstance(msg, dict):
            return
        if msg.get("action") == "remove-worker":
            address = msg.get("worker")
            with self._lock:
                self._threads = {w: n for w, n in self._threads.items() if w != address}
            for key in msg.get("processing-tasks") or ():
                box = self._inboxes.get(key)
                if box is not None:
                    box.put({"kind": "lost", "worker": address})
        elif msg.get("action") == "add-worker":
            # Not on the event loop: refresh() makes calls that wait for it.
            threading.Thread(target=self._refresh_quietly, name="rnnlab-dask-refresh",
                             daemon=True).start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except BackendError:
            pass  # the worker's tasks will say what is wrong

    def missed(self, key: str, seqs: Sequence[int]) -> dict[int, dict]:
        """Record batches of ``key`` with these numbers, from the scheduler's copy of the
        topic (its last 1000 events)."""
        wanted = set(seqs)
        try:
            events = self.client.get_events(self.topic)
        except Exception:  # noqa: BLE001 - the scheduler may be gone too
            return {}
        return {m["seq"]: m for _, m in events
                if isinstance(m, dict) and m.get("job") == key and m.get("kind") == "records"
                and m.get("seq") in wanted}

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            for topic in (self.topic, "all"):  # else the scheduler writes to a closed comm
                try:
                    self.client.unsubscribe_topic(topic)
                except (ValueError, RuntimeError):
                    pass
            self.client.close()
        finally:
            if self.local is not None:
                self.local.close()


class LocalClusterProcess:
    """``RNNLAB_DASK_SCHEDULER=local``: a LocalCluster (scheduler and ``workers`` single-
    threaded worker processes) in a child process of its own, ``python -m
    core.dask_training --local-cluster N``, not in the server. A nanny starts a dead worker
    again with multiprocessing's *spawn*, which re-runs the parent's ``__main__``: in the
    server that is a Streamlit page, an unguarded script (measured with such a script as
    ``__main__``: the restart failed with multiprocessing's bootstrap error); in the child
    it is this module, guarded. The server also keeps only
    the relay: the scheduler's CPU is not its own. The child ends its cluster when its
    stdin closes (the server closed it, or died)."""

    def __init__(self, workers: int, timeout: float = 180.0):
        root = Path(__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.dask_training", "--local-cluster", str(workers)],
            cwd=str(root), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, name="rnnlab-dask-local-stderr",
                         daemon=True).start()
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        try:
            self.address = json.loads(line[0])["address"] if line and line[0] else None
        except ValueError:
            self.address = None
        if self.address is None:
            self.close()
            tail = "".join(self._stderr[-5:]).strip()
            raise BackendError(f"the local Dask cluster did not start: {tail or 'no address'}")

    def _drain(self) -> None:
        for text in self.proc.stderr:
            self._stderr = (self._stderr + [text])[-20:]

    def close(self, timeout: float = 30.0) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _serve_local_cluster(workers: int) -> int:
    """The child of :class:`LocalClusterProcess`: start the cluster, say its address on
    stdout, keep it until stdin ends."""
    from core.executors import local_cluster

    cluster = local_cluster(workers)
    try:
        print(json.dumps({"address": cluster.scheduler_address}), flush=True)
        sys.stdin.read()
    finally:
        cluster.close()
    return 0


_lock = threading.Lock()
_cluster: Cluster | None = None
_failure: tuple[float, str, BaseException] | None = None  # (when, setting, error)
FAILURE_MEMORY_S = 10.0  # a failed connection is not retried sooner (each press would wait)


def cluster() -> Cluster:
    """This server's cluster for ``$RNNLAB_DASK_SCHEDULER``, connected (or started) on first
    use; a BackendError says why it cannot be."""
    global _cluster, _failure
    setting = settings.get("RNNLAB_DASK_SCHEDULER")
    if not setting:
        raise BackendError("training on a Dask cluster needs RNNLAB_DASK_SCHEDULER: a "
                           "scheduler's address (tcp://host:8786), or local")
    with _lock:
        if _cluster is not None and not _cluster.closed and _cluster.setting == setting:
            return _cluster
        if _failure is not None and _failure[1] == setting and \
                time.monotonic() - _failure[0] < FAILURE_MEMORY_S:
            raise BackendError(str(_failure[2])) from _failure[2]
        if _cluster is not None:
            _cluster.close()
        try:
            _cluster = Cluster(setting)
        except BackendError as e:
            _cluster, _failure = None, (time.monotonic(), setting, e)
            raise
        _failure = None
        return _cluster


def shutdown() -> None:
    """Close this server's cluster connection (and its LocalCluster)."""
    global _cluster
    with _lock:
        c, _cluster = _cluster, None
    if c is not None:
        c.close()


atexit.register(shutdown)


class ClusterSlots(Slots):
    """The visible queue in front of the cluster: as many slots as the cluster has worker
    threads now (0 while it has no workers: jobs wait), FIFO within a priority class,
    with the server's wait estimate (core.jobs.Slots)."""

    def __init__(self):
        super().__init__(1)

    @property
    def capacity(self) -> int:
        c = _cluster
        return c.threads() if c is not None and not c.closed else 0

    @capacity.setter
    def capacity(self, value: int) -> None:
        pass  # Slots.__init__ sets it; here it follows the cluster

    def acquire(self, token, cancelled, priority=INTERACTIVE, on_wait=None, every_s=1.0) -> bool:
        if _cluster is None or _cluster.closed:  # the first job: say why it waits
            for r in getattr(token, "runs", ()):
                r.data.update_status(message=CONNECTING.format(
                    setting=settings.get("RNNLAB_DASK_SCHEDULER")))
        cluster()  # connected (else a BackendError saying why) before queueing for it
        return super().acquire(token, cancelled, priority, on_wait, every_s)

    def where(self) -> str:
        n = self.capacity
        return (f" on the Dask cluster ({n} worker thread{'s' if n != 1 else ''})" if n
                else " on the Dask cluster (no workers connected yet)")

    def estimate_wait(self, token: object):
        return super().estimate_wait(token) if self.capacity >= 1 else None


CLUSTER_SLOTS = ClusterSlots()


def cluster_identity(configs: Sequence[TrainConfig]) -> str:
    """A job's identity on the cluster: its configs, this code, the workers' numerics.
    A cluster that cannot be reached gives an identity of its own (the job then fails
    with the reason, in its thread). ``local``: this machine's numerics, which its
    workers share (same CPU, same environment), without waiting for the cluster to
    start (seconds: the press that starts it must not wait on Streamlit's script thread)."""
    from core.identity import run_identity

    if settings.get("RNNLAB_DASK_SCHEDULER") == "local":
        return run_identity(list(configs))
    try:
        numbers = cluster().numerics()
    except BackendError as e:
        numbers = {"dask": f"unreachable: {e}"}
    return run_identity(list(configs), numbers=numbers)


# ---------------------------------------------------------------- the relay


def train_on_cluster(job) -> None:
    """TrainingJob mode "dask", on the job's thread once it holds a cluster slot: submit the
    job as one task and relay its records into the job's runs until it ends."""
    relay = Relay(cluster(), job)
    job._worker = relay  # job.stop() reaches the task through it
    relay.run()


class Relay:
    """One job's task on the cluster, seen from the server. ``stop()`` (TrainingJob.stop,
    any thread) never blocks: the relay thread delivers it."""

    def __init__(self, c: Cluster, job):
        self.c, self.job = c, job
        first = next((r.run_id for r in job.runs if r.run_id), "run")
        self.key = f"rnnlab-train-{first}-{uuid.uuid4().hex[:8]}"
        self.inbox = c.register(self.key)
        self._stop = threading.Event()
        self.started = False
        self.worker: str | None = None
        self.seq = 0  # the next batch number expected
        self.lost_batches = 0
        self.future = None
        # Seconds from a batch sent on the worker to it applied here (one clock only when
        # they share a machine: a benchmark's figure, bench/dask_training.py).
        self.lags: collections.deque[float] = collections.deque(maxlen=10_000)

    def stop(self) -> None:
        self._stop.set()
        self.inbox.put({"kind": "wake"})

    def run(self) -> None:
        from distributed import Event, Queue

        from core.identity import code_version

        job = self.job
        if job.stopping:
            self._stop.set()
        submitted = time.monotonic()
        self._note_queued(submitted)  # "running" now, as a child process's job is at once
        spec = {"key": self.key, "topic": self.c.topic,
                "configs": [r.config.to_dict() for r in job.runs], "code": code_version(),
                "stop": f"{self.key}-stop", "ticket": f"{self.key}-ticket",
                "nice": settings.get("RNNLAB_WORKER_NICE") if self.c.local is not None else 0}
        self._stop_event = Event(spec["stop"], client=self.c.client)
        ticket = Queue(spec["ticket"], client=self.c.client)
        ticket.put("ticket")
        self.c.subscribe()
        try:
            self.future = self.c.client.submit(
                train_task, spec, key=self.key, pure=False, retries=0,
                priority=1 if job.priority == INTERACTIVE else 0)
            self._relay(submitted)
        finally:
            self.c.unregister(self.key)
            try:
                ticket.close()  # the scheduler drops the queue once its last handle closes
            except Exception:  # noqa: BLE001 - best effort
                pass

    # ------------------------------------------------------------ the loop

    def _relay(self, submitted: float) -> None:
        stop_sent = False
        ended_at = None  # when the future was first seen done
        last_note = time.monotonic()
        while True:
            try:
                msg = self.inbox.get(timeout=0.5)
            except queue.Empty:
                msg = None
            if self._stop.is_set() and not stop_sent:
                stop_sent = True
                self._stop_event.set()
                if not self.started:
                    self.future.cancel()
                    self._end_all("stopped", "stopped before a worker of the Dask cluster "
                                             "started it")
                    return
            if msg is not None:
                kind = msg.get("kind")
                if kind == "records":
                    self._records(msg)
                elif kind == "started":
                    self._started(msg)
                elif kind == "done":
                    self._fill(msg.get("batches", self.seq))
                    self._finish_from_result()
                    return
                elif kind == "refused":
                    self._end_all(msg.get("status", "stopped"),
                                  f"not trained on the Dask cluster: {msg['message']}")
                    return
                elif kind == "lost" and self.started:
                    self.future.cancel()
                    self._stop_event.set()  # in case the worker is not dead, only cut off
                    self._end_all("interrupted", (
                        f"the Dask worker training this run ({msg.get('worker')}) was lost; the "
                        "records up to then are kept. Press Train to train it again"))
                    return
                continue  # drain the inbox before looking at anything else
            if not self.started and time.monotonic() - last_note >= 2.0:
                last_note = time.monotonic()
                self._note_queued(submitted)
            if self.future.done():
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at >= TRAILING_S:  # no "done" came after it
                    self._ended_without_done()
                    return

    def _started(self, msg: dict) -> None:
        self.started, self.worker = True, msg.get("worker")
        for r in self.job.runs:
            r.data.update_status(message="", wait_s=None, dask_worker=self.worker,
                                 dask_host=msg.get("host"))
            r.data.set_status("running")

    def _records(self, msg: dict) -> None:
        seq = msg.get("seq", self.seq)
        if seq < self.seq:
            return  # already applied (filled from the scheduler's copy)
        if seq > self.seq:
            self._fill(seq)
        for i, record in pickle.loads(msg["data"]):  # our own task's records
            self.job._on_record(i, record)
        self.seq = seq + 1
        if "t" in msg:
            self.lags.append(time.time() - msg["t"])

    def _fill(self, upto: int) -> None:
        """Apply batches self.seq … upto-1 that did not arrive, from the scheduler's copy."""
        if upto <= self.seq:
            return
        found = self.c.missed(self.key, range(self.seq, upto))
        for seq in range(self.seq, upto):
            if seq in found:
                for i, record in pickle.loads(found[seq]["data"]):
                    self.job._on_record(i, record)
            else:
                self.lost_batches += 1
        self.seq = upto
        if self.lost_batches:
            for r in self.job.runs:
                r.data.update_status(lost_batches=self.lost_batches)

    def _note_queued(self, submitted: float) -> None:
        """Before a worker has started the task: "running" at first (it holds a cluster slot,
        and a free worker starts it within a fraction of a second: a live page keeps its
        1 s refresh), then "queued", saying that it waits on the cluster."""
        n, waited = self.c.threads(), time.monotonic() - submitted
        queued = waited >= QUEUED_AFTER_S
        text = (QUEUED_ON_CLUSTER if queued else STARTING).format(
            address=self.c.address, waited=round(waited), threads=n, s="s" if n != 1 else "")
        for r in self.job.runs:
            r.data.update_status(status="queued" if queued else "running", message=text)

    # ------------------------------------------------------------ endings

    def _finish_from_result(self) -> None:
        try:
            result = self.future.result(timeout=60)
        except Exception as e:  # noqa: BLE001 - the runs' records are in; only weights missing
            self.job.save_error = f"the final weights did not come back from the cluster: {e}"
            result = {}
        for r, state in zip(self.job.runs, result.get("models") or ()):
            if r.writer is not None:
                r.writer.save_state(state)
        for r in self.job.runs:
            if r.data.status.get("status") in ("queued", "running"):
                self._end(r, "interrupted", "the training's last records did not arrive")
            elif r.writer is not None:
                r.writer.flush()
        self._clear_stop()

    def _ended_without_done(self) -> None:
        f = self.future
        if f.cancelled():
            message = "the Dask cluster dropped the training (its scheduler restarted?)"
            status = "interrupted"
        else:
            try:
                exc = f.exception(timeout=5)
            except Exception as e:  # noqa: BLE001
                exc = e
            problem = cluster_import_error(exc) if exc is not None else None
            message = f"training failed on the Dask cluster: {problem or f'{type(exc).__name__}: {exc}'}"
            status = "interrupted" if self.started else "stopped"
        self._end_all(status, message)

    def _end_all(self, status: str, message: str) -> None:
        for r in self.job.runs:
            if r.data.status.get("status") in ("queued", "running"):
                self._end(r, status, message)

    def _end(self, run, status: str, message: str) -> None:
        st = run.data.status_copy()
        self.job._emit(run, EndRecord(status, st.get("step", 0), st.get("wall_s", 0.0), message))

    def _clear_stop(self) -> None:
        """A finished task can never run again: free its stop Event on the scheduler (an
        Event is dropped once cleared with nobody waiting). After a stop or a loss it
        stays set (a few hundred bytes), so an attempt still under way sees it."""
        try:
            self._stop_event.clear()
        except Exception:  # noqa: BLE001 - best effort
            pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["--local-cluster"] and len(sys.argv) == 3:
        sys.exit(_serve_local_cluster(int(sys.argv[2])))
    sys.exit("usage: python -m core.dask_training --local-cluster WORKERS")

"""Background training: a worker thread per job, snapshots for whoever draws.

A :class:`TrainingJob` trains one or more configurations *in lockstep* (the
Compare page: two to four models, one seed, identical batches, one step of each
in turn) on a daemon thread. The thread only produces records into each run's
:class:`~core.runs.RunData` and its :class:`~core.runs.RunWriter`; a UI reads
``job.runs[i].data`` snapshots whenever it likes. Nothing here knows about
Streamlit.

With ``mode="process"`` (what the app uses) the trainers themselves run in a
child process (:mod:`core.worker`) and the job's thread only relays their
records, so a page redrawing charts in the server cannot slow training down.

:class:`Slots` caps how many jobs train at once in the process (a room of
workshop users shares two cores); a job waiting for a slot reports status
"queued" with its place in the queue.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from core import settings
from core.config import TrainConfig
from core.runs import RunData, RunError, RunStore, RunWriter
from core.train import EndRecord, Trainer, run_lockstep

class Background:
    """Thread lifecycle shared by background jobs: ``start`` runs ``self._main`` on a
    daemon thread; ``join`` and ``alive`` report on it. (Subclasses set ``_thread``.)"""

    _thread: threading.Thread | None
    thread_name = "rnnlab-job"

    def start(self):
        self._thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        raise NotImplementedError


class Slots:
    """A counting semaphore that also tells a waiter its place in the queue."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._busy = 0
        self._queue: list[object] = []

    def acquire(self, token: object, cancelled: threading.Event) -> bool:
        """Block until a slot is free (FIFO) or ``cancelled`` is set; True if acquired."""
        with self._cond:
            self._queue.append(token)
            try:
                while not cancelled.is_set():
                    if self._busy < self.capacity and self._queue[0] is token:
                        self._busy += 1
                        return True
                    self._cond.wait(timeout=0.2)
                return False
            finally:
                self._queue.remove(token)
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def position(self, token: object) -> int | None:
        """1-based place in the waiting queue, or None if not waiting."""
        with self._cond:
            try:
                return self._queue.index(token) + 1
            except ValueError:
                return None

    @property
    def busy(self) -> int:
        with self._cond:
            return self._busy

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


def default_capacity() -> int:
    """Concurrent trainings per process: $RNNLAB_MAX_TRAININGS, else one per core."""
    return settings.get("RNNLAB_MAX_TRAININGS")


GLOBAL_SLOTS = Slots(default_capacity())


@dataclass
class JobRun:
    """One configuration inside a job: its config, live data and (optional) writer."""

    config: TrainConfig
    data: RunData
    writer: RunWriter | None = None
    trainer: Trainer | None = None

    @property
    def run_id(self) -> str | None:
        return self.data.status.get("run_id")


@dataclass
class TrainingJob(Background):
    """Train ``configs`` in lockstep on a background thread.

    ``store`` None keeps everything in memory only. A store that cannot be
    written (read-only disk, full disk) does not stop the training: the error is
    kept in ``save_error`` and the charts still come from memory.
    """

    thread_name = "rnnlab-train"

    configs: list[TrainConfig]
    store: RunStore | None = None
    slots: Slots | None = field(default_factory=lambda: GLOBAL_SLOTS)
    runs: list[JobRun] = field(default_factory=list)
    save_error: str | None = None
    error: str | None = None
    mode: str = "thread"  # "thread", or "process" (a child process: see core.worker)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _worker: object | None = None

    def __post_init__(self):
        if not self.configs:
            raise ValueError("a job needs at least one configuration")
        for cfg in self.configs:
            writer = None
            if self.store is not None:
                try:
                    writer = self.store.create(cfg)
                except RunError as e:
                    self.save_error = str(e)
            data = writer.data if writer else RunData(cfg, status={"run_id": None})
            self.runs.append(JobRun(cfg, data, writer))

    def stop(self) -> None:
        """Ask the job to stop (also cancels waiting for a slot). Returns at once."""
        self._cancel.set()
        for r in self.runs:
            if r.trainer is not None:
                r.trainer.stop()
        if self._worker is not None:
            self._worker.stop()

    @property
    def busy(self) -> bool:
        """Still queued or training (the thread may live a moment longer to save weights)."""
        return self.alive and any(
            r.data.status.get("status") in ("queued", "running") for r in self.runs)

    @property
    def queue_position(self) -> int | None:
        return self.slots.position(self) if self.slots else None

    def _emit(self, run: JobRun, record) -> None:
        if run.writer is not None:
            run.writer.add(record)
            if run.writer.error:
                self.save_error = run.writer.error
        else:
            run.data.add(record)

    def _main(self) -> None:
        acquired = False
        try:
            if self.slots is not None:
                acquired = self.slots.acquire(self, self._cancel)
                if not acquired:
                    for r in self.runs:
                        self._finish(r, "stopped", "stopped before a training slot was free")
                    return
            for r in self.runs:
                r.data.set_status("running")
            if self.mode == "process":
                self._train_in_process()
            else:
                self._train_in_thread()
        except Exception as e:  # noqa: BLE001 - a worker must never die silently
            self.error = f"{type(e).__name__}: {e}"
            for r in self.runs:
                if r.data.status.get("status") in ("queued", "running"):
                    self._finish(r, "stopped", f"training failed: {self.error}")
        finally:
            if acquired:
                self.slots.release()

    def _train_in_thread(self) -> None:
        for r in self.runs:
            r.trainer = Trainer(r.config)
            if self._cancel.is_set():
                r.trainer.stop()
        run_lockstep([r.trainer for r in self.runs], self._on_record)
        for r in self.runs:
            if r.writer is not None:
                r.writer.save_model(r.trainer.model)
                r.writer.flush()

    def _on_record(self, i: int, record) -> None:
        self._emit(self.runs[i], record)

    def _train_in_process(self) -> None:
        from core.worker import POOL

        worker = POOL.acquire()
        self._worker = worker
        worker.send_job([r.config.to_dict() for r in self.runs])
        if self._cancel.is_set():
            worker.stop()
        for msg in worker.messages():
            if msg[0] == "records":
                for i, record in msg[1]:
                    self._on_record(i, record)
            elif msg[0] == "model":
                writer = self.runs[msg[1]].writer
                if writer is not None:
                    writer.save_state(msg[2])
                    writer.flush()
        code = worker.close()
        for r in self.runs:
            if r.data.status.get("status") in ("queued", "running"):
                detail = worker.stderr_tail.splitlines()[-1:] or [f"exit code {code}"]
                self._finish(r, "stopped", f"the training process ended unexpectedly ({detail[0]})")

    def _finish(self, run: JobRun, status: str, message: str) -> None:
        st = run.data.status_copy()
        self._emit(run, EndRecord(status, st.get("step", 0), st.get("wall_s", 0.0), message))

    def wait_started(self, timeout: float = 5.0) -> None:
        """Block until the job is past the queue (or timeout): handy in scripts and tests."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and all(
            r.data.status.get("status") == "queued" for r in self.runs
        ):
            time.sleep(0.01)


class JobRegistry:
    """Live jobs by run id, shared by every session of one server process.

    A page that starts a job registers it; a browser refresh (a new session)
    finds it again by the run id in its URL. When a session ends, its jobs are
    *released*: they keep training for ``grace_s`` seconds, so a reload or a
    reconnect can claim them back, and are then stopped (their runs are saved
    with status "stopped").
    """

    def __init__(self, grace_s: float = 30.0):
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._jobs: dict[str, TrainingJob] = {}
        self._timers: dict[int, threading.Timer] = {}

    def register(self, job: TrainingJob) -> None:
        with self._lock:
            self._prune()
            for r in job.runs:
                if r.run_id:
                    self._jobs[r.run_id] = job

    def get(self, run_id: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(run_id)

    def claim(self, job: TrainingJob) -> None:
        """Cancel a pending release: a session has picked the job up again."""
        with self._lock:
            timer = self._timers.pop(id(job), None)
        if timer is not None:
            timer.cancel()

    def release(self, job: TrainingJob) -> None:
        """Stop ``job`` after the grace period unless it is claimed before then."""
        if not job.alive:
            return
        timer = threading.Timer(self.grace_s, self._expire, args=(job,))
        timer.name, timer.daemon = "rnnlab-release", True
        with self._lock:
            old = self._timers.pop(id(job), None)
            self._timers[id(job)] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def _expire(self, job: TrainingJob) -> None:
        with self._lock:
            self._timers.pop(id(job), None)
        job.stop()

    def _prune(self) -> None:
        """Forget finished jobs (their runs live on in the store)."""
        for run_id in [k for k, j in self._jobs.items() if not j.alive]:
            del self._jobs[run_id]

    def active(self) -> list[TrainingJob]:
        with self._lock:
            self._prune()
            return list({id(j): j for j in self._jobs.values()}.values())


def default_grace() -> float:
    """Seconds a released job keeps training: $RNNLAB_RELEASE_GRACE_S, else 30."""
    return settings.get("RNNLAB_RELEASE_GRACE_S")


GLOBAL_REGISTRY = JobRegistry(default_grace())

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
With ``$RNNLAB_DASK_SCHEDULER`` set, such a job runs in mode ``"dask"`` instead: one
task on a Dask cluster, queued in :data:`core.dask_training.CLUSTER_SLOTS`, its records
relayed the same way (:mod:`core.dask_training`).

:class:`Slots` caps how many jobs train at once in the process (a room of
workshop users shares two cores); a job waiting for a slot reports status
"queued" with its place in the queue and an estimated wait, computed from the
measured speed of the trainings ahead of it (:func:`estimate_wait`). Interactive
trainings go before the cells of a sweep started from the app (priority classes
INTERACTIVE, SWEEP; core/sweep_job.py takes a slot per cell).

One training per identical run: training is deterministic, so a job's identity
(core.identity: its configs, the code, the numerics) names its records. The
:class:`JobRegistry` hands a Train press whose identity is already training to
that job, and one already finished to the stored run (:meth:`JobRegistry.train_or_attach`).
Such a run belongs to no one session: Stop leaves it to the others while anyone
else watches it (:meth:`JobRegistry.stop_or_leave`), and it may not be deleted
while another session watches it or once it is shared (:meth:`JobRegistry.delete_refusal`).

Why one file of ~600 lines: a run's whole life in the server (started, relayed from a
thread, a child process or a cluster, attached to by other sessions, stopped, released)
is one state machine; TrainingJob and JobRegistry hold each other's invariants (who may
stop, who watches), and splitting them would spread one lock's rules over two files.
The slots and the wait estimate, which stand alone, are in core/scheduling.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core import owners, settings
from core.config import TrainConfig
from core.identity import run_identity
from core.runs import RunData, RunError, RunStore, RunWriter, new_run_id, shared_refusal
from core.scheduling import (  # noqa: F401 - also core.jobs' names, as before the split
    INTERACTIVE,
    SWEEP,
    THROUGHPUT,
    Slots,
    Throughput,
    WaitEstimate,
    default_capacity,
    estimate_wait,
    work_per_step,
)
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


MODES = ("thread", "process", "dask")


def resolve_mode(mode: str) -> str:
    """Where a job of ``mode`` trains: "process" becomes "dask" when $RNNLAB_DASK_SCHEDULER
    names a cluster (core.dask_training); "thread" stays in this process."""
    if mode not in MODES:
        raise ValueError(f"unknown training mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "process" and settings.get("RNNLAB_DASK_SCHEDULER"):
        return "dask"
    return mode


def job_identity(configs: Sequence[TrainConfig], mode: str) -> str:
    """The identity of a job training ``configs`` in ``mode`` (a resolved mode): on a Dask
    cluster the numerics are its workers' (core.dask_training.cluster_identity)."""
    if mode == "dask":
        from core.dask_training import cluster_identity

        return cluster_identity(configs)
    return run_identity(list(configs))


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

    ``identity`` (computed from the configs when not given: core.identity) and the
    job's run ids (``group``) are saved in each run's status, so the store can find
    the finished job again. ``priority``: the job's class in the slot queue.
    """

    thread_name = "rnnlab-train"

    configs: list[TrainConfig]
    store: RunStore | None = None
    slots: Slots | None = field(default_factory=lambda: GLOBAL_SLOTS)
    runs: list[JobRun] = field(default_factory=list)
    save_error: str | None = None
    error: str | None = None
    mode: str = "thread"  # "thread", "process" (a child process: core.worker) or "dask"
    identity: str | None = None
    priority: int = INTERACTIVE
    throughput: Throughput | None = field(default_factory=lambda: THROUGHPUT)
    owner: object | None = None  # who started it (core.jobs.JobRegistry: a session's owner)
    lesson: bool = False  # a lesson run (the Learn page's fixed settings: core.owners)
    wait: WaitEstimate | None = None  # while queued: the latest estimate
    _cancel: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _worker: object | None = None

    def __post_init__(self):
        if not self.configs:
            raise ValueError("a job needs at least one configuration")
        self.mode = resolve_mode(self.mode)
        if self.mode == "dask" and self.slots is GLOBAL_SLOTS:
            from core.dask_training import CLUSTER_SLOTS

            self.slots = CLUSTER_SLOTS  # the cluster's threads, not this server's cores
        if self.identity is None:
            self.identity = job_identity(self.configs, self.mode)
        ids = [new_run_id(cfg) for cfg in self.configs]
        while len(set(ids)) < len(ids):  # the same second and the same 6 hex digits
            ids = [new_run_id(cfg) for cfg in self.configs]
        for cfg, run_id in zip(self.configs, ids):
            writer = None
            if self.store is not None:
                try:
                    writer = self.store.create(cfg, run_id, status={
                        "identity": self.identity, "group": ids, **self._ownership()})
                except RunError as e:
                    self.save_error = str(e)
            data = writer.data if writer else RunData(cfg, status={"run_id": None})
            self.runs.append(JobRun(cfg, data, writer))

    def _ownership(self) -> dict:
        """What each run's status records of whom it is for (core.owners): the owner when
        it is a string (a browser's or user's owner id), and whether it is a lesson run."""
        out: dict = {"owner": self.owner} if isinstance(self.owner, str) else {}
        if self.lesson:
            out["lesson"] = True
        return out

    def stop(self) -> None:
        """Ask the job to stop (also cancels waiting for a slot). Returns at once."""
        self._cancel.set()
        for r in self.runs:
            if r.trainer is not None:
                r.trainer.stop()
        if self._worker is not None:
            self._worker.stop()

    @property
    def stopping(self) -> bool:
        """Stop has been asked for."""
        return self._cancel.is_set()

    @property
    def busy(self) -> bool:
        """Still queued or training (the thread may live a moment longer to save weights)."""
        return self.alive and any(
            r.data.status.get("status") in ("queued", "running") for r in self.runs)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs if r.run_id]

    @property
    def shared(self) -> bool:
        return any(r.data.status.get("shared") for r in self.runs)

    def mark_shared(self) -> None:
        """Note in each run that it is shared (the writer saves it at its next flush)."""
        for r in self.runs:
            if not r.data.status.get("shared"):
                r.data.update_status(shared=True)

    @property
    def queue_position(self) -> int | None:
        return self.slots.position(self) if self.slots else None

    # ------------------------------------------------------------ for the wait estimate

    def remaining_s(self) -> float | None:
        """Seconds until this job's slot comes free, from its runs' measured steps per
        second and the steps they have left (fewer once solved, when it stops when
        solved); None before its first step is measured."""
        left = []
        for r in self.runs:
            s = r.data.status_copy()
            if s.get("status") not in ("queued", "running"):
                continue
            rate, step = s.get("steps_per_s"), s.get("step", 0)
            if not rate:
                return None
            end = r.config.steps
            if r.config.stop_when_solved and s.get("steps_to_solve") is not None:
                end = min(end, s["steps_to_solve"] + r.config.solved_tail)
            left.append(max(0, end - step) / rate)
        # In lockstep every run advances at the job's pace: the last to end frees the slot.
        return max(left, default=0.0)

    def expected_s(self) -> float | None:
        """Seconds this job will hold a slot: each run's step budget at the speed measured
        for trainings of its size (core.jobs.Throughput); None before any was measured."""
        if self.throughput is None:
            return None
        total = 0.0
        for cfg in self.configs:
            per_step = self.throughput.seconds_per_step(cfg)
            if per_step is None:
                return None
            total += per_step * cfg.steps
        return total

    def _show_wait(self) -> None:
        """While queued: the place and estimated wait, in each run's status message."""
        self.wait = est = self.slots.estimate_wait(self) if self.slots else None
        pos = self.queue_position
        if pos is None:
            return
        text = f"Waiting for a training slot{self.slots.where()}: #{pos} in the queue"
        if est is not None:
            text += f", {est.words()} ({est.how()})."
        else:
            text += " (no training measured yet to estimate the wait)."
        for r in self.runs:
            r.data.update_status(message=text, wait_s=est.seconds if est else None)

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
                acquired = self.slots.acquire(self, self._cancel, self.priority,
                                              on_wait=self._show_wait)
                if not acquired:
                    for r in self.runs:
                        self._finish(r, "stopped", "stopped before a training slot was free")
                    return
            self.wait = None
            for r in self.runs:
                r.data.update_status(message="", wait_s=None)
                if self.mode != "dask":  # on a cluster: its relay says (core.dask_training)
                    r.data.set_status("running")
            if self.mode == "process":
                self._train_in_process()
            elif self.mode == "dask":
                from core.dask_training import train_on_cluster

                train_on_cluster(self)
            else:
                self._train_in_thread()
            if self.throughput is not None:  # what the next queued jobs' estimates use
                for r in self.runs:
                    s = r.data.status_copy()
                    if s.get("step", 0) >= 20:  # enough steps for a speed, stopped or not
                        self.throughput.observe(r.config, s.get("steps_per_s"))
        except Exception as e:  # noqa: BLE001 - a worker must never die silently
            self.error = f"{type(e).__name__}: {e}"
            for r in self.runs:
                if r.data.status.get("status") in ("queued", "running"):
                    self._finish(r, "stopped", f"training failed: {self.error}")
        finally:
            if acquired:
                self.slots.release(self)

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


def _owner(watcher: object) -> object:
    """Whom a watcher stands for: its ``owner`` (say, a browser's token kept across
    reloads) when it has one, else the watcher itself (a browser session)."""
    return getattr(watcher, "owner", None) or watcher


@dataclass
class Attached:
    """What :meth:`JobRegistry.train_or_attach` did: ``how`` is "started" (a new
    training), "attached" (to the identical training under way: ``job``) or "opened"
    (the identical finished run in the store: ``run_ids``, no job)."""

    how: str
    run_ids: list[str]
    job: TrainingJob | None = None


class JobRegistry:
    """Live jobs by run id, and who watches which run, for every session of one server.

    Sessions ("watchers": any hashable object, one per browser session; its ``owner``
    attribute, when set, says whom it stands for) tell the registry which runs each of
    their pages shows (:meth:`watch`). From that:

    * **one training per identical run**: :meth:`train_or_attach` hands a Train press
      to the live job with the same identity, or to the finished run in the store,
      and starts a training only when there is neither (atomically: twenty presses
      at once start one);
    * **shared**: a run handed by Train to an owner other than the one who started it
      is marked ``shared`` in its status;
    * **Stop** (:meth:`stop_or_leave`): stops the training only when no other session
      watches it; otherwise this session leaves it and it goes on for the others;
    * **end of a session** (:meth:`forget`): jobs nobody watches any more keep
      training for ``grace_s`` seconds, so a reload (which finds them again by the
      run ids in its URL and watches them) can claim them back, then stop (their
      runs are saved with status "stopped");
    * **delete** (:meth:`delete_refusal`): refused while the run trains, while another
      session watches it, and once it is shared.
    """

    def __init__(self, grace_s: float = 30.0):
        self.grace_s = grace_s
        self._lock = threading.RLock()
        self._start_lock = threading.Lock()  # one find-or-start at a time
        self._jobs: dict[str, TrainingJob] = {}
        self._views: dict[object, dict[str, tuple[str, ...]]] = {}  # watcher -> page -> ids
        self._timers: dict[int, threading.Timer] = {}

    # ------------------------------------------------------------ jobs

    def register(self, job: TrainingJob, watcher: object | None = None,
                 page: str = "") -> None:
        with self._lock:
            self._prune()
            for r in job.runs:
                if r.run_id:
                    self._jobs[r.run_id] = job
        if watcher is not None:
            if job.owner is None:
                job.owner = _owner(watcher)
            self.watch(watcher, page, job.run_ids)

    def get(self, run_id: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(run_id)

    def find(self, identity: str, store: RunStore | None = None) -> TrainingJob | None:
        """The live job training this identity into ``store`` (the same root), if any,
        that has not been asked to stop."""
        root = _root(store)
        with self._lock:
            self._prune()
            for job in {id(j): j for j in self._jobs.values()}.values():
                if job.identity == identity and job.alive and not job.stopping and \
                        _root(job.store) == root:
                    return job
        return None

    def train_or_attach(self, configs: Sequence[TrainConfig], store: RunStore,
                        watcher: object, page: str,
                        start: Callable[[str], TrainingJob],
                        mode: str | None = None) -> Attached:
        """A Train press: attach ``watcher``'s ``page`` to the identical live job, else
        open the identical finished run in ``store``, else call ``start(identity)``
        (which may raise, say, for a per-session cap) for a started job, registered here.
        Either of the first two, when the run came from another owner, marks it shared.
        ``mode``: where a started job would train (default: the app's, $RNNLAB_WORKER),
        which fixes the identity's numerics (:func:`job_identity`)."""
        mode = resolve_mode(mode or settings.get("RNNLAB_WORKER"))
        identity = job_identity(list(configs), mode)
        me = _owner(watcher)
        with self._start_lock:
            live = self.find(identity, store)
            if live is not None:
                if live.owner is not None and live.owner != me:
                    live.mark_shared()
                self.watch(watcher, page, live.run_ids)
                return Attached("attached", live.run_ids, live)
            done = store.find_identical(identity, len(configs))
            if done is not None:
                for run_id in done:
                    if isinstance(me, str) and store.recorded_owner(run_id) == me:
                        continue  # its own run, opened again (say, after a reload)
                    try:
                        store.mark_shared(run_id)
                    except (OSError, ValueError, RunError):
                        pass  # still opened; only the flag is lost
                self.watch(watcher, page, done)
                return Attached("opened", done)
            job = start(identity)
            job.owner = me
            self.register(job, watcher, page)
            return Attached("started", job.run_ids, job)

    # ------------------------------------------------------------ who watches what

    def watch(self, watcher: object, page: str, run_ids: Sequence[str]) -> None:
        """``watcher``'s ``page`` now shows ``run_ids`` (empty: nothing). A job it showed
        before that nobody watches any more is stopped (a page starting another training
        stopped its previous one before sharing existed, and still does); a job it now
        shows is claimed back from a pending release."""
        ids = tuple(i for i in run_ids if i)
        with self._lock:
            before = self._views.get(watcher, {}).get(page, ())
            if ids:
                self._views.setdefault(watcher, {})[page] = ids
            else:
                self._views.get(watcher, {}).pop(page, None)
            dropped = self._jobs_of(set(before) - set(ids))
            gained = self._jobs_of(ids)
            orphans = [j for j in dropped if j not in gained and not self._watchers_of_job(j)]
        for job in gained:
            self.claim(job)
        for job in orphans:
            job.stop()

    def forget(self, watcher: object) -> None:
        """The session ended: it watches nothing now; jobs nobody else watches are
        released (stopped after the grace period unless watched again)."""
        with self._lock:
            views = self._views.pop(watcher, {})
            jobs = self._jobs_of({i for ids in views.values() for i in ids})
            orphans = [j for j in jobs if not self._watchers_of_job(j)]
        for job in orphans:
            self.release(job)

    def watchers(self, run_id: str) -> set:
        """The watchers whose pages show this run."""
        with self._lock:
            return {w for w, pages in self._views.items()
                    if any(run_id in ids for ids in pages.values())}

    def live_watchers(self) -> int:
        """How many watchers (browser sessions) show a run of a job still alive (training
        or queued) on any of their pages: the pages of this server that redraw live
        (ui/live.py shares its redraw budget among them, core.scheduling.live_refresh_s).
        A session counts once however many of its pages show live runs, and until it
        ends (ui/state.py's session release) or its pages show other runs; a session gone
        to a page that shows no run still counts (on the slow side), and the Runs page's
        view of a live run, which is no watch, does not."""
        with self._lock:
            live = {run_id for run_id, job in self._jobs.items() if job.alive}
            if not live:
                return 0
            return sum(1 for pages in self._views.values()
                       if any(not live.isdisjoint(ids) for ids in pages.values()))

    def stop_or_leave(self, job: TrainingJob, watcher: object, page: str = "") -> str:
        """The Stop button of ``watcher``'s ``page``: "stopped" (the job is asked to stop)
        when no other session watches it, else "left": this page stops watching and the
        training goes on for the others (one participant must not end it for twenty)."""
        with self._lock:
            others = {w for w in self._watchers_of_job(job) if w is not watcher}
            if others:
                views = self._views.get(watcher, {})
                for p in [p for p, ids in views.items()
                          if (p == page or not page) and set(ids) & set(job.run_ids)]:
                    del views[p]
                return "left"
        job.stop()
        return "stopped"

    def delete_refusal(self, run_id: str, watcher: object | None = None,
                       store: RunStore | None = None, *, presenter: bool = False) -> str | None:
        """Why ``watcher`` may not delete (or rename) this run now, or None if it may:
        it is still training; another session watches it; or, read from ``store``, it is
        not the watcher's to delete. When the watcher stands for an owner id (a string:
        a browser's token kept across reloads), only its own runs are
        (core.owners.ownership_refusal); otherwise every run but a shared one (a run Train
        handed to more than one owner belongs to none of them). The ``presenter`` (who
        holds the deployment's key) may delete any run nobody trains or watches."""
        job = self.get(run_id)
        if job is not None and job.alive:
            return "it is still training: stop it on its page first"
        me = _owner(watcher) if watcher is not None else None
        others = {_owner(w) for w in self.watchers(run_id)} - {me}
        if others:
            n = len(others)
            return f"{n} other session{'s are' if n != 1 else ' is'} watching it"
        if store is not None and not presenter:
            try:
                status = store.read_status(run_id)
            except RunError:
                return None
            if isinstance(me, str):
                return owners.ownership_refusal(status, me)
            return shared_refusal(status)
        return None

    def _jobs_of(self, run_ids) -> list[TrainingJob]:
        jobs = {id(j): j for j in (self._jobs.get(i) for i in run_ids) if j is not None}
        return list(jobs.values())

    def _watchers_of_job(self, job: TrainingJob) -> set:
        ids = set(job.run_ids)
        return {w for w, pages in self._views.items()
                if any(ids & set(v) for v in pages.values())}

    # ------------------------------------------------------------ grace period

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
            if self._watchers_of_job(job):
                return  # watched again meanwhile
        job.stop()

    def _prune(self) -> None:
        """Forget finished jobs (their runs live on in the store)."""
        for run_id in [k for k, j in self._jobs.items() if not j.alive]:
            del self._jobs[run_id]

    def active(self) -> list[TrainingJob]:
        with self._lock:
            self._prune()
            return list({id(j): j for j in self._jobs.values()}.values())


def _root(store: RunStore | None) -> Path | None:
    return Path(store.root).resolve() if store is not None else None


def default_grace() -> float:
    """Seconds a released job keeps training: $RNNLAB_RELEASE_GRACE_S, else 30."""
    return settings.get("RNNLAB_RELEASE_GRACE_S")


GLOBAL_REGISTRY = JobRegistry(default_grace())

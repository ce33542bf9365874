"""A sweep running on a background thread, for a UI to watch (no Streamlit here).

The thread calls :func:`core.sweeps.run_sweep`, which farms the runs out to worker
processes; finished rows arrive through ``on_result`` and are kept here for
snapshots. Sweeps are heavy (every core), so a server runs one at a time:
``SWEEP_SLOTS`` queues the others, visibly.

A sweep shares the server's cores with the trainings people start from the pages,
so each of its cells takes a training slot (``core.jobs.GLOBAL_SLOTS``, the cap of
one training per core) at the low priority ``SWEEP``: a cell starts only when a
slot is free and no interactive training waits for one (:class:`SlottedBackend`).
A cell that has started runs to its end (a few seconds to a minute: cells stop once
solved); the next free slot goes to whoever waits at the pages first.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import threading
import time
from dataclasses import dataclass, field

import pandas as pd

from core.executors import Backend, LocalBackend
from core.jobs import GLOBAL_SLOTS, SWEEP, Background, Slots
from core.sweeps import SweepSpec, results_frame, run_sweep

SWEEP_SLOTS = Slots(1)


class _Cell:
    """A sweep cell's place in the training-slot queue; its times are the sweep's
    measured mean cell time (for the wait estimates of people behind it)."""

    def __init__(self, backend: SlottedBackend):
        self.backend = backend
        self.started: float | None = None

    def expected_s(self) -> float | None:
        return self.backend.mean_cell_s()

    def remaining_s(self) -> float | None:
        mean = self.backend.mean_cell_s()
        if mean is None or self.started is None:
            return mean
        return max(0.0, mean - (self.backend.clock() - self.started))


class SlottedBackend(Backend):
    """Runs each submitted task on ``inner`` only while it holds one of ``slots``,
    taken at ``priority`` in submission order (one dispatcher thread takes a slot,
    submits the next task, and so on; each task gives its slot back when it ends).
    ``abort`` cancels the tasks still waiting and aborts ``inner``'s."""

    name = "slotted"

    def __init__(self, inner: Backend, slots: Slots, priority: int = SWEEP,
                 clock=time.monotonic):
        super().__init__()
        self.inner, self.slots, self.priority, self.clock = inner, slots, priority, clock
        self.workers = inner.workers
        self.description = (f"{inner.description}; each run takes a training slot when no "
                            "interactive training waits")
        self._cancel = threading.Event()
        self._cond = threading.Condition()
        self._todo: collections.deque = collections.deque()
        self._durations: list[float] = []
        self._holding = 0
        self.waiting_for_slot = False  # the next task waits for a slot (for a UI)
        self._thread = threading.Thread(target=self._dispatch, name="rnnlab-sweep-slots",
                                        daemon=True)
        self._thread.start()

    def mean_cell_s(self) -> float | None:
        with self._cond:
            d = self._durations[-20:]
        return sum(d) / len(d) if d else None

    @property
    def holding(self) -> int:
        """Slots its tasks hold now."""
        with self._cond:
            return self._holding

    def _submit(self, fn, /, *args, **kwargs) -> cf.Future:
        outer: cf.Future = cf.Future()
        with self._cond:
            self._todo.append((outer, fn, args, kwargs))
            self._cond.notify_all()
        return outer

    def _next(self):
        with self._cond:
            while not self._todo and not self._cancel.is_set():
                self._cond.wait(0.2)
            return None if self._cancel.is_set() else self._todo.popleft()

    def _dispatch(self) -> None:
        while (item := self._next()) is not None:
            outer, fn, args, kwargs = item
            if outer.cancelled():
                continue
            cell = _Cell(self)
            self.waiting_for_slot = True
            acquired = self.slots.acquire(cell, self._cancel, self.priority)
            self.waiting_for_slot = False
            if not acquired:
                outer.cancel()
                break
            if not outer.set_running_or_notify_cancel():
                self.slots.release(cell)
                continue
            cell.started = self.clock()
            with self._cond:
                self._holding += 1
            try:
                inner = self.inner.submit(fn, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - handed to the caller through the future
                self._done_with(cell)
                outer.set_exception(e)
                continue
            inner.add_done_callback(lambda f, o=outer, c=cell: self._finished(f, o, c))

    def _done_with(self, cell: _Cell, measured: bool = False) -> None:
        with self._cond:
            self._holding -= 1
            if measured and cell.started is not None:
                self._durations.append(self.clock() - cell.started)
        self.slots.release(cell)

    def _finished(self, inner: cf.Future, outer: cf.Future, cell: _Cell) -> None:
        self._done_with(cell, measured=not inner.cancelled() and inner.exception() is None)
        if inner.cancelled():
            outer.set_exception(cf.CancelledError())
        elif inner.exception() is not None:
            outer.set_exception(inner.exception())
        else:
            outer.set_result(inner.result())

    def abort(self) -> None:
        self._cancel.set()
        with self._cond:
            todo, self._todo = list(self._todo), collections.deque()
            self._cond.notify_all()
        for outer, *_ in todo:
            outer.cancel()
        self.inner.abort()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.abort()
        else:
            self._cancel.set()
        self._thread.join(5)
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)
        self._closed = True


@dataclass
class SweepJob(Background):
    thread_name = "rnnlab-sweep"

    spec: SweepSpec
    root: str | None = None
    workers: int | None = None
    slots: Slots | None = field(default_factory=lambda: SWEEP_SLOTS)
    # The trainings' slots its cells take, one each, at priority SWEEP (None: no gate).
    training_slots: Slots | None = field(default_factory=lambda: GLOBAL_SLOTS)
    state: str = "queued"  # queued, running, finished, stopped, failed
    done: int = 0
    total: int = 0
    error: str | None = None
    _rows: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _backend: SlottedBackend | None = None

    def __post_init__(self):
        self.total = len(self.spec.cells)

    @property
    def sweep_id(self) -> str:
        return self.spec.sweep_id

    @property
    def yielding(self) -> bool:
        """Its next cell waits for a training slot (interactive trainings go first)."""
        return self._backend is not None and self._backend.waiting_for_slot

    def stop(self) -> None:
        self._stop.set()

    def results(self) -> pd.DataFrame:
        with self._lock:
            return results_frame(list(self._rows), self.spec.param_names)

    def _on_start(self, info: dict) -> None:
        with self._lock:
            self.done, self.total = info["done"], info["total"]

    def _on_result(self, row: dict, done: int, total: int) -> None:
        with self._lock:
            self._rows = [r for r in self._rows if r.get("cell_id") != row.get("cell_id")]
            self._rows.append(row)
            self.done, self.total = done, total

    def _make_backend(self) -> Backend | str:
        if self.training_slots is None:
            return "local"
        workers = min(self.workers or self.training_slots.capacity, self.training_slots.capacity)
        self._backend = SlottedBackend(LocalBackend(workers), self.training_slots)
        return self._backend

    def _main(self) -> None:
        acquired = False
        backend: Backend | str = "local"
        try:
            if self.slots is not None:
                acquired = self.slots.acquire(self, self._stop)
                if not acquired:
                    self.state = "stopped"
                    return
            self.state = "running"
            backend = self._make_backend()
            _, results = run_sweep(self.spec, backend=backend, workers=self.workers,
                                   root=self.root, on_result=self._on_result,
                                   stop_event=self._stop, on_start=self._on_start)
            with self._lock:
                self._rows = results.to_dict("records")
            self.state = "stopped" if self._stop.is_set() else "finished"
        except Exception as e:  # noqa: BLE001 - shown to the user, never swallowed
            self.error = f"{type(e).__name__}: {e}"
            self.state = "failed"
        finally:
            if isinstance(backend, Backend):
                backend.shutdown(wait=False, cancel_futures=True)
            if acquired:
                self.slots.release(self)

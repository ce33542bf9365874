"""Who trains when, and how often live pages redraw: the training slots, their priority
classes and the wait estimate; the live pages' refresh interval.

:class:`Slots` caps how many jobs train at once in the process (a room of workshop
users shares two cores): FIFO within a priority class, INTERACTIVE (a person waiting
at a page) before SWEEP (the cells of a sweep started from the app). A waiter learns
its place and an estimated wait, computed from the measured speed of the trainings
ahead of it (:func:`estimate_wait`, :class:`Throughput`). Split out of core/jobs.py,
which uses it, so that core/dask_training.py can queue on its own slots without
importing the jobs module that imports it.

:func:`live_refresh_s` shares the server's other scarce resource, its one GIL's worth
of page redraws, among the pages that watch live trainings (a fixed budget of redraws
a second, $RNNLAB_LIVE_REDRAWS_PER_S), and :func:`refresh_is_stale` says when a page's
interval has drifted far enough from it to be rescheduled (ui/live.py).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core import archspec, settings
from core.config import TrainConfig

#: Priority classes of :class:`Slots` (lower goes first): a person waiting at a page,
#: then the cells of a sweep started from the app.
INTERACTIVE, SWEEP = 0, 1


class Slots:
    """A counting semaphore with a visible queue: FIFO within a priority class, and a
    lower class only when no higher one waits (a sweep cell never takes a slot an
    interactive training is waiting for; none is taken away from it either: a running
    cell finishes).

    Holders and waiters may tell how long they will take: ``remaining_s()`` (a holder:
    seconds until it gives its slot back) and ``expected_s()`` (a waiter: seconds it
    will hold a slot), each a float or None when unknown; :meth:`estimate_wait` turns
    them into a waiter's estimated wait (:func:`estimate_wait`).
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._busy = 0
        self._queue: list[tuple[int, int, object]] = []  # (priority, arrival, token), sorted
        self._arrivals = itertools.count()
        self._holders: list[object] = []

    def acquire(self, token: object, cancelled: threading.Event, priority: int = INTERACTIVE,
                on_wait: Callable[[], None] | None = None, every_s: float = 1.0) -> bool:
        """Block until a slot is this token's turn or ``cancelled`` is set; True if acquired.
        ``on_wait()`` is called (outside the lock) about every ``every_s`` seconds of waiting,
        first at once: e.g. to show the waiter its place and estimated wait."""
        entry = (priority, next(self._arrivals), token)
        with self._cond:
            bisect.insort(self._queue, entry, key=lambda e: e[:2])
        last = None
        try:
            while True:
                with self._cond:
                    if cancelled.is_set():
                        return False
                    if self._busy < self.capacity and self._queue[0] is entry:
                        self._busy += 1
                        self._holders.append(token)
                        return True
                    if on_wait is None or (last is not None and
                                           time.monotonic() - last < every_s):
                        self._cond.wait(timeout=0.2)
                        continue
                last = time.monotonic()
                on_wait()
        finally:
            with self._cond:
                if entry in self._queue:
                    self._queue.remove(entry)
                self._cond.notify_all()

    def release(self, token: object | None = None) -> None:
        with self._cond:
            self._busy -= 1
            if token is not None and token in self._holders:
                self._holders.remove(token)
            self._cond.notify_all()

    def where(self) -> str:
        """Where these slots are, for a waiter's message ("" here: this server)."""
        return ""

    def position(self, token: object) -> int | None:
        """1-based place in the waiting queue, or None if not waiting."""
        with self._cond:
            for i, (_, _, t) in enumerate(self._queue):
                if t is token:
                    return i + 1
            return None

    def estimate_wait(self, token: object) -> WaitEstimate | None:
        """The estimated wait of a waiting ``token`` (None: not waiting, or nothing
        measured yet): see :func:`estimate_wait`."""
        with self._cond:
            place = self.position(token)
            if place is None:
                return None
            holders = list(self._holders)
            ahead = [t for _, _, t in self._queue[:place - 1]]
        running = [_ask(t, "remaining_s") for t in holders]
        return estimate_wait(self.capacity, running, [_ask(t, "expected_s") for t in ahead])

    @property
    def busy(self) -> int:
        with self._cond:
            return self._busy

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def waiting_with(self, priority: int) -> int:
        """How many wait in this priority class."""
        with self._cond:
            return sum(1 for p, _, _ in self._queue if p == priority)


def _ask(token: object, name: str) -> float | None:
    fn = getattr(token, name, None)
    try:
        value = fn() if fn is not None else None
    except Exception:  # noqa: BLE001 - an estimate must never break the queue
        return None
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class WaitEstimate:
    """A waiter's estimated wait and what it was computed from."""

    seconds: float
    running: int  # slot holders now
    ahead: int  # waiting ahead of this one
    guessed: int  # of those, how many had no measured speed (counted at the others' mean)
    capacity: int

    def words(self) -> str:
        """The wait in words: "about N s" (or "about N min")."""
        s = max(0.0, self.seconds)
        if s < 120:
            return f"about {max(1, round(s / 5) * 5 if s >= 30 else round(s))} s"
        return f"about {round(s / 60)} min"

    def how(self) -> str:
        """How it was computed, in one sentence."""
        holders = f"{self.running} training{'s' if self.running != 1 else ''}"
        slots = f"{self.capacity} training slot{'s' if self.capacity != 1 else ''}"
        first = f"{holders} of {slots} running (each: its steps left at its measured steps/s)"
        parts = [first]
        if self.ahead:
            parts.append(f"{self.ahead} {'wait' if self.ahead != 1 else 'waits'} ahead of this "
                         "one (each: its step budget at the speed measured for recent "
                         "trainings of its size; lessons that stop when solved end sooner)")
        if self.guessed:
            parts.append(f"{self.guessed} not measured yet, counted at the others' average")
        return "; ".join(parts) + "; this one starts when the first slot comes free after them"


def estimate_wait(capacity: int, running: list[float | None],
                  ahead: list[float | None]) -> WaitEstimate | None:
    """The wait of a job that is next after ``ahead`` (in queue order), with ``capacity``
    slots of which ``running`` holders will free theirs in so many seconds: each slot
    comes free at its holder's remaining time (now if free); each job ahead takes the
    first free slot and holds it for its expected time; this one gets the first slot
    free after them. Unknown times (None) count at the mean of the known ones; with
    nothing known at all the wait is unknown (None), unless a slot is free for it."""
    known = [x for x in [*running, *ahead] if x is not None]
    unknown = sum(1 for x in [*running, *ahead] if x is None)
    if unknown and not known:
        return None
    fill = sum(known) / len(known) if known else 0.0
    free = sorted(max(0.0, x if x is not None else fill) for x in running)
    free += [0.0] * max(0, capacity - len(free))
    # More holders than slots (the capacity was lowered): the surplus must end first.
    free = sorted(free)[len(free) - capacity:] if len(free) > capacity else free
    heapq.heapify(free)
    for d in ahead:
        t = heapq.heappop(free)
        heapq.heappush(free, t + max(0.0, d if d is not None else fill))
    return WaitEstimate(free[0], len(running), len(ahead), unknown, capacity)


# Per time step, a training step's cost is mostly the dispatch of a few calls per gate at
# the app's sizes (hidden ≤ 64, batch ≤ 64: README, "Why there is C"); beyond, arithmetic.
_GATES = {s.name: s.cost for s in archspec.SPECS}   # relative cost per time step


def work_per_step(config: TrainConfig) -> float:
    """A training step's relative cost: time steps × gates × size beyond 64 × 64."""
    size = max(1.0, config.batch_size * config.hidden_size / 4096)
    return config.seq_len * _GATES.get(config.arch, 4) * size


class Throughput:
    """Measured training speeds of this server: seconds per unit of
    :func:`work_per_step`, from the trainings that ran (the latest ``keep``), and the
    exact seconds per step of a configuration already seen."""

    def __init__(self, keep: int = 50):
        self._lock = threading.Lock()
        self._per_work: list[float] = []
        self._per_step: dict[TrainConfig, float] = {}
        self.keep = keep

    def observe(self, config: TrainConfig, steps_per_s: float | None) -> None:
        if not steps_per_s or not math.isfinite(steps_per_s) or steps_per_s <= 0:
            return
        with self._lock:
            self._per_step[config.replace(seed=0)] = 1.0 / steps_per_s
            self._per_work = (self._per_work + [1.0 / steps_per_s / work_per_step(config)])[
                -self.keep:]

    def seconds_per_step(self, config: TrainConfig) -> float | None:
        """Measured for this config (any seed), else scaled from the median of the others;
        None before any training was measured."""
        with self._lock:
            exact = self._per_step.get(config.replace(seed=0))
            if exact is not None:
                return exact
            if not self._per_work:
                return None
            per_work = sorted(self._per_work)[len(self._per_work) // 2]
        return per_work * work_per_step(config)


THROUGHPUT = Throughput()


def default_capacity() -> int:
    """Concurrent trainings per process: $RNNLAB_MAX_TRAININGS, else one per core."""
    return settings.get("RNNLAB_MAX_TRAININGS")


# ------------------------------------------------------------ live pages' redraw rate

#: How far (as a ratio) a live page's interval may drift from the one its load now asks
#: for before the page is rescheduled (a whole rerun): hysteresis against rerun storms.
REFRESH_TOLERANCE = 1.3


def live_refresh_s(live_pages: int, base_s: float, redraws_per_s: float | None = None) -> float:
    """Seconds between a live page's redraws when ``live_pages`` pages of this server draw
    a live training: ``base_s`` while the pages together redraw within the server's budget
    of ``redraws_per_s`` (default: $RNNLAB_LIVE_REDRAWS_PER_S) at that pace, else
    ``live_pages / redraws_per_s``, so that all of them together redraw about
    ``redraws_per_s`` times a second.

    Why a budget: each redraw of a live page (2,000 steps of loss curve, the heatmaps)
    costs the server 0.04–0.10 s of CPU under its GIL; at 20–100 pages each redrawing
    every second the fragment runs took 3–7 s of wall each, and a click waits for its
    page's run under way (BENCHMARKS.md, "A long live phase"). The default, 8 a second
    at ~0.06 s each, is about half a core of redraws."""
    if redraws_per_s is None:
        redraws_per_s = settings.get("RNNLAB_LIVE_REDRAWS_PER_S")
    return max(base_s, max(0, live_pages) / redraws_per_s)


def refresh_is_stale(current_s: float, wanted_s: float,
                     tolerance: float = REFRESH_TOLERANCE) -> bool:
    """Whether a page redrawing every ``current_s`` should be rescheduled to ``wanted_s``:
    only when they differ by more than the ratio ``tolerance`` either way, so that a
    page count moving by a few does not rerun every page."""
    return wanted_s > current_s * tolerance or wanted_s * tolerance < current_s

"""A sweep running on a background thread, for a UI to watch (no Streamlit here).

The thread calls :func:`core.sweeps.run_sweep`, which farms the runs out to worker
processes; finished rows arrive through ``on_result`` and are kept here for
snapshots. Sweeps are heavy (every core), so a server runs one at a time:
``SWEEP_SLOTS`` queues the others, visibly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pandas as pd

from core.jobs import Background, Slots
from core.sweeps import SweepSpec, results_frame, run_sweep

SWEEP_SLOTS = Slots(1)


@dataclass
class SweepJob(Background):
    thread_name = "rnnlab-sweep"

    spec: SweepSpec
    root: str | None = None
    workers: int | None = None
    slots: Slots | None = field(default_factory=lambda: SWEEP_SLOTS)
    state: str = "queued"  # queued, running, finished, stopped, failed
    done: int = 0
    total: int = 0
    error: str | None = None
    _rows: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self):
        self.total = len(self.spec.cells)

    @property
    def sweep_id(self) -> str:
        return self.spec.sweep_id

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

    def _main(self) -> None:
        acquired = False
        try:
            if self.slots is not None:
                acquired = self.slots.acquire(self, self._stop)
                if not acquired:
                    self.state = "stopped"
                    return
            self.state = "running"
            _, results = run_sweep(self.spec, backend="local", workers=self.workers,
                                   root=self.root, on_result=self._on_result,
                                   stop_event=self._stop, on_start=self._on_start)
            with self._lock:
                self._rows = results.to_dict("records")
            self.state = "stopped" if self._stop.is_set() else "finished"
        except Exception as e:  # noqa: BLE001 - shown to the user, never swallowed
            self.error = f"{type(e).__name__}: {e}"
            self.state = "failed"
        finally:
            if acquired:
                self.slots.release()

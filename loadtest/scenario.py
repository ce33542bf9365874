"""N simulated visitors doing the same thing at once, and what each of them saw.

:func:`run` opens ``sessions`` :class:`~loadtest.client.Session` s on one path (``{i}``
in it becomes the session's number: distinct configurations per visitor), optionally
sets widgets, presses a button in every session one right after the other, clicks a
toggle a few times while they wait (optional), and waits until each session shows a
text matching ``until``. Then it closes every session and returns the figures: per
session, and over sessions (median, 95th percentile, max), with the driver's own CPU
and memory. What the *server* spent is measured around this by the caller
(``loadtest.__main__``), from /proc.
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.client import Session, SessionError


@dataclass
class Scenario:
    path: str                      # "/train?seed={i}&..." ({i}: the session's number)
    sessions: int = 1
    press: str | None = None       # a button's label
    until: str | None = None       # a pattern; a session is done when a text matches it
    watch: tuple = ()              # more patterns to time
    set_values: tuple = ()         # (label, value) pairs set before the press
    open_timeout: float = 120.0
    finish_timeout: float = 900.0  # from the press
    ramp_s: float = 0.0            # seconds between two sessions' opening
    click: str | None = None       # a toggle's label, clicked while the sessions wait
    click_chart: str | None = None
    click_answer: str | None = None
    click_rounds: int = 0
    click_every_s: float = 3.0
    settle_s: float = 2.0          # kept open after the last session is done
    extra: dict = field(default_factory=dict)

    def path_for(self, i: int) -> str:
        return self.path.replace("{i}", str(i))

    def done(self, s: Session) -> bool:
        if self.until:
            return s.until_at is not None
        if self.press:
            return s.first_chart_at is not None
        return s.ready_at is not None


def spread(values) -> dict:
    """n, min, median, 95th percentile (nearest rank) and max of the values given
    (None left out), rounded to ms."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return {"n": 0, "min": None, "median": None, "p95": None, "max": None}
    return {"n": len(v), "min": round(v[0], 3), "median": round(statistics.median(v), 3),
            "p95": round(v[max(0, math.ceil(0.95 * len(v)) - 1)], 3), "max": round(v[-1], 3)}


class DriverMeter:
    """CPU seconds and resident memory of this process (the driver itself)."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.rss0 = self.peak = _rss_mb()
        self.cpu0 = _cpu_s()
        self.t0 = time.monotonic()
        self._task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, _rss_mb())
            await asyncio.sleep(self.interval)

    def start(self) -> DriverMeter:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def stop(self) -> dict:
        if self._task is not None:
            self._task.cancel()
        self.peak = max(self.peak, _rss_mb())
        wall = max(1e-9, time.monotonic() - self.t0)
        cpu = _cpu_s() - self.cpu0
        return {"driver_cpu_s": round(cpu, 2), "driver_cpu_cores": round(cpu / wall, 3),
                "driver_rss_mb_before": round(self.rss0, 1), "driver_rss_mb_peak": round(self.peak, 1)}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


async def _open(s: Session, sc: Scenario) -> None:
    await asyncio.sleep(s.index * sc.ramp_s)
    await s.open(sc.open_timeout)
    for label, value in sc.set_values:
        await s.set_and_wait(label, value, sc.open_timeout)


async def _clicker(s: Session, sc: Scenario) -> None:
    """Click ``sc.click`` ``sc.click_rounds`` times, ``sc.click_every_s`` apart, from the
    session's first chart on (a person looking at the live charts)."""
    await s.wait_for(lambda: s.first_chart_at is not None, sc.finish_timeout, "a first chart")
    for _ in range(sc.click_rounds):
        await asyncio.sleep(sc.click_every_s)
        await s.click(sc.click, timeout=CLICK_TIMEOUT_S)


CLICK_TIMEOUT_S = 30.0  # a click not answered by then counts as unanswered
PROGRESS_EVERY_S = 30.0


async def _progress(sessions: list[Session], sc: Scenario, log) -> None:
    """Every ``PROGRESS_EVERY_S``: how many sessions are done, and what the first one
    that is not shows."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        waiting = [s for s in sessions if not sc.done(s)]
        if not waiting:
            return
        log(f"[loadtest] {len(sessions) - len(waiting)}/{len(sessions)} done; waiting for "
            f"{[s.index for s in waiting][:20]}; session {waiting[0].index}: {waiting[0].describe(300)}")


async def run(base_url: str, sc: Scenario, *, before_press=None, after_press=None,
              log=print) -> tuple[dict, list[Session]]:
    """Run the scenario against ``base_url``; returns (figures, sessions), the sessions
    closed. ``before_press`` / ``after_press``: called (in a worker thread) right
    before the first press and right after the last (e.g. a browser page alongside)."""
    loop = asyncio.get_running_loop()
    meter = DriverMeter().start()
    sessions = [Session(base_url, sc.path_for(i), i, until=sc.until, watch=sc.watch,
                        click_chart=sc.click_chart, click_answer=sc.click_answer)
                for i in range(sc.sessions)]
    figures: dict = {"sessions_n": sc.sessions, "path": sc.path, "press": sc.press, "until": sc.until}
    t_open = loop.time()
    opened = await asyncio.gather(*(_open(s, sc) for s in sessions), return_exceptions=True)
    failed = {s.index: _why(r) for s, r in zip(sessions, opened) if isinstance(r, BaseException)}
    figures["open_all_s"] = round(loop.time() - t_open, 2)
    figures["open_failures"] = failed
    live = [s for s in sessions if s.index not in failed]
    log(f"[loadtest] {len(live)}/{sc.sessions} sessions open in {figures['open_all_s']} s"
        + (f"; failed: {dict(list(failed.items())[:3])}" if failed else ""))
    clickers: list[asyncio.Task] = []
    try:
        if sc.press:
            if before_press is not None:
                await asyncio.to_thread(before_press)
            t_press = loop.time()
            pressed = []
            for s in live:
                try:
                    await s.press(sc.press)
                    pressed.append(s)
                except SessionError as e:
                    failed[s.index] = _why(e)
            figures["press_all_s"] = round(loop.time() - t_press, 3)
            if after_press is not None:
                await asyncio.to_thread(after_press)
            log(f"[loadtest] {sc.press!r} pressed in {len(pressed)} sessions in "
                f"{figures['press_all_s']} s; waiting for "
                + (f"{sc.until!r}" if sc.until else "a first chart"))
            if sc.click and sc.click_rounds:
                clickers = [loop.create_task(_clicker(s, sc)) for s in pressed]
            clickers.append(loop.create_task(_progress(pressed, sc, log)))
            waits = await asyncio.gather(
                *(s.wait_for(lambda s=s: sc.done(s), sc.finish_timeout,
                             f"{sc.until!r}" if sc.until else "a first chart") for s in pressed),
                return_exceptions=True)
            for s, r in zip(pressed, waits):
                if isinstance(r, BaseException):
                    failed[s.index] = _why(r)
            figures["press_to_all_done_s"] = round(loop.time() - t_press, 2)
            log(f"[loadtest] {sum(sc.done(s) for s in pressed)}/{len(pressed)} sessions done "
                f"{figures['press_to_all_done_s']} s after the first press")
            if clickers:  # each session's clicks, to the last (they may go on after its end)
                await asyncio.wait(clickers, timeout=sc.click_rounds * (sc.click_every_s + CLICK_TIMEOUT_S))
        await asyncio.sleep(sc.settle_s)
    finally:
        for t in clickers:
            t.cancel()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        figures.update(meter.stop())
    figures.update(summarise(sessions, sc))
    figures.update(driver_costs(figures))
    figures["failures"] = {k: v for k, v in sorted(failed.items())}
    return figures, sessions


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:400]}"


def summarise(sessions: list[Session], sc: Scenario) -> dict:
    """Figures over the sessions (see README, "Load testing without browsers")."""
    per = [s.figures() for s in sessions]
    msgs = sum(p["msgs"] for p in per)
    out = {
        "per_session": per,
        "sessions_open": sum(1 for s in sessions if s.ready_at is not None),
        "sessions_pressed": sum(1 for s in sessions if s.press_at is not None),
        "sessions_with_chart": sum(1 for s in sessions if s.first_chart_at is not None),
        "sessions_done": sum(1 for s in sessions if s.press_at is not None and sc.done(s)),
        "open_s": spread(p["open_s"] for p in per),
        "run_start_s": spread(p["run_start_s"] for p in per),
        "first_delta_s": spread(p["first_delta_s"] for p in per),
        "first_chart_s": spread(p["first_chart_s"] for p in per),
        "until_s": spread(p["until_s"] for p in per),
        "watch_s": {w: spread(p["watch_s"].get(w) for p in per) for w in sc.watch},
        "sessions_watch_seen": {w: sum(1 for p in per if w in p["watch_s"]) for w in sc.watch},
        "new_charts_max": spread(p["new_charts_max"] for p in per),
        "clicks_s": spread(c for p in per for c in p["clicks_s"]),
        "clicks_unanswered": sum(1 for p in per for c in p["clicks_s"] if c is None),
        "msgs_per_session": spread(p["msgs"] for p in per),
        "kb_per_session": spread(p["bytes"] / 1024 for p in per),
        "kb_after_press_per_session": spread(p["bytes_after_press"] / 1024 for p in per),
        "msgs_total": msgs,
        "mb_total": round(sum(p["bytes"] for p in per) / 2**20, 2),
        "reruns_sent": sum(sum(p["sent"].values()) for p in per),
        "errors": sum(len(p["errors"]) for p in per),
        "client_errors": sum(len(p["client_errors"]) for p in per),
        "disconnects": sum(len(p["disconnects"]) for p in per),
        "sessions_with_errors": [p["session"] for p in per
                                 if p["errors"] or p["client_errors"] or p["disconnects"]],
    }
    return out


def driver_costs(figures: dict) -> dict:
    """The driver's own cost per simulated visitor and per message received."""
    n = max(1, figures["sessions_n"])
    return {"driver_cpu_ms_per_session": round(1000 * figures["driver_cpu_s"] / n, 1),
            "driver_cpu_us_per_msg": round(1e6 * figures["driver_cpu_s"] / max(1, figures["msgs_total"]), 1),
            "driver_mb_per_session": round((figures["driver_rss_mb_peak"]
                                            - figures["driver_rss_mb_before"]) / n, 2)}

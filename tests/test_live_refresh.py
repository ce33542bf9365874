"""A live page redraws less often when many pages of the server watch live trainings.

The interval (core.scheduling.live_refresh_s) keeps the server's redraws within its
budget, $RNNLAB_LIVE_REDRAWS_PER_S; the pages that count are the sessions the job
registry knows to watch a live job (core.jobs.JobRegistry.live_watchers); the page
says how often it updates while it is slowed (ui.live.live_note), with AppTest.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.jobs import JobRegistry
from core.runs import RunData
from core.scheduling import live_refresh_s, refresh_is_stale
from pagetest import page_path


def test_pages_redraw_every_second_until_they_exceed_the_budget_then_share_it():
    assert live_refresh_s(1, 1.0, 8.0) == 1.0
    assert live_refresh_s(8, 1.0, 8.0) == 1.0
    assert live_refresh_s(20, 1.0, 8.0) == 2.5
    assert live_refresh_s(50, 1.0, 8.0) == 6.25
    assert live_refresh_s(10, 2.0, 8.0) == 2.0     # a queued page's own pace is slower
    assert live_refresh_s(0, 1.0, 8.0) == 1.0


def test_the_budget_is_a_setting(monkeypatch):
    assert live_refresh_s(80, 1.0) == 10.0         # default: 8 redraws a second
    monkeypatch.setenv("RNNLAB_LIVE_REDRAWS_PER_S", "20")
    assert live_refresh_s(80, 1.0) == 4.0


def test_a_page_is_rescheduled_only_when_its_interval_is_off_by_more_than_30_percent():
    assert not refresh_is_stale(1.0, 1.25)
    assert refresh_is_stale(1.0, 1.4)
    assert not refresh_is_stale(6.25, 5.0)
    assert refresh_is_stale(6.25, 4.5)
    assert not refresh_is_stale(2.5, 2.5)


class FakeJob:
    """What the registry and the Train page read of a job: its runs, alive, busy, stop()."""

    def __init__(self, run_id: str, data: RunData | None = None):
        self.alive, self.owner, self.save_error, self.queue_position = True, None, None, None
        self.runs = [SimpleNamespace(run_id=run_id, data=data,
                                     config=data.config if data else None)]

    @property
    def busy(self):
        return self.alive

    @property
    def run_ids(self):
        return [r.run_id for r in self.runs]

    def stop(self):
        self.alive = False


def test_live_pages_are_the_sessions_watching_a_live_job_each_once():
    reg = JobRegistry(grace_s=60)
    a, b = FakeJob("ra"), FakeJob("rb")
    reg.register(a)
    reg.register(b)
    s1, s2, s3, s4 = (object() for _ in range(4))
    reg.watch(s1, "train", ["ra"])
    reg.watch(s1, "compare", ["rb"])              # one session, two live pages: one page drawn
    reg.watch(s2, "train", ["ra"])
    reg.watch(s3, "runs", ["r-finished"])         # a stored run: not live
    reg.watch(s4, "train", ["rb"])
    assert reg.live_watchers() == 3
    reg.forget(s2)                                # its session ended
    assert reg.live_watchers() == 2
    b.alive = False                               # s4's training ended
    assert reg.live_watchers() == 1
    a.alive = False
    assert reg.live_watchers() == 0


@pytest.fixture
def live_run():
    """A live (fake) job in the server's registry, its run running; unregistered after."""
    from ui.runtime import registry

    config = TrainConfig(seq_len=10, hidden_size=8, batch_size=16, steps=2000)
    job = FakeJob("r-live-refresh", RunData(config, {"status": "running"}))
    registry().register(job)
    others = []
    yield job, others
    job.alive = False
    for w in others:
        registry().forget(w)


def _status(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "Status:" in m.value)


def test_a_live_page_says_it_updates_less_often_while_fifty_pages_watch(runs_dir, live_run):
    from ui.runtime import registry

    job, others = live_run
    at = AppTest.from_file(page_path("train"), default_timeout=60)
    at.query_params["run"] = job.run_ids[0]
    at.run()
    assert not at.exception
    assert _status(at) == "**Status: running**"    # alone: every second, nothing to say
    others += [object() for _ in range(49)]
    for w in others:
        registry().watch(w, "train", job.run_ids)
    at.run()
    assert not at.exception
    assert _status(at) == "**Status: running** · updates every 6.2 s while 50 pages watch live"

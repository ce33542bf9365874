"""The server process's runtime singletons, for app.py and the pages.

The training machinery has three process-wide objects: the pool of spare training
processes (``core.worker.POOL``), the registry of live jobs (``core.jobs.GLOBAL_REGISTRY``)
and the training slots (``core.jobs.GLOBAL_SLOTS``, which every job takes by default).
app.py and the pages reach them only through the functions here (tests/test_architecture.py
checks), so what the app does with them is in one place:

* :func:`start_once`: app.py's once-per-server start (warm-up, a spare training
  process, the load test's trace when asked, ``gc.freeze``);
* :func:`live_job`: the job still training a run, if any (a reload finds it again);
* :func:`registry`: the job registry, for ui/state.py's per-session jobs: which session
  watches which run, one training per identical run (a Train press attaches to it),
  Stop on a shared run, and the delete rule (``registry().delete_refusal``); for
  ui/live.py, how many pages watch live trainings (``registry().live_watchers``).
"""

from __future__ import annotations

import gc

import streamlit as st

from core import settings
from core.jobs import GLOBAL_REGISTRY, JobRegistry, TrainingJob
from core.measured import load_shipped
from core.train import warm_up
from core.worker import POOL


@st.cache_resource(show_spinner=False)
def start_once() -> None:
    """Warm this process up so the first Train press does not wait for torch's imports,
    start a spare training process in the background, install the load test's trace
    when $RNNLAB_TRACE_CLICKS asks for it (ui/trace.py), then move everything imported
    so far (torch, pandas, Altair: millions of objects) out of the cyclic GC's reach
    (gc.freeze), so collections scan only what pages allocate. Once per server."""
    warm_up()
    POOL.prestart()
    if settings.get("RNNLAB_TRACE_CLICKS"):  # the load test only (tests/e2e/load.py)
        from ui import trace

        trace.install()
    gc.freeze()


def live_job(run_id: str | None) -> TrainingJob | None:
    """The job training ``run_id`` in this server, if it is still alive."""
    job = GLOBAL_REGISTRY.get(run_id) if run_id else None
    return job if job is not None and job.alive else None


def registry() -> JobRegistry:
    """The server's registry of live jobs and of who watches which run
    (see core.jobs.JobRegistry)."""
    return GLOBAL_REGISTRY


@st.cache_resource(show_spinner=False)
def shipped(name: str):
    """A sweep shipped with the app (core/measured/<name>), read once per server for every
    page that shows it (Sweep, Explain); raises core.sweeps.SweepError as load_shipped does."""
    return load_shipped(name)

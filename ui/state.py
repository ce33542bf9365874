"""Per-server and per-session resources.

* ``run_store()``: the run store (global; the store itself is thread-safe: one
  writer per run directory).
* ``session_jobs()``: this browser session's trainings, one per page. When the
  session ends, Streamlit calls ``on_release`` and the jobs are handed to the
  global registry, which stops them after a grace period unless a reload of the
  page claims them back (its URL carries ``run=<id>``).
* ``session_owner()``: whom this session's runs belong to (core.owners): the signed-in
  user of ``st.login``, else the token the browser keeps in the ``rnnlab_owner`` cookie
  (ui/owner.py sets it when the browser has none), kept on ``session_jobs()``;
  ``is_presenter()``: whether this session typed the presenter's key.
"""

from __future__ import annotations

import streamlit as st

from core import captions, settings
from core.config import ConfigError
from core.jobs import TrainingJob
from core.owners import visible
from core.runs import RunData, RunError, RunStore
from ui import owner
from ui.runtime import registry


@st.cache_resource(show_spinner=False)
def run_store() -> RunStore:
    return RunStore()


class SessionJobs:
    """This session's jobs by page name."""

    def __init__(self):
        self.jobs: dict[str, TrainingJob] = {}
        self.started = 0  # runs started by this session (a per-session cap)
        # Whom the session stands for (core.jobs.JobRegistry reads ``owner``): an owner id
        # (core.owners.owner_id), set by session_owner() on first use.
        self.owner: str | None = None
        self.cookie_to_set: str | None = None  # a new token the browser should keep

    def get(self, page: str) -> TrainingJob | None:
        return self.jobs.get(page)

    def set(self, page: str, job: TrainingJob) -> None:
        # The registry knows who watches what: the page's previous job stops only if no
        # other session watches it (core.jobs.JobRegistry.watch).
        registry().watch(self, page, job.run_ids)
        self.jobs[page] = job

    def release(self) -> None:
        registry().forget(self)  # jobs nobody else watches stop after the grace period


@st.cache_resource(scope="session", on_release=SessionJobs.release, show_spinner=False)
def session_jobs() -> SessionJobs:
    return SessionJobs()


def session_owner() -> str:
    """The owner id of this session's runs (core.owners), decided once per session
    (ui.owner.resolve_owner): the signed-in user, else the browser's cookie token, else a
    new token this session uses at once and asks the browser to keep."""
    return owner.resolve_owner(session_jobs())


def keep_owner_cookie() -> None:
    """app.py, every run: ask the browser to keep this session's new owner token."""
    owner.keep_owner_cookie(session_jobs())


def is_presenter() -> bool:
    """Whether this session typed the presenter's key (ui.owner.presenter_login)."""
    return owner.is_presenter()


def may_open(run_id: str) -> bool:
    """Whether this session may see a run (core.owners.visible; the presenter sees every
    run), from its live status while it trains (``shared`` reaches the disk at the next
    flush only), else from the store. A run that cannot be read is left to the loader."""
    if is_presenter():
        return True
    job = registry().get(run_id)
    status = next((r.data.status_copy() for r in job.runs if r.run_id == run_id),
                  None) if job is not None else None
    if status is None:
        try:
            status = run_store().read_status(run_id)
        except RunError:
            return True
    return visible(status, session_owner())


class LimitReached(Exception):
    """A per-session or per-server cap refuses a new training; the message says which."""


def max_stored_runs() -> int:
    """The cap on runs in the store ($RNNLAB_MAX_STORED_RUNS, default 500): trainings
    and uploads are refused beyond it so one visitor cannot fill the disk."""
    return settings.get("RNNLAB_MAX_STORED_RUNS")


def start_job(page: str, configs, lesson: bool = False) -> TrainingJob:
    """Start a training job for this session's ``page`` and remember it in the URL.
    Its runs are this session's owner's (``lesson``: lesson runs, core.owners).

    Raises LimitReached when this session has started too many runs
    ($RNNLAB_MAX_RUNS_PER_SESSION, default 50), its owner holds too many
    ($RNNLAB_MAX_RUNS_PER_OWNER, default 50) or the store is full
    ($RNNLAB_MAX_STORED_RUNS, default 500), so one visitor cannot fill the disk.
    """
    jobs = session_jobs()
    per_session = settings.get("RNNLAB_MAX_RUNS_PER_SESSION")
    if jobs.started + len(configs) > per_session:
        raise LimitReached(f"This session has started {jobs.started} runs, the limit on this "
                           f"server is {per_session}. Reload the page to start a new session.")
    me = session_owner()
    refusal = run_store().room_refusal(len(configs), me)
    if refusal:
        raise LimitReached(f"Not started: {refusal}.")
    # Trainings run in child processes ($RNNLAB_WORKER=thread keeps them in-process).
    job = TrainingJob(list(configs), store=run_store(), mode=settings.get("RNNLAB_WORKER"),
                      owner=me, lesson=lesson).start()
    jobs.started += len(configs)
    registry().register(job)
    session_jobs().set(page, job)
    ids = [r.run_id for r in job.runs if r.run_id]
    if ids:
        st.query_params["run"] = ",".join(ids)
    return job


def attached_runs(page: str, accept=None) -> tuple[TrainingJob | None, list[RunData], str | None]:
    """What the page should show: (live job or None, run data list, problem message).

    Order: this session's job; else the run ids in the URL — a live job in the
    registry (claimed back after a reload) or the saved runs from the store.
    ``accept(configs)``, if given, decides whether runs with these configs belong on
    the page (a lesson step shows only runs of its own settings); runs it refuses are
    not shown, and the problem message says why; so are another visitor's runs
    (core.owners.visible: a visitor opens their own runs and the shared ones).
    """
    job = session_jobs().get(page)
    url_ids = [i for i in st.query_params.get("run", "").split(",") if i]
    if job is not None and (not url_ids or url_ids == [r.run_id for r in job.runs]):
        if accept is None or accept([r.config for r in job.runs]):
            return job, [r.data for r in job.runs], None
    if not url_ids:
        return None, [], None
    live = registry().get(url_ids[0])
    if live is not None and accept is not None and not accept([r.config for r in live.runs]):
        return None, [], _refused(url_ids)
    hidden = [i for i in url_ids if not may_open(i)]
    if hidden:
        return None, [], _not_yours(hidden)
    if live is not None:
        session_jobs().set(page, live)  # watched, hence claimed back from a release
        return live, [r.data for r in live.runs], None
    registry().watch(session_jobs(), page, url_ids)  # nobody deletes a run under this page
    datas, problems = [], []
    for run_id in url_ids:
        try:
            datas.append(load_run(run_id))
        except RunError as e:
            problems.append(str(e))
    if datas and accept is not None and not accept([d.config for d in datas]):
        return None, [], _refused(url_ids)
    return None, datas, "; ".join(problems) or None


def _not_yours(run_ids: list[str]) -> str:
    s = "s" if len(run_ids) > 1 else ""
    return (f"The link names run{s} {', '.join(run_ids)} of another visitor: not shown "
            "(each visitor sees their own runs and the shared ones).")


def _refused(run_ids: list[str]) -> str:
    return (f"The link names run{'s' if len(run_ids) > 1 else ''} {', '.join(run_ids)}, trained "
            "with other settings than this step's: not shown here (the Runs page shows any run).")


def results_label(datas: list[RunData], wanted: list | None = None) -> bool:
    """Say which settings produced the results on the page (one caption line), and, when
    ``wanted`` (the configs the page's settings describe now) differs from them, mark
    them clearly as from earlier settings, naming what changed. Returns True when stale."""
    if not datas:
        return False
    st.caption(captions.runs_line([(d.status_copy().get("run_id"), d.config) for d in datas]),
               help="Every chart and sentence below comes from these runs' own records.")
    if wanted is None:
        return False
    shown = [d.config for d in datas]
    if len(shown) != len(wanted):
        was, now = (", ".join(c.label() for c in cs) for cs in (shown, wanted))
        changes = [f"models: {was} → {now}"]
    else:
        changes = list(dict.fromkeys(
            change for a, b in zip(shown, wanted) for change in captions.config_changes(a, b)))
    if not changes:
        return False
    st.warning("**From earlier settings.** The results below were produced by the run named "
               "above, not by the settings now chosen (" + "; ".join(changes) + "). Press the "
               "button to train the new settings.", icon=":material/history:")
    return True


def load_run(run_id: str) -> RunData:
    """A saved run, read from disk once per version of its status file."""
    store = run_store()
    try:
        stamp = (store.path(run_id) / "status.json").stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _load_cached(str(store.root), run_id, stamp)


@st.cache_resource(max_entries=32, show_spinner=False)
def _load_cached(root: str, run_id: str, stamp: int) -> RunData:
    return RunStore(root).load(run_id)


def start_stop_buttons(page: str, job: TrainingJob | None, datas: list[RunData], make_configs,
                       *, label: str = "Train", can_start: bool = True,
                       widths=(1, 1, 6), label_results: bool = True, lesson: bool = False,
                       ) -> tuple[TrainingJob | None, list[RunData], bool]:
    """The start and Stop buttons of a training page (Train, Compare, the lesson).

    ``make_configs()`` gives the configurations to train when the start button is
    pressed (``lesson``: the lesson's fixed settings, whose runs every visitor is handed:
    core.owners). Returns (job, datas, started): a refused start (a limit reached) is
    shown as an error and keeps what the page had. Below the buttons, unless
    ``label_results`` is False, :func:`results_label` names the runs shown and their
    settings, and marks them when the page's settings have changed since.
    """
    running = job is not None and job.busy
    c1, c2, _ = st.columns(list(widths))
    started = False
    if c1.button(label, type="primary", disabled=running or not can_start):
        try:
            job, datas, how = train_or_attach(page, make_configs(), lesson=lesson)
            started = True
            if how in ATTACH_NOTES:
                st.info(ATTACH_NOTES[how])
        except LimitReached as e:
            st.error(str(e))
    if c2.button("Stop", disabled=not (job is not None and job.busy)):
        if registry().stop_or_leave(job, session_jobs(), page) == "left":
            session_jobs().jobs.pop(page, None)
            st.query_params.pop("run", None)
            st.info(LEFT_NOTE)
            job, datas = None, []
        else:
            job.join(timeout=5)
    if label_results:
        try:
            wanted = list(make_configs())
        except ConfigError:
            wanted = None
        results_label(datas, wanted)
    return job, datas, started


# A Train press whose identical run exists (core.jobs.JobRegistry.train_or_attach).
ATTACH_NOTES = {
    "attached": "This exact run is already training for another session: you are watching it "
                "live (training is deterministic, so one training serves everyone who asks "
                "for the same run).",
    "opened": "This exact run has been trained already (same settings, same code): here is "
              "the saved run; training it again would give the same numbers, bit for bit.",
}
LEFT_NOTE = ("Other sessions are watching this run, so it goes on training for them; this "
             "page has left it. Press Train to watch it again.")


def train_or_attach(page: str, configs, lesson: bool = False,
                    ) -> tuple[TrainingJob | None, list[RunData], str]:
    """A Train press: (job or None, run data, how), ``how`` being "started",
    "attached" (the identical run is training: watch it live) or "opened" (it is
    finished: the saved run). Only "started" counts toward this session's caps
    (start_job raises LimitReached)."""
    configs = list(configs)
    jobs = session_jobs()
    session_owner()  # the registry reads jobs.owner: whom this press is for
    got = registry().train_or_attach(configs, run_store(), jobs, page,
                                     lambda identity: start_job(page, configs, lesson))
    if got.job is not None:
        jobs.jobs[page] = got.job
        datas = [r.data for r in got.job.runs]
    else:
        jobs.jobs.pop(page, None)
        datas = [load_run(run_id) for run_id in got.run_ids]
    st.query_params["run"] = ",".join(got.run_ids)
    return got.job, datas, got.how


def delete_refusal(run_id: str) -> str | None:
    """Why this session may not delete (or rename) ``run_id``, or None when it may: the
    run is training, another session watches it, or it is not this session's owner's
    (shared, a lesson run, another visitor's, or without owner), unless the session is
    the presenter's. The Runs page calls this before deleting and shows the reason
    (core.jobs.JobRegistry.delete_refusal)."""
    session_owner()
    return registry().delete_refusal(run_id, session_jobs(), run_store(),
                                     presenter=is_presenter())


def delete_run(run_id: str) -> None:
    """Delete ``run_id`` for this session; raises RunError saying why when it may not
    (:func:`delete_refusal`, then the store's own check: core.runs.RunStore.delete)."""
    refusal = delete_refusal(run_id)
    if refusal:
        raise RunError(f"run {run_id!r} cannot be deleted: {refusal}")
    run_store().delete(run_id, force=is_presenter(), by=session_owner())

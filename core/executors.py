"""Sweep backends: where the runs of a sweep execute.

Every backend is a :class:`concurrent.futures.Executor` (``submit`` returns a
``concurrent.futures.Future``), so :func:`core.sweeps.run_sweep` has one code path
and collects results with ``concurrent.futures.wait``/``as_completed`` as each
run finishes, whichever backend ran it.

* ``local`` (default): joblib's loky reusable process pool, one worker per core.
  Each task sets ONE torch thread (:func:`prepare_worker`): with torch's default
  of one thread per core in every worker, a pool oversubscribes the cores and
  runs 4-5x slower. The pool is reused between sweeps and stops its idle workers
  after ``idle_timeout`` seconds. Note that loky keeps one reusable pool *per
  thread*: sweeps started from the same thread share warm workers.
* ``dask``: an existing Dask cluster (``scheduler="tcp://host:8786"`` or the
  ``DASK_SCHEDULER_ADDRESS`` environment variable) or, without either, a
  LocalCluster of ``workers`` single-threaded worker processes. Dask is optional
  (``requirements-dask.txt``) and imported only here, only when chosen. The
  workers must be able to import this project (``core.sweeps``): start a foreign
  cluster's workers from the project directory or with it on ``PYTHONPATH``.

Pitfalls handled here:

* Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (config
  ``distributed.nanny.pre-spawn-environ``), which makes glibc return memory to
  the OS so eagerly that torch training ran 2-2.5x slower. A LocalCluster we
  start is created with that variable removed; on a foreign cluster each task
  resets the thresholds itself at start (:func:`reset_malloc_thresholds`).
* Streamlit's ``st.cache_resource`` refuses a dask ``Client`` or ``LocalCluster``
  (they are awaitable), so a page caches a :class:`DaskBackend`: a plain object
  holding ``.executor``, ``.client``, ``.cluster``, with ``close()``.
* The task function must live in an importable module (``core.sweeps.run.run_cell``),
  never in a page or ``__main__``, so that workers can unpickle it by reference.
* The nanny starts workers with multiprocessing's *spawn*, which re-runs the
  parent's ``__main__.__file__`` in the child. Streamlit (and its ``AppTest``)
  installs the page being run as ``sys.modules["__main__"]`` and leaves it there,
  so every worker re-ran a page script, crashed outside a session and the
  cluster failed with "Nanny failed to start". A LocalCluster is therefore
  started with a bare ``__main__`` (:func:`_spawn_safe_main`). Loky's processes
  never re-run ``__main__``.

Why not Ray: its documented pitfalls for this use: ``ray.init()`` called from a
Streamlit script thread has taken the whole server down, and it starts a
heavyweight runtime of its own (head processes, shared-memory object store)
for what is a few dozen CPU-bound runs. Loky covers one machine and Dask covers
clusters, both behind the standard Executor API.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import ctypes.util
import logging
import os
import platform
import sys
import threading
import types
import weakref
from pathlib import Path

BACKENDS = ("local", "dask")
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
# Keep the local pool's workers warm for this long between sweeps (seconds).
LOCAL_IDLE_TIMEOUT = 120

# glibc mallopt parameters (malloc.h) and the values restored on dask workers:
# roughly what glibc's dynamic thresholds settle to for a process allocating
# multi-megabyte tensors, so freed tensors are reused instead of unmapped.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 64 << 20
MMAP_THRESHOLD = 32 << 20
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")

_worker_lock = threading.Lock()
_malloc_reset_done = False


class BackendError(RuntimeError):
    """A backend cannot be created or used; the message says why and what to do."""


def default_workers() -> int:
    """The number of cores this process may use (affinity/cgroup aware)."""
    try:
        from loky import cpu_count

        return max(1, int(cpu_count()))
    except Exception:  # noqa: BLE001 - loky missing or odd platform
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)


def reset_malloc_thresholds(force: bool = False) -> bool:
    """Undo an inherited tiny ``MALLOC_TRIM_THRESHOLD_`` (Dask's worker default).

    Setting any malloc threshold through the environment turns off glibc's
    dynamic thresholds, so every freed tensor above 128 KiB is unmapped and the
    next allocation page-faults it back in. This sets generous static
    thresholds with ``mallopt``. Does nothing (returns False) unless one of the
    ``MALLOC_*_`` variables is set (or ``force``), or off glibc. Once per process.
    """
    global _malloc_reset_done
    with _worker_lock:
        if _malloc_reset_done:
            return True
        if not force and not any(os.environ.get(k) for k in _MALLOC_ENV):
            return False
        if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
            return False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            ok = (libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1) and ok
        except (OSError, AttributeError):
            return False
        _malloc_reset_done = ok
        return ok


def prepare_worker() -> None:
    """Run at the start of every sweep task, in the worker process.

    One torch thread per worker process (the pool supplies the parallelism), and
    sane malloc thresholds on workers that inherited Dask's trimming setting.
    """
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    reset_malloc_thresholds()
    # The first optimiser a process builds imports torch._dynamo (seconds): do it
    # here, so a run's wall time measures training, not the worker's warm-up.
    try:
        import torch._dynamo
    except ImportError:  # pragma: no cover
        pass


class Backend(cf.Executor):
    """Executor-shaped base: ``submit``, ``map`` (inherited), ``shutdown``, ``abort``.

    Use as a context manager or call :meth:`close`. ``name`` is the backend
    name, ``workers`` the number of runs that can execute at once (None when a
    foreign cluster decides), ``description`` a one-line human summary.
    """

    name = "base"
    workers: int | None = None
    description = ""

    def __init__(self):
        self._futures: weakref.WeakSet[cf.Future] = weakref.WeakSet()
        self._closed = False

    def _submit(self, fn, /, *args, **kwargs) -> cf.Future:
        raise NotImplementedError

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        if self._closed:
            raise RuntimeError(f"the {self.name} backend has been shut down")
        future = self._submit(fn, *args, **kwargs)
        self._futures.add(future)
        return future

    def abort(self) -> None:
        """Cancel every submitted run that has not finished, as promptly as possible."""
        for f in list(self._futures):
            f.cancel()

    def close(self) -> None:
        self.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class LocalBackend(Backend):
    """loky's reusable process pool on this machine, ``workers`` processes."""

    name = "local"

    def __init__(self, workers: int | None = None, idle_timeout: float = LOCAL_IDLE_TIMEOUT):
        super().__init__()
        try:
            import loky
        except ImportError as e:  # pragma: no cover - loky is in requirements.txt
            raise BackendError("the local backend needs loky: pip install -r requirements.txt") from e
        if workers is not None and int(workers) < 1:
            raise BackendError(f"workers must be at least 1, got {workers}")
        self.workers = int(workers) if workers else default_workers()
        self.executor = loky.get_reusable_executor(max_workers=self.workers, timeout=idle_timeout)
        self.description = f"local: {self.workers} worker process(es), 1 torch thread each"

    def _submit(self, fn, /, *args, **kwargs) -> cf.Future:
        return self.executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Release this handle; the reusable pool itself stays warm for the next sweep
        (loky stops idle workers after ``idle_timeout``)."""
        if cancel_futures:
            for f in list(self._futures):
                f.cancel()
        if wait:
            cf.wait(list(self._futures))
        self._closed = True

    def abort(self) -> None:
        """Cancel queued runs; if some are still running, kill the pool's workers
        (loky starts a fresh pool on the next sweep)."""
        super().abort()
        if any(f.running() for f in list(self._futures)):
            self.executor.shutdown(wait=False, kill_workers=True)


@contextlib.contextmanager
def _spawn_safe_main():
    """Run the block with ``sys.modules["__main__"]`` replaced by an empty module
    when the current one is a script file (a Streamlit page, say), so processes
    spawned meanwhile do not re-run that script; the original is put back after."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__file__", None) is None or \
            getattr(getattr(main, "__spec__", None), "name", None):
        yield  # interactive, or run with -m (spawn imports it by name, guarded)
        return
    bare = sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        # Only undo our own swap: Streamlit may have installed a newer page meanwhile.
        if sys.modules.get("__main__") is bare:
            sys.modules["__main__"] = main


def import_dask():
    """(dask, distributed), or a BackendError saying how to install them."""
    try:
        import dask
        import distributed
    except ImportError as e:
        raise BackendError(
            "the dask backend needs dask and distributed: pip install -r requirements-dask.txt"
        ) from e
    return dask, distributed


def connect(address: str, timeout: str = "10s", hint: str = ""):
    """A ``distributed.Client`` of the scheduler at ``address`` (not the default client),
    or a BackendError saying how to start one."""
    _, distributed = import_dask()
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise BackendError(
            f"cannot reach the Dask scheduler at {address}: {e}. Start one with "
            "`dask scheduler` and `dask worker ADDRESS` (from the project directory)"
            + (f", {hint}" if hint else "")
        ) from e


def local_cluster(workers: int):
    """A LocalCluster of ``workers`` single-threaded worker processes on 127.0.0.1, started
    with the pitfalls above handled: no nanny ``MALLOC_TRIM_THRESHOLD_`` and a bare
    ``__main__`` while the workers spawn. (A nanny that starts a dead worker again later
    spawns it with whatever ``__main__`` is then: core.dask_training therefore runs the
    app's LocalCluster in a process of its own.)"""
    dask, distributed = import_dask()
    # Remove the nanny's MALLOC_TRIM_THRESHOLD_ (torch ran 2-2.5x slower with it).
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_":
                          None}), _spawn_safe_main():
        return distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            # Its HTTP server (dashboard if bokeh is installed) on a free
            # local port: the default 8787 may be taken by another cluster.
            dashboard_address=":0", silence_logs=logging.ERROR,
        )


# The project's folder (holding core/): what a Dask cluster needs on its PYTHONPATH.
PROJECT_DIR = Path(__file__).resolve().parents[1]


def cluster_import_error(exc: BaseException) -> str | None:
    """When ``exc`` says the cluster could not import this project, the sentence that
    says what to do; else None. Dask unpickles a task's function (by reference to its
    module in ``core``) on the scheduler as well as on the workers: every process of the
    cluster must import ``core``."""
    text = str(exc)
    # Client.run wraps the worker's ModuleNotFoundError in a bare Exception.
    if (isinstance(exc, ImportError) and "core" in text) or "No module named 'core" in text or (
            "deserializ" in text and "environment" in text):
        first = text.splitlines()[0] if text else ""
        return (f"the cluster cannot import this project ({type(exc).__name__}: {first}): "
                "start `dask scheduler` and `dask worker` with the project on PYTHONPATH "
                f"(e.g. PYTHONPATH={PROJECT_DIR})")
    return None


class DaskBackend(Backend):
    """A Dask cluster behind ``client.get_executor()``: a plain object, so a Streamlit
    page may keep it in ``st.cache_resource``.

    ``scheduler``: address of a running scheduler (else ``DASK_SCHEDULER_ADDRESS``,
    else a new LocalCluster of ``workers`` single-threaded processes, owned and
    closed by this backend).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 connect_timeout: str = "10s"):
        super().__init__()
        dask, distributed = import_dask()
        address = scheduler or os.environ.get(SCHEDULER_ENV) or dask.config.get(
            "scheduler-address", None)
        self.cluster = None
        if address:
            self.client = connect(address, connect_timeout, hint=(
                "or leave out --scheduler for a local cluster"))
            self.workers = None
            self.description = f"dask: scheduler {address}"
        else:
            if workers is not None and int(workers) < 1:
                raise BackendError(f"workers must be at least 1, got {workers}")
            n = int(workers) if workers else default_workers()
            self.cluster = local_cluster(n)
            self.client = distributed.Client(self.cluster, set_as_default=False)
            self.workers = n
            self.description = f"dask: LocalCluster of {n} single-threaded worker process(es)"
        # pure=False: every submission is a real run, never deduplicated by key.
        self.executor = self.client.get_executor(pure=False)

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def _submit(self, fn, /, *args, **kwargs) -> cf.Future:
        return self.executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop using the cluster: close the client and, if we started it, the LocalCluster."""
        if self._closed:
            return
        self._closed = True
        try:
            if cancel_futures:
                for f in list(self._futures):
                    f.cancel()
            self.executor.shutdown(wait=wait and not cancel_futures)
        finally:
            try:
                self.client.close()
            finally:
                if self.cluster is not None:
                    self.cluster.close()

    def abort(self) -> None:
        """Cancel every unfinished run. A run already executing on a foreign cluster's
        worker finishes there (Dask cannot interrupt a task) but its result is dropped."""
        super().abort()


def make_executor(backend: str = "local", workers: int | None = None,
                  scheduler: str | None = None) -> Backend:
    """A backend by name: ``local`` (loky) or ``dask``; see the module docstring."""
    if backend == "local":
        if scheduler:
            raise BackendError("--scheduler applies to the dask backend only")
        return LocalBackend(workers)
    if backend == "dask":
        return DaskBackend(scheduler, workers)
    raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")

"""Training in a child process, so a busy web page cannot slow it down.

Why a process: in one Python process, the page's redraws (pandas, Altair,
protobuf) and the trainer's Python loop take turns holding the GIL; with a page
open the trainer ran several times slower. A child process has its own
interpreter and core.

Protocol (child = ``python -m core.worker``), length-prefixed frames over pipes:

* parent → child, on stdin: one JSON job ``{"configs": [config dict, ...]}``,
  then ``{"stop": true}`` whenever the user presses Stop. EOF on stdin (the
  parent died or closed it) also stops the training and ends the child.
* child → parent, on stdout: pickled tuples ``("records", [(i, Record), ...])``
  (records batched for up to ``BATCH_S`` seconds: one frame, one wake-up of the
  server's relay thread, instead of one per training step),
  ``("model", i, {name: tensor})``, and ``("done",)`` last. These come from our
  own child process; nothing a user supplies is ever unpickled.

Children are started ahead of time (:class:`WorkerPool`): a spare one has already
imported torch, so pressing Train starts training at once.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

from core import settings

_HEADER = struct.Struct(">I")
BATCH_S = 0.2  # records wait at most this long in the child before they are sent
ROOT = Path(__file__).resolve().parents[1]


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    """One frame, or None at end of stream (also for a truncated frame)."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (n,) = _HEADER.unpack(head)
    body = stream.read(n)
    return body if len(body) == n else None


# ---------------------------------------------------------------- child side


class Batcher:
    """Records grouped into batches for the trip to the server: ``add(i, record)`` (the
    ``emit`` of core.train.run_lockstep), ``send(batch)`` called with a list of
    ``(i, record)``. Steps wait up to ``every_s`` seconds; probes, evaluations and ends go
    out at once (they change the charts) unless ``at_once`` is False: the Dask training
    task (core.dask_training) lets them wait too, since every batch costs the server
    about a millisecond there (BENCHMARKS.md, "Trainings on a Dask cluster") and a page
    redraws once a second."""

    def __init__(self, send, every_s: float = BATCH_S, at_once: bool = True):
        from core.train import StepRecord

        self.send, self.every_s, self._step = send, every_s, StepRecord
        self.at_once = at_once
        self.batch: list = []
        self.last_sent = time.monotonic()

    def add(self, i: int, record) -> None:
        self.batch.append((i, record))
        if (self.at_once and not isinstance(record, self._step)) or \
                time.monotonic() - self.last_sent >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self.send(batch)
        self.last_sent = time.monotonic()


def _child_main() -> int:
    import torch

    from core.config import TrainConfig
    from core.train import Trainer, run_lockstep, warm_up

    torch.set_num_threads(1)
    try:
        # Training yields the CPU to the web server: pages stay responsive under load.
        os.nice(settings.get("RNNLAB_WORKER_NICE"))
    except OSError:
        pass
    warm_up()
    stdin, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the record stream
    frame = read_frame(stdin)
    if frame is None:
        return 0  # a spare that was never used
    job = json.loads(frame)
    trainers = [Trainer(TrainConfig.from_dict(d)) for d in job["configs"]]

    def watch_stdin():
        while True:
            msg = read_frame(stdin)
            if msg is None or json.loads(msg).get("stop"):
                for t in trainers:
                    t.stop()
                if msg is None:
                    return

    threading.Thread(target=watch_stdin, name="rnnlab-worker-stdin", daemon=True).start()

    batcher = Batcher(lambda batch: write_frame(
        out, pickle.dumps(("records", batch), protocol=pickle.HIGHEST_PROTOCOL)))
    try:
        run_lockstep(trainers, batcher.add)
        batcher.flush()
        for i, t in enumerate(trainers):
            state = {k: v.detach().contiguous() for k, v in t.model.state_dict().items()}
            write_frame(out, pickle.dumps(("model", i, state), protocol=pickle.HIGHEST_PROTOCOL))
        write_frame(out, pickle.dumps(("done",)))
    except BrokenPipeError:
        return 1  # the parent is gone: nobody to train for
    return 0


# ---------------------------------------------------------------- parent side


class Worker:
    """A started child process; ``send_job`` once, then read ``messages()``."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.worker"], cwd=str(ROOT), env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self._lock = threading.Lock()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._drain_stderr, name="rnnlab-worker-stderr", daemon=True).start()

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr = (self._stderr + [line])[-20:]

    @property
    def stderr_tail(self) -> str:
        return b"".join(self._stderr).decode(errors="replace").strip()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _send(self, obj: dict) -> None:
        with self._lock:
            try:
                write_frame(self.proc.stdin, json.dumps(obj).encode())
            except (BrokenPipeError, ValueError, OSError):
                pass  # the child has ended; reading its output tells why

    def send_job(self, configs: list[dict]) -> None:
        self._send({"configs": configs})

    def stop(self) -> None:
        self._send({"stop": True})

    def messages(self):
        """Yield the child's messages until it says done or its output ends."""
        while True:
            frame = read_frame(self.proc.stdout)
            if frame is None:
                return
            msg = pickle.loads(frame)  # our own child's output, never user input
            yield msg
            if msg[0] == "done":
                return

    def close(self, timeout: float = 10.0) -> int | None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class WorkerPool:
    """Keeps ``spares`` child processes started and idle, so a job starts at once."""

    def __init__(self, spares: int = 1, refill_delay_s: float = 3.0):
        self.spares, self.refill_delay_s = spares, refill_delay_s
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._starting = 0
        atexit.register(self.shutdown)

    def acquire(self) -> Worker:
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.alive():
                    break
            else:
                w = None
        # Start the next spare a little later: its start-up (importing torch, ~1-2 s of
        # CPU) would otherwise compete, on a 2-core server, with the training just
        # started and with the page drawing its first chart.
        timer = threading.Timer(self.refill_delay_s, self._refill)
        timer.name, timer.daemon = "rnnlab-pool-refill", True
        timer.start()
        return w or Worker()

    def _refill(self) -> None:
        if settings.get("RNNLAB_DASK_SCHEDULER"):
            return  # the app's trainings run on the cluster (core.dask_training): no spares
        # Reserve the places under the lock, so two refills at once start one spare, not two.
        with self._lock:
            missing = max(0, self.spares - len(self._idle) - self._starting)
            self._starting += missing
        for _ in range(missing):
            try:
                w = Worker()
            finally:
                with self._lock:
                    self._starting -= 1
            with self._lock:
                self._idle.append(w)

    def prestart(self) -> None:
        """Start the spares now (e.g. when the server starts)."""
        self._refill()

    def shutdown(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for w in idle:
            w.close(timeout=2)


POOL = WorkerPool(spares=settings.get("RNNLAB_SPARE_WORKERS"))


def _exit_child(code: int) -> None:
    """End the child without the interpreter's shutdown: the stdin watcher is a daemon
    thread blocked in a read of stdin, and finalising the interpreter under it aborted
    the child ("could not acquire lock for <stdin> at interpreter shutdown", SIGABRT)
    whenever the parent had not yet closed its end. Everything it owes the parent has
    been written and flushed by then."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit_child(_child_main())

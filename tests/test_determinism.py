"""Training is deterministic: the guarantee that lets the app train an identical run once.

Two trainings of one config (or one lockstep group) give identical records, bit for bit:
every training step's loss, metric and gradient norm, every evaluation, every probe's
gradient table, gate table and summary, the end record, and the final weights. Only
the wall-clock times differ, and they are left out. Checked for lstm, gru, rnn_tanh
and a lockstep group of the three, with the LSTM's C loops and with its torch loops
(RNNLAB_NATIVE=0), in this process, in threads side by side (the server's thread mode),
in a training child process (how the app trains: core.worker) and through the run store
(a finished run is opened from disk). And the identity (core.identity) changes with
the code: a changed statement in the training code changes it, a comment does not.
"""

from __future__ import annotations

import shutil
import struct
import threading

import pandas as pd
import pytest

from core import identity, native
from core.config import TrainConfig
from core.train import run_lockstep, Trainer

BASE = TrainConfig(seq_len=12, hidden_size=8, batch_size=16, steps=40, probe_every=5,
                   eval_every=10, eval_size=64, lr=0.01, clip=1.0)
CASES = {
    "lstm": [BASE.replace(arch="lstm")],
    "gru": [BASE.replace(arch="gru")],
    "rnn_tanh": [BASE.replace(arch="rnn_tanh")],
    "lockstep group": [BASE.replace(arch=a) for a in ("rnn_tanh", "lstm", "gru")],
}


# ---------------------------------------------------------------- bit-exact fingerprints


def _bits(value):
    """A value as exact bytes (floats by their IEEE bits: NaN == NaN, 0.0 != -0.0)."""
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, pd.DataFrame):
        return tuple(
            (c, str(value[c].dtype),
             value[c].to_numpy().tobytes() if value[c].dtype.kind in "fiub"
             else repr(value[c].tolist()))
            for c in value.columns)
    if isinstance(value, dict):
        return tuple(sorted((k, _bits(v)) for k, v in value.items()))
    return value


def fingerprint(record) -> tuple:
    """Everything a record holds except its wall-clock time."""
    return (record.kind,) + tuple((k, _bits(v)) for k, v in vars(record).items()
                                  if k != "wall_s")


def weights_bits(state: dict) -> tuple:
    return tuple((k, str(v.dtype), tuple(v.shape), v.detach().contiguous().numpy().tobytes())
                 for k, v in sorted(state.items()))


def assert_identical(a, b) -> None:
    """Same records and weights; on a difference, name the first record that differs."""
    (recs_a, w_a), (recs_b, w_b) = a, b
    assert len(recs_a) == len(recs_b)
    for i, (ra, rb) in enumerate(zip(recs_a, recs_b)):
        assert len(ra) == len(rb), f"run {i}: {len(ra)} records against {len(rb)}"
        for ka, kb in zip(ra, rb):
            if ka != kb:
                fields = [x[0] for x, y in zip(ka[1:], kb[1:]) if x != y]
                pytest.fail(f"run {i}: first difference at a {ka[0]} record, step "
                            f"{dict(ka[1:]).get('step')}, in {fields}")
    assert w_a == w_b, "final weights differ"


def train_here(configs) -> tuple[list[list[tuple]], list[tuple]]:
    trainers = [Trainer(c) for c in configs]
    records: list[list[tuple]] = [[] for _ in configs]
    run_lockstep(trainers, lambda i, r: records[i].append(fingerprint(r)))
    return records, [weights_bits(t.model.state_dict()) for t in trainers]


def start_in_child(configs):
    """A training child process (core.worker, as the app trains) with the job sent."""
    from core.worker import Worker

    worker = Worker()
    worker.send_job([c.to_dict() for c in configs])
    return worker


def collect_from_child(worker, n: int):
    records: list[list[tuple]] = [[] for _ in range(n)]
    weights: list = [None] * n
    for msg in worker.messages():
        if msg[0] == "records":
            for i, r in msg[1]:
                records[i].append(fingerprint(r))
        elif msg[0] == "model":
            weights[msg[1]] = weights_bits(msg[2])
    assert worker.close() == 0, worker.stderr_tail
    return records, weights


@pytest.fixture(params=["C loops", "torch loops"], scope="module")
def loops(request):
    """The LSTM's loops in C (skipped where they cannot be built) or as torch calls."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RNNLAB_NATIVE", "1" if request.param == "C loops" else "0")
    native.reset()
    if request.param == "C loops" and native.lstm_kernels() is None:
        mp.undo()
        native.reset()
        pytest.skip(f"no C loops here: {native.status()}")
    yield request.param
    mp.undo()
    native.reset()


@pytest.fixture(scope="module")
def reference(loops):
    """Each case trained once in this process (under ``loops``)."""
    return {name: train_here(cfgs) for name, cfgs in CASES.items()}


@pytest.fixture(scope="module")
def from_children(loops):
    """Each case trained in a child process of its own, all started at once."""
    workers = {name: start_in_child(cfgs) for name, cfgs in CASES.items()}
    return {name: collect_from_child(w, len(CASES[name])) for name, w in workers.items()}


# ---------------------------------------------------------------- the guarantee


@pytest.mark.parametrize("case", list(CASES))
def test_two_trainings_of_one_config_give_identical_records(case, loops, reference):
    assert_identical(train_here(CASES[case]), reference[case])


@pytest.mark.parametrize("case", list(CASES))
def test_a_training_process_gives_the_records_of_this_process(case, loops, reference,
                                                              from_children):
    assert_identical(from_children[case], reference[case])


def test_trainings_side_by_side_in_threads_give_the_records_of_one_alone(loops, reference):
    """The server's thread mode: trainings on threads at once share torch's globals."""
    out: dict = {}
    threads = [threading.Thread(target=lambda n=name, k=k: out.__setitem__((n, k), train_here(CASES[n])))
               for name in ("lstm", "gru", "lockstep group") for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for (name, _), result in sorted(out.items()):
        assert_identical(result, reference[name])
    assert len(out) == len(threads)


def test_a_group_member_trains_as_it_would_alone(loops, reference):
    """Lockstep changes the order of work, not a bit of any member's records."""
    records, weights = reference["lockstep group"]
    for i, arch in enumerate(("rnn_tanh", "lstm", "gru")):
        alone_records, alone_weights = reference[arch]
        assert_identical(([records[i]], [weights[i]]), (alone_records, alone_weights))


def test_a_finished_run_reads_back_from_the_store_bit_for_bit(tmp_path, loops):
    """An attached finished run is opened from disk: its tables and weights must be the
    records the training produced."""
    from safetensors.torch import load_file

    from core.jobs import TrainingJob
    from core.runs import RunStore

    cfgs = CASES["lockstep group"]
    job = TrainingJob(cfgs, store=RunStore(tmp_path), slots=None).start()
    assert job.join(300) and job.error is None
    for r in job.runs:
        stored = RunStore(tmp_path).load(r.run_id)
        assert stored.status_copy()["status"] == "finished"
        for table in ("metrics", "evals", "probes", "gates", "summaries"):
            live, disk = r.data.table(table), stored.table(table)
            keep = [c for c in live.columns if c != "wall_s"]
            assert _bits(live[keep].reset_index(drop=True)) == _bits(
                disk[keep].reset_index(drop=True).astype(live[keep].dtypes.to_dict())), table
        assert weights_bits(load_file(r.writer.dir / "model.safetensors")) == weights_bits(
            r.trainer.model.state_dict())


def test_the_c_loops_and_the_torch_loops_are_not_the_same_bits():
    """Why the identity names the LSTM's loops: both are exact, but they sum in another
    order, so an LSTM trained with one is not bit for bit the one trained with the other
    (GRU and RNN do not use them)."""
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("RNNLAB_NATIVE", "1")
        native.reset()
        if native.lstm_kernels() is None:
            pytest.skip(f"no C loops here: {native.status()}")
        with_c = train_here(CASES["lstm"])
        c_numerics = identity.numerics()
        mp.setenv("RNNLAB_NATIVE", "0")
        native.reset()
        with_torch = train_here(CASES["lstm"])
        assert with_c != with_torch
        assert identity.numerics()["lstm_loops"] == "torch" != c_numerics["lstm_loops"]
        assert identity.run_identity(CASES["lstm"]) != identity.run_identity(
            CASES["lstm"], numbers=c_numerics)
    finally:
        mp.undo()
        native.reset()


# ---------------------------------------------------------------- the identity


def test_the_identity_is_the_configs_in_order_plus_code_and_numerics():
    a, b = BASE.replace(arch="lstm"), BASE.replace(arch="gru")
    code, numbers = "c0de", {"torch": "x"}
    ident = identity.run_identity
    assert ident([a], code=code, numbers=numbers) == ident([a], code=code, numbers=numbers)
    assert ident([a], code=code, numbers=numbers) == ident([BASE.replace(arch="lstm")],
                                                           code=code, numbers=numbers)
    assert ident([a], code=code, numbers=numbers) != ident([a.replace(seed=1)], code=code,
                                                           numbers=numbers)
    assert ident([a, b], code=code, numbers=numbers) != ident([b, a], code=code, numbers=numbers)
    assert ident([a], code=code, numbers=numbers) != ident([a], code="other", numbers=numbers)
    assert ident([a], code=code, numbers=numbers) != ident([a], code=code, numbers={"torch": "y"})
    assert ident([a]) == ident([a])  # this code, this machine
    with pytest.raises(ValueError):
        ident([])


def test_the_code_version_covers_what_trains_and_records_a_run():
    names = {p.relative_to(identity.ROOT).as_posix() for p in identity.training_sources()}
    assert {"core/train.py", "core/bptt.py", "core/cells.py", "core/models.py",
            "core/probe.py", "core/tasks.py", "core/config.py", "core/worker.py",
            "core/runs.py", "core/native/__init__.py", "core/native/lstm.c"} <= names
    assert not names & {"core/charts/style.py", "core/narrate/gradient.py", "core/jobs.py", "core/cli.py",
                        "core/identity.py", "core/presets.py"}


@pytest.fixture
def core_copy(tmp_path):
    shutil.copytree(identity.ROOT / "core", tmp_path / "core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_code_change_changes_the_identity_and_a_comment_does_not(core_copy):
    root = core_copy
    before = identity.code_version(root)
    assert before == identity.code_version(identity.ROOT)  # the same code, wherever it is
    train = root / "core" / "train.py"
    train.write_text(train.read_text() + "\n# a comment changes no run\n")
    assert identity.code_version(root) == before
    charts = root / "core" / "charts" / "style.py"  # drawing is not training
    charts.write_text(charts.read_text() + "\nX = 1\n")
    assert identity.code_version(root) == before
    train.write_text(train.read_text().replace("EVAL_SEED_OFFSET = 1_000_003",
                                               "EVAL_SEED_OFFSET = 1_000_033"))
    changed = identity.code_version(root)
    assert changed != before
    c = root / "core" / "native" / "lstm.c"
    c.write_text(c.read_text() + "\n/* even a comment: C is hashed as text */\n")
    assert identity.code_version(root) not in (before, changed)
    cfg = [BASE]
    assert identity.run_identity(cfg, code=before) != identity.run_identity(cfg, code=changed)


def test_a_module_training_starts_to_import_is_covered(core_copy):
    root = core_copy
    (root / "core" / "newstep.py").write_text("SCALE = 1.0\n")
    before = identity.code_version(root)
    train = root / "core" / "train.py"
    train.write_text(train.read_text() + "\n\ndef _later():\n    from core import newstep\n"
                     "    return newstep.SCALE\n")
    assert root / "core" / "newstep.py" in identity.training_sources(root)
    after = identity.code_version(root)
    assert after != before
    (root / "core" / "newstep.py").write_text("SCALE = 2.0\n")
    assert identity.code_version(root) != after

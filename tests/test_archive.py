"""core.archive: a run survives export → import, and every hostile upload is refused
with a clear ArchiveError, leaving nothing in the store."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import struct
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from core import archive
from core.archive import ALLOWED_MEMBERS, ArchiveError, chart_files, export_run, import_run
from core.config import TrainConfig
from core.jobs import TrainingJob
from core.runs import TABLES, RunStore

TINY = TrainConfig(task="adding", seq_len=8, hidden_size=4, steps=20, batch_size=8,
                   eval_size=32, eval_every=5, probe_every=5)


# ---------------------------------------------------------------- fixtures / helpers

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run in a module-wide store: (store, run_id, archive bytes)."""
    store = RunStore(tmp_path_factory.mktemp("trained"))
    job = TrainingJob([TINY], store=store, slots=None).start()
    assert job.join(timeout=120)
    run_id = store.ids()[0]
    assert store.read_status(run_id)["status"] == "finished"
    return store, run_id, export_run(store, run_id)


@pytest.fixture
def empty_store(tmp_path):
    return RunStore(tmp_path / "store")


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def make_zip(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name, bytes) pairs (a dict or a list, so duplicates are possible)."""
    items = members.items() if isinstance(members, dict) else members
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in items:        # name: a str or a zipfile.ZipInfo
            zf.writestr(name, data)
    return buf.getvalue()


def replaced(data: bytes, **changes) -> bytes:
    """The archive with some members replaced (``metrics_parquet=...``); None drops one."""
    m = members_of(data)
    for key, value in changes.items():
        name = key.replace("_parquet", ".parquet").replace("_json", ".json").replace(
            "_safetensors", ".safetensors").replace("_csv", ".csv")
        if value is None:
            m.pop(name, None)
        else:
            m[name] = value
    return make_zip(m)


def parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def assert_refused(store: RunStore, data: bytes, match: str, filename: str = "run.zip") -> str:
    with pytest.raises(ArchiveError, match=match) as e:
        import_run(store, data, filename)
    root = Path(store.root)
    assert not root.exists() or not any(root.iterdir()), "a refused import left files behind"
    msg = str(e.value)
    assert msg and "Traceback" not in msg
    return msg


# ---------------------------------------------------------------- round trip

def test_round_trip_equals(trained, empty_store):
    store, run_id, data = trained
    names = list(members_of(data))
    assert names == ["config.json", "status.json"] + [
        f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")] + ["model.safetensors"]
    assert all(not n.startswith("/") and "/" not in n for n in names)

    new_id = import_run(empty_store, data, "run.zip")
    assert new_id != run_id and empty_store.ids() == [new_id]
    a, b = store.load(run_id), empty_store.load(new_id)
    assert a.config == b.config
    for name in TABLES:
        pd.testing.assert_frame_equal(a.table(name), b.table(name), check_dtype=False)
        assert len(b.table(name)) > 0, name
    sa, sb = a.status_copy(), b.status_copy()
    assert sb["status"] == "finished" and sb["run_id"] == new_id
    for k in ("step", "steps", "eval_loss", "solved", "final_loss", "created"):
        assert sa[k] == sb[k], k
    assert not sb.get("incomplete")

    from safetensors.torch import load_file
    wa, wb = load_file(store.model_path(run_id)), load_file(empty_store.model_path(new_id))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)

    # The CSVs are there for people, and match the tables.
    csv = pd.read_csv(io.BytesIO(members_of(data)["metrics.csv"]))
    pd.testing.assert_frame_equal(csv, a.table("metrics"), check_dtype=False)
    # Importing twice gives two distinct runs; exporting is deterministic.
    second = import_run(empty_store, data, "run.zip")
    assert second != new_id and len(empty_store.ids()) == 2
    assert export_run(store, run_id) == data
    # No hidden temporary directories are left behind.
    assert sorted(p.name for p in Path(empty_store.root).iterdir()) == sorted(empty_store.ids())


def test_export_unknown_run_is_archive_error(empty_store):
    with pytest.raises(ArchiveError, match="cannot export"):
        export_run(empty_store, "nope")


def test_run_without_weights_round_trips(trained, empty_store):
    data = replaced(trained[2], model_safetensors=None)
    new_id = import_run(empty_store, data, "run.zip")
    assert not empty_store.model_path(new_id).exists()
    assert len(empty_store.load(new_id).table("metrics")) == TINY.steps


@pytest.mark.parametrize("state,expected", [
    ("running", "interrupted"), ("queued", "interrupted"), ("stopped", "stopped"),
    ("diverged", "diverged"), ("interrupted", "interrupted"), ("finished", "finished")])
def test_status_forced_to_known_value(trained, empty_store, state, expected):
    status = json.loads(members_of(trained[2])["status.json"])
    status.update(status=state, run_id="../../evil", pid=os.getpid(), heartbeat=1e12)
    new_id = import_run(empty_store, replaced(trained[2], status_json=json.dumps(status).encode()))
    got = empty_store.read_status(new_id)
    assert got["status"] == expected and got["run_id"] == new_id
    assert "pid" not in json.loads((empty_store.path(new_id) / "status.json").read_text())


def test_unknown_status_refused(trained, empty_store):
    status = json.loads(members_of(trained[2])["status.json"])
    status["status"] = "hacked"
    assert_refused(empty_store, replaced(trained[2], status_json=json.dumps(status).encode()),
                   "status must be one of")


def test_chart_files(trained):
    store, run_id, _ = trained
    files = chart_files(store.load(run_id))
    assert set(files) == {"loss.png", "loss.svg", "heatmap_a.png", "heatmap_a.svg"}
    assert files["loss.png"].startswith(b"\x89PNG") and files["heatmap_a.png"].startswith(b"\x89PNG")
    assert b"<svg" in files["loss.svg"] and b"<svg" in files["heatmap_a.svg"]


# ---------------------------------------------------------------- refusals: the container

def test_not_a_zip(empty_store):
    assert_refused(empty_store, b"hello, this is not a zip" * 10, "is not a .zip file")
    assert_refused(empty_store, b"PK\x03\x04 but cut short", "not a valid .zip")
    assert_refused(empty_store, b"", "empty")


def test_bare_config_json_is_refused_with_a_pointer(empty_store):
    msg = assert_refused(empty_store, json.dumps(TINY.to_dict()).encode(), "config.json",
                         filename="config.json")
    assert "Download run" in msg


@pytest.mark.parametrize("cut", [0.5, 0.9, -10, -1])
def test_truncated_zip(trained, empty_store, cut):
    data = trained[2]
    n = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut
    assert_refused(empty_store, data[:n], "zip|damaged|truncated")


def test_oversize_refused_before_unzipping(empty_store, monkeypatch):
    assert_refused(empty_store, b"PK" + b"\0" * archive.MAX_UPLOAD_BYTES, "MiB allowed")
    opened = []
    monkeypatch.setattr(archive.zipfile, "ZipFile", lambda *a, **k: opened.append(1))
    monkeypatch.setattr(archive, "MAX_UPLOAD_BYTES", 100)
    assert_refused(empty_store, b"x" * 101, "allowed")
    assert not opened


def test_zip_bomb_by_declared_size(trained, empty_store, monkeypatch):
    monkeypatch.setattr(archive, "MAX_UNCOMPRESSED_BYTES", 1 << 20)
    bomb = b"0" * (8 << 20)      # 8 MiB of zeros: deflates to a few KiB
    data = replaced(trained[2], metrics_csv=bomb)
    assert len(data) < 100_000
    assert_refused(empty_store, data, "zip bomb")


def test_zip_bomb_with_lying_sizes(trained, empty_store, monkeypatch):
    """The directory claims 100 bytes; the member really inflates to 8 MiB."""
    monkeypatch.setattr(archive, "MAX_UNCOMPRESSED_BYTES", 1 << 20)
    data = bytearray(make_zip({"metrics.csv": b"0" * (8 << 20), "config.json": b"{}"}))
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 100)
    struct.pack_into("<I", data, central + 24, 100)
    assert_refused(empty_store, bytes(data), "damaged|zip bomb|declares")


def test_too_many_members(trained, empty_store, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    assert_refused(empty_store, trained[2], "members")


def test_huge_directory_refused_before_parsing(empty_store, monkeypatch):
    """Thousands of empty members: refused from the end record, zipfile never parses them."""
    data = make_zip([(f"m{i}", b"") for i in range(5000)], compression=zipfile.ZIP_STORED)
    assert len(data) < archive.MAX_UPLOAD_BYTES
    opened = []
    monkeypatch.setattr(archive.zipfile, "ZipFile", lambda *a, **k: opened.append(1))
    assert_refused(empty_store, data, "too many members")
    assert not opened


def test_zip64_directory_is_bounded_too(empty_store, tmp_path):
    """torch.save writes ZIP64 end records: their member count is checked as well."""
    import torch

    pt = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(2)}, pt)
    data = bytearray(pt.read_bytes())
    rec = data.rfind(b"PK\x06\x06")
    assert rec > 0
    struct.pack_into("<QQ", data, rec + 24, 10**6, 10**6)      # entries on disk, total
    assert_refused(empty_store, bytes(data), "too many members", filename="w.zip")
    data = bytearray(pt.read_bytes())
    data[rec:rec + 4] = b"XXXX"
    assert_refused(empty_store, bytes(data), "not a valid .zip", filename="w.zip")


@pytest.mark.parametrize("name,match", [
    ("../evil", r"outside the archive"),
    ("../../etc/cron.d/x", r"outside the archive"),
    ("/etc/passwd", r"absolute path"),
    ("C:\\windows\\evil.json", r"absolute path"),
    ("sub/dir.json", r"folder"),
    ("sub/", r"folder"),
    ("evil.txt", r"unexpected member"),
    ("config.json.exe", r"unexpected member"),
])
def test_bad_member_names(trained, empty_store, name, match):
    m = members_of(trained[2])
    m[name] = b"x"
    assert_refused(empty_store, make_zip(m), match)


def test_symlink_member_refused(trained, empty_store):
    m = members_of(trained[2])
    del m["config.json"]
    info = zipfile.ZipInfo("config.json")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    items = list(m.items()) + [(info, b"/etc/passwd")]
    assert_refused(empty_store, make_zip(items), "symbolic link")


def test_duplicate_member_refused(trained, empty_store):
    m = list(members_of(trained[2]).items()) + [("config.json", b"{}")]
    with pytest.warns(UserWarning):
        data = make_zip(m)
    assert_refused(empty_store, data, "twice")


def test_missing_member_refused(trained, empty_store):
    assert_refused(empty_store, replaced(trained[2], probes_parquet=None), "no probes.parquet")
    assert_refused(empty_store, replaced(trained[2], config_json=None), "no config.json")


# ---------------------------------------------------------------- refusals: pickles

class Armed:
    """Unpickling this makes a directory: the proof that a pickle was loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickle_payloads_are_never_loaded(trained, empty_store, tmp_path):
    import torch

    marker = tmp_path / "pwned"
    pt = tmp_path / "model.pt"
    torch.save({"weights": Armed(marker)}, pt)
    payload = pt.read_bytes()
    assert zipfile.is_zipfile(io.BytesIO(payload))       # torch.save writes a zip with data.pkl

    # The payload is live: loading it the unsafe way would run it.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Armed(proof)))
    assert proof.is_dir()

    assert_refused(empty_store, payload, "pickle files are never loaded", filename="model.pt")
    assert_refused(empty_store, payload, "pickle files are never loaded", filename="model.pth")
    assert_refused(empty_store, payload, "pickle files are never loaded", filename="model.zip")
    inside = replaced(trained[2], model_safetensors=None)
    assert_refused(empty_store, make_zip({**members_of(inside), "model.pt": payload}),
                   "pickle files are never loaded")
    assert_refused(empty_store, make_zip({"data.pkl": pickle.dumps(Armed(marker))}),
                   "pickle files are never loaded")
    assert_refused(empty_store, pickle.dumps(Armed(marker), protocol=4),
                   "pickle files are never loaded", filename="run.zip")
    assert_refused(empty_store, pickle.dumps(Armed(marker)), "pickle", filename="weights.pkl")
    assert not marker.exists(), "a pickle was executed"


# ---------------------------------------------------------------- refusals: content

def test_table_missing_columns(trained, empty_store):
    df = pd.DataFrame({"step": [0, 1], "metric": [0.1, 0.2]})
    msg = assert_refused(empty_store, replaced(trained[2], metrics_parquet=parquet(df)),
                         "metrics.parquet")
    assert "loss" in msg and "grad_norm" in msg


def test_table_wrong_dtype(trained, empty_store):
    store, run_id, data = trained
    df = store.load(run_id).table("metrics")
    df["loss"] = "lots"
    assert_refused(empty_store, replaced(data, metrics_parquet=parquet(df)),
                   "metrics.parquet: column 'loss' must hold numbers")
    p = store.load(run_id).table("probes")
    p["quantity"] = 3
    assert_refused(empty_store, replaced(data, probes_parquet=parquet(p)), "'quantity' must hold text")
    m = store.load(run_id).table("metrics")
    m["step"] = -1.5
    assert_refused(empty_store, replaced(data, metrics_parquet=parquet(m)), "whole numbers")


def test_table_not_parquet(trained, empty_store):
    assert_refused(empty_store, replaced(trained[2], gates_parquet=b"PAR1 nope"),
                   "gates.parquet is not a readable Parquet table")


@pytest.mark.parametrize("change,field", [
    ({"hidden_size": 0}, "hidden_size"), ({"arch": "transformer"}, "arch"),
    ({"lr": "fast"}, "lr"), ({"evil": 1}, "evil")])
def test_bad_config_names_the_field(trained, empty_store, change, field):
    cfg = {**TINY.to_dict(), **change}
    msg = assert_refused(empty_store, replaced(trained[2], config_json=json.dumps(cfg).encode()),
                         "config.json")
    assert field in msg


def test_config_not_json(trained, empty_store):
    assert_refused(empty_store, replaced(trained[2], config_json=b"\xff\xfe nope"), "not valid JSON")
    assert_refused(empty_store, replaced(trained[2], config_json=b"[1, 2]"), "JSON object")


def test_bad_safetensors_bytes(trained, empty_store):
    assert_refused(empty_store, replaced(trained[2], model_safetensors=b"\x08\0\0\0\0\0\0\0{garbage"),
                   "model.safetensors is not a valid safetensors file")
    assert_refused(empty_store, replaced(trained[2], model_safetensors=b""),
                   "model.safetensors")


def test_safetensors_that_do_not_fit_the_config(trained, empty_store):
    import torch
    from safetensors.torch import save

    wrong = save({"layer.weight": torch.zeros(3, 3)})
    assert_refused(empty_store, replaced(trained[2], model_safetensors=wrong), "does not fit")


# ---------------------------------------------------------------- properties

_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


def _import_quietly(data: bytes, filename: str = "run.zip") -> None:
    with tempfile.TemporaryDirectory() as root:
        store = RunStore(Path(root) / "store")
        try:
            import_run(store, data, filename)
        except ArchiveError as e:
            assert str(e)
            left = Path(store.root)
            assert not left.exists() or not any(left.iterdir())


@_SETTINGS
@given(hs.binary(max_size=4096), hs.sampled_from(["run.zip", "x.bin", "", "a/../b.zip", "é.zip"]))
def test_random_bytes_only_raise_archive_error(data, filename):
    _import_quietly(data, filename)


_NAMES = hs.one_of(hs.sampled_from(ALLOWED_MEMBERS + ["../x", "/abs", "a/b", "data.pkl", "x.pt"]),
                   hs.text(min_size=1, max_size=20))


@_SETTINGS
@given(hs.lists(hs.tuples(_NAMES, hs.binary(max_size=256)), min_size=1, max_size=8))
def test_random_members_only_raise_archive_error(members):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # duplicate names
        try:
            data = make_zip(members)
        except Exception:                # noqa: BLE001 - names zipfile itself cannot write
            return
    _import_quietly(data)


@_SETTINGS
@given(hs.data())
def test_damaged_archives_only_raise_archive_error(trained, data):
    good = bytearray(trained[2])
    for _ in range(data.draw(hs.integers(1, 4))):
        i = data.draw(hs.integers(0, len(good) - 1))
        good[i] = data.draw(hs.integers(0, 255))
    cut = data.draw(hs.integers(1, len(good)))
    _import_quietly(bytes(good[:cut]))


# ---------------------------------------------------------------- refusals: what the file is

def test_a_zip_of_other_files_is_refused_as_not_a_run_archive_naming_its_files(empty_store):
    msg = assert_refused(empty_store, make_zip({"a.bin": b"x", "notes.txt": b"hi",
                                                "img/p.png": b"x"}), "not a run archive",
                         filename="photos.zip")
    assert "'a.bin', 'notes.txt', 'img/p.png'" in msg and "config.json" in msg
    assert "Download run (.zip)" in msg


def test_a_file_that_is_not_a_zip_is_refused_saying_what_it_seems_to_be(empty_store):
    for data, name, says in ((b"hello\nworld\n", "notes.txt", "it is a text file"),
                             (b"PAR1\x15\x04", "metrics.parquet", "it is a Parquet table"),
                             (b"\x89PNG\r\n\x1a\n\x00", "loss.png", "it is an image"),
                             (b"\x1f\x8b\x08\x00\x00", "run.tar.gz", "another kind of archive")):
        msg = assert_refused(empty_store, data, "is not a .zip file", filename=name)
        assert msg.startswith(f"{name} is not a .zip file") and says in msg, msg


def test_an_empty_zip_says_what_a_run_archive_holds(empty_store):
    assert_refused(empty_store, make_zip({}), "the .zip is empty: a run archive holds config.json")

"""Run archives: download a run as one .zip, upload it again (here or on another server).

    data = export_run(store, run_id)               # bytes of a .zip
    new_id = import_run(store, data, "run.zip")    # validated copy under a fresh run id

Archive layout (flat, fixed member names, no directories)::

    config.json, status.json
    metrics.parquet  evals.parquet  probes.parquet  gates.parquet  summaries.parquet
    metrics.csv      evals.csv      probes.csv      gates.csv      summaries.csv
    model.safetensors                                         (if the run has weights)

The CSV files are for people (spreadsheets); the import reads the Parquet files
and ignores the CSVs.

An upload is untrusted input. ``import_run`` checks, before anything is written:

* size: the upload (``MAX_UPLOAD_BYTES``, before unzipping), the number of members
  (``MAX_MEMBERS``) and the total uncompressed size (``MAX_UNCOMPRESSED_BYTES``,
  from the directory *and* while decompressing, so a lying header cannot get past);
* names: only the members listed above, each at most once; no directories, no
  '/', '..' or absolute names, no symbolic links, no encrypted members. Member
  names are never used as paths: the run is written under fixed names;
* pickles are never loaded: ``.pt``/``.pth``/``.pkl``/... files, and zips holding
  one (``torch.save`` writes a zip with ``data.pkl``), are refused outright;
* content: config.json through the strict ``TrainConfig.from_dict``; every table
  through pyarrow with its required columns and types; the weights through
  safetensors (no code execution) and against the shapes of the config's model;
  status.json reduced to known keys and types, with a known status ("running" or
  "queued" becomes "interrupted").

The run is written to a hidden temporary directory inside the store root and
renamed into place, so a refused or failed import leaves nothing behind. Every
failure raises :class:`ArchiveError` with a message meant for the user.

One file (~490 lines) for one format: the export and the import's checks are the
two directions of the layout above and are read against each other; most of the
length is the checks, one function per member kind.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import stat
import struct
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import ConfigError, TrainConfig
from core.runs import (
    STATUSES, TABLES, RunData, RunError, RunStore, new_run_id, write_json,
)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024            # the .zip as uploaded
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024     # all members together, unzipped
MAX_MEMBERS = 16                               # 13 names are allowed; a little slack
MAX_TABLE_ROWS = 20_000_000                    # per Parquet table
MAX_DIRECTORY_BYTES = 64 * 1024                # the zip's central directory (ours: ~1 KiB)

CONFIG, STATUS, MODEL = "config.json", "status.json", "model.safetensors"
ALLOWED_MEMBERS = (
    [CONFIG, STATUS] + [f"{t}.parquet" for t in TABLES] + [f"{t}.csv" for t in TABLES] + [MODEL]
)
REQUIRED_MEMBERS = [CONFIG, STATUS] + [f"{t}.parquet" for t in TABLES]
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".bin", ".npy", ".npz")
PICKLE_MESSAGE = ("pickle files are never loaded (they can run arbitrary code): "
                  "upload the run .zip from 'Download run', whose weights are in model.safetensors")
IMPORTED_STATUSES = ("finished", "stopped", "diverged", "interrupted")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)            # reproducible archives

# Column kinds: everything numeric except these.
_STRING_COLUMNS = {"quantity", "gate"}
_BOOL_COLUMNS = {"solved"}
_STATUS_NUMBERS = ("final_loss", "eval_loss", "eval_metric", "created", "updated", "wall_s",
                   "steps_per_s", "vanishing_ratio", "gradient_reach")
_STATUS_INTS = ("step", "steps", "steps_to_solve")
# This machine's writer, meaningless elsewhere; and whose run it is here (core.owners):
# an upload is its uploader's.
_EXPORT_DROP = ("pid", "heartbeat", "owner", "shared", "lesson")


class ArchiveError(Exception):
    """An archive cannot be made or is refused; the message says why, for the user."""


# ---------------------------------------------------------------- export

def _zip_member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _json_bytes(d: dict) -> bytes:
    return json.dumps(d, indent=1, default=_json_default, allow_nan=True).encode()


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, pd.Timestamp):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def export_run(store: RunStore, run_id: str) -> bytes:
    """The run as a .zip (see the module docstring for the layout).

    Tables come from ``store.load`` (a damaged table is exported empty, and the
    status says so); raises :class:`ArchiveError` if the run cannot be read.
    """
    try:
        data = store.load(run_id)
        model = store.model_path(run_id)
        weights = model.read_bytes() if model.is_file() else None
    except (RunError, OSError) as e:
        raise ArchiveError(f"cannot export run {run_id!r}: {e}") from e
    status = {k: v for k, v in data.status_copy().items() if k not in _EXPORT_DROP}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _zip_member(zf, CONFIG, _json_bytes(data.config.to_dict()))
        _zip_member(zf, STATUS, _json_bytes(status))
        for name in TABLES:
            df = data.table(name)
            _zip_member(zf, f"{name}.parquet", _parquet_bytes(df))
            _zip_member(zf, f"{name}.csv", df.to_csv(index=False).encode())
        if weights is not None:
            _zip_member(zf, MODEL, weights)
    return buf.getvalue()


# ---------------------------------------------------------------- import

def import_run(store: RunStore, data: bytes, filename: str = "run.zip",
               owner: str | None = None) -> str:
    """Validate an uploaded run archive and add it to ``store`` under a fresh run id,
    as ``owner``'s run (core.owners; None: no one's).

    Returns the new run id; raises :class:`ArchiveError` (and writes nothing) if
    anything is wrong.
    """
    try:
        config, status, tables, weights = _validate(data, filename)
    except ArchiveError:
        raise
    except Exception as e:
        raise ArchiveError(f"the archive could not be read ({type(e).__name__}: {e})") from e
    if owner is not None:
        status["owner"] = owner
    return _write_run(store, config, status, tables, weights, filename)


def _validate(data, filename):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArchiveError("the upload is not a file's bytes")
    data = bytes(data)
    name = os.path.basename(str(filename or "")).lower()
    if name.endswith(PICKLE_SUFFIXES):
        raise ArchiveError(f"{os.path.basename(str(filename))}: {PICKLE_MESSAGE}")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ArchiveError(f"the file is {_mib(len(data))}, more than the "
                           f"{_mib(MAX_UPLOAD_BYTES)} allowed for an upload")
    if not data:
        raise ArchiveError("the file is empty")
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise ArchiveError(PICKLE_MESSAGE)
    if data.lstrip()[:1] == b"{":
        raise ArchiveError("this looks like a bare config.json: upload the run .zip from "
                           "'Download run (.zip)' (a config alone has no results to show)")
    if not data.startswith(b"PK"):
        shown = os.path.basename(str(filename or "")) or "the file"
        raise ArchiveError(f"{shown} is not a .zip file ({_looks_like(data)}): upload the "
                           "run .zip that 'Download run (.zip)' on the Runs page makes")
    _check_directory(data)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise ArchiveError(f"not a valid .zip file ({e}): it may be truncated or damaged") from e
    with zf:
        members = _check_members(zf)
        raw = {n: _read_member(zf, info) for n, info in members.items()}
    missing = [n for n in REQUIRED_MEMBERS if n not in raw]
    if missing:
        raise ArchiveError(f"the archive has no {', '.join(missing)}: upload a .zip made "
                           "by 'Download run (.zip)'")
    config = _check_config(raw[CONFIG])
    tables = {t: _check_table(t, raw[f"{t}.parquet"]) for t in TABLES}
    status = _check_status(raw[STATUS], config)
    weights = _check_weights(raw[MODEL], config) if MODEL in raw else None
    return config, status, tables, weights


def _looks_like(data: bytes) -> str:
    """What a file that is not a zip seems to be, from its first bytes (for the message)."""
    head = data[:8]
    if head.startswith(b"PAR1"):
        return "it is a Parquet table, one table of a run; the archive holds them all"
    if head.startswith((b"\x89PNG", b"<svg", b"<?xml")):
        return "it is an image, such as a chart exported from a run"
    if len(data) > 8 and data[8:9] == b"{" and int.from_bytes(head, "little") < len(data):
        return "it is a safetensors file: weights without the run's config and records"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!")):
        return "it is another kind of archive (gzip, bzip2, xz, 7z or rar)"
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "its first bytes are not those of a zip archive"
    return "it is a text file"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def _check_directory(data: bytes) -> None:
    """Bound the zip's central directory *before* zipfile parses it: a 20 MiB upload could
    otherwise list ~400,000 empty members (seconds of CPU and hundreds of MiB for nothing)."""
    end = -1
    if len(data) >= 22 and data[-22:-18] == b"PK\x05\x06":
        end = len(data) - 22
    else:
        end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if end < 0 or end + 22 > len(data):
        raise ArchiveError("not a valid .zip file (no zip directory found): it may be "
                           "truncated or damaged")
    entries, cd_size = struct.unpack_from("<HI", data, end + 10)
    if end >= 20 and data[end - 20:end - 16] == b"PK\x06\x07":
        # ZIP64 (torch.save writes it): zipfile reads the counts from the ZIP64 record,
        # which it expects right before the locator.
        rec = end - 20 - 56
        if rec < 0 or data[rec:rec + 4] != b"PK\x06\x06":
            raise ArchiveError("not a valid .zip file (damaged ZIP64 directory)")
        entries, cd_size = struct.unpack_from("<QQ", data, rec + 32)
    if entries > MAX_MEMBERS or cd_size > MAX_DIRECTORY_BYTES:
        raise ArchiveError(f"the .zip lists too many members; a run archive has at most "
                           f"{MAX_MEMBERS}")


def _base(name: str) -> str:
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _listing(names: list[str], most: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _check_run_archive(names: list[str]) -> None:
    """Refuse, saying so, a .zip that is not a run archive at all (none of its members is
    one a run archive holds): a PyTorch checkpoint (torch.save's zip, with data.pkl), or
    any other zip, whose members are named."""
    if any(_base(n) in ALLOWED_MEMBERS for n in names):
        return
    if any(_base(n).lower() == "data.pkl" for n in names):
        raise ArchiveError("this is a PyTorch checkpoint (torch.save's .zip, with data.pkl "
                           f"inside), not a run archive: {PICKLE_MESSAGE}")
    pickles = [n for n in names if _base(n).lower().endswith(PICKLE_SUFFIXES)]
    note = (f" ({_listing(pickles, 3)}: a pickle format, which is never loaded)"
            if pickles else "")
    raise ArchiveError(
        f"this .zip is not a run archive: it holds {_listing(names)}{note}, but none of the "
        f"files a run archive has ({', '.join(REQUIRED_MEMBERS)}). Upload a .zip made by "
        "'Download run (.zip)' on the Runs page.")


def _check_members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if not infos:
        raise ArchiveError("the .zip is empty: a run archive holds "
                           f"{', '.join(REQUIRED_MEMBERS)}")
    if len(infos) > MAX_MEMBERS:
        raise ArchiveError(f"the .zip has {len(infos)} members; a run archive has at most "
                           f"{MAX_MEMBERS}")
    names = [i.filename for i in infos]
    _check_run_archive(names)
    for n in names:           # the most specific refusal first
        base = n.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower()
        if base.endswith(PICKLE_SUFFIXES) or base == "data.pkl":
            raise ArchiveError(f"{n!r}: {PICKLE_MESSAGE}")
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        n = info.filename
        if n.startswith(("/", "\\")) or (len(n) > 1 and n[1] == ":"):
            raise ArchiveError(f"member {n!r} has an absolute path: refused")
        if ".." in n.replace("\\", "/").split("/"):
            raise ArchiveError(f"member {n!r} points outside the archive ('..'): refused")
        if "/" in n or "\\" in n:
            raise ArchiveError(f"member {n!r} is in a folder: a run archive is flat "
                               f"({', '.join(ALLOWED_MEMBERS)})")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveError(f"member {n!r} is a symbolic link: refused")
        if n not in ALLOWED_MEMBERS:
            raise ArchiveError(f"unexpected member {n!r}: a run archive holds only "
                               f"{', '.join(ALLOWED_MEMBERS)}")
        if n in members:
            raise ArchiveError(f"member {n!r} appears twice")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"member {n!r} is encrypted: refused")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"member {n!r} uses an unsupported compression method")
        total += info.file_size
        if total > MAX_UNCOMPRESSED_BYTES:
            raise ArchiveError(f"the archive unpacks to more than {_mib(MAX_UNCOMPRESSED_BYTES)}: "
                               "refused (too large, or a zip bomb)")
        members[n] = info
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, never more than its declared size nor the global limit
    (the directory can lie; zipfile's CRC check then fails, but stop early anyway)."""
    limit = min(info.file_size, MAX_UNCOMPRESSED_BYTES)
    out = bytearray()
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(min(1 << 20, limit + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
                if len(out) > limit:
                    raise ArchiveError(f"member {info.filename!r} unpacks to more than it "
                                       "declares: refused (damaged, or a zip bomb)")
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError) as e:
        raise ArchiveError(f"member {info.filename!r} is damaged ({e}): the .zip may be "
                           "truncated") from e
    except Exception as e:
        raise ArchiveError(f"member {info.filename!r} is damaged ({type(e).__name__}: {e})") from e
    return bytes(out)


def _load_json(name: str, raw: bytes) -> dict:
    try:
        d = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ArchiveError(f"{name} is not valid JSON ({e})") from e
    if not isinstance(d, dict):
        raise ArchiveError(f"{name} must hold a JSON object")
    return d


def _check_config(raw: bytes) -> TrainConfig:
    d = _load_json(CONFIG, raw)
    try:
        return TrainConfig.from_dict(d)
    except ConfigError as e:
        raise ArchiveError(f"config.json is not a valid configuration: {e}") from e
    except (TypeError, ValueError) as e:
        raise ArchiveError(f"config.json is not a valid configuration ({e})") from e


def _check_table(name: str, raw: bytes) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyarrow.types as pt

    where = f"{name}.parquet"
    cols = TABLES[name]
    try:
        pf = pq.ParquetFile(pa.BufferReader(raw))
        meta = pf.metadata
        if meta.num_rows > MAX_TABLE_ROWS:
            raise ArchiveError(f"{where} has {meta.num_rows} rows, more than "
                               f"{MAX_TABLE_ROWS} allowed")
        unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if unpacked > MAX_UNCOMPRESSED_BYTES:
            raise ArchiveError(f"{where} unpacks to more than {_mib(MAX_UNCOMPRESSED_BYTES)}")
        schema = pf.schema_arrow
        missing = [c for c in cols if c not in schema.names]
        if missing:
            raise ArchiveError(f"{where} lacks the column(s) {', '.join(missing)} "
                               f"(needs {', '.join(cols)})")
        for c in cols:
            t = schema.field(c).type
            if c in _STRING_COLUMNS:
                ok = pt.is_string(t) or pt.is_large_string(t) or pt.is_null(t) or (
                    pt.is_dictionary(t) and pt.is_string(t.value_type))
                want = "text"
            elif c in _BOOL_COLUMNS:
                ok = pt.is_boolean(t) or pt.is_integer(t) or pt.is_null(t)
                want = "true/false"
            else:
                ok = pt.is_integer(t) or pt.is_floating(t) or pt.is_null(t)
                want = "numbers"
            if not ok:
                raise ArchiveError(f"{where}: column {c!r} must hold {want}, not {t}")
        table = pf.read(columns=cols)
    except ArchiveError:
        raise
    except Exception as e:
        raise ArchiveError(f"{where} is not a readable Parquet table ({type(e).__name__}: {e})") from e
    df = pd.DataFrame({c: table.column(c).to_pandas() for c in cols})
    for c in cols:
        if c in _STRING_COLUMNS:
            df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
        elif c in _BOOL_COLUMNS:
            vals = pd.to_numeric(df[c].astype(object), errors="coerce")
            if not vals.isin([0, 1]).all():
                raise ArchiveError(f"{where}: column {c!r} must hold true/false")
            df[c] = vals.astype(bool)
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("step", "t"):
        if c in cols and len(df):
            v = df[c].to_numpy(dtype=float)
            if not (np.isfinite(v).all() and (v >= 0).all() and (v <= 1e12).all()
                    and (v == v.round()).all()):
                raise ArchiveError(f"{where}: column {c!r} must hold whole numbers ≥ 0")
            df[c] = df[c].astype("int64")
    return df


def _check_status(raw: bytes, config: TrainConfig) -> dict:
    d = _load_json(STATUS, raw)
    state = d.get("status")
    if state in ("running", "queued"):
        state = "interrupted"
    if state not in IMPORTED_STATUSES:
        raise ArchiveError(f"status.json: status must be one of {', '.join(STATUSES)}, "
                           f"got {str(state)[:40]!r}")
    out: dict = {"status": state}
    for k in _STATUS_NUMBERS:
        v = d.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v) if k != "gradient_reach" else v
    for k in _STATUS_INTS:
        v = d.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**9:
            out[k] = v
    if isinstance(d.get("solved"), bool):
        out["solved"] = d["solved"]
    msg = d.get("message")
    if isinstance(msg, str):
        out["message"] = msg[:2000]
    if d.get("status") in ("running", "queued"):
        out["message"] = "imported while it was still training: the records end where it was"
    out["steps"] = config.steps
    return out


def _check_weights(raw: bytes, config: TrainConfig) -> bytes:
    from safetensors.torch import load as st_load, save as st_save

    from core.train import make_model

    try:
        tensors = st_load(raw)
    except Exception as e:
        raise ArchiveError(f"model.safetensors is not a valid safetensors file ({e})") from e
    try:
        expected = {k: tuple(v.shape)
                    for k, v in make_model(config, config.make_task()).state_dict().items()}
    except Exception as e:
        raise ArchiveError(f"cannot build the model of config.json to check the weights ({e})") from e
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != expected:
        extra = sorted(set(got) - set(expected))
        lacking = sorted(set(expected) - set(got))
        shape = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        parts = ([f"unexpected {', '.join(extra[:5])}"] if extra else []) + (
            [f"missing {', '.join(lacking[:5])}"] if lacking else []) + (
            [f"wrong shape for {', '.join(shape[:5])}"] if shape else [])
        raise ArchiveError("model.safetensors does not fit config.json's model: " + "; ".join(parts))
    if not all(v.is_floating_point() for v in tensors.values()):
        raise ArchiveError("model.safetensors: weights must be floating-point tensors")
    return st_save({k: v.contiguous() for k, v in tensors.items()})


def _write_run(store, config, status, tables, weights, filename) -> str:
    root = Path(store.root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".import-"))
    except OSError as e:
        raise ArchiveError(f"cannot write to the run store {root}: {e.strerror or e}") from e
    try:
        run_id = new_run_id(config)
        base = os.path.basename(str(filename or ""))[:120]
        full = RunData(config, status={**status, "run_id": run_id}).status_copy()
        full.update(status, run_id=run_id, updated=time.time(), imported=time.time(),
                    imported_from=base)
        write_json(tmp / CONFIG, config.to_dict())
        for name, df in tables.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        if weights is not None:
            (tmp / MODEL).write_bytes(weights)
        write_json(tmp / STATUS, full)
        for _ in range(5):
            dest = store.path(run_id)
            try:
                os.rename(tmp, dest)     # fails if dest exists (non-empty dir) or is a file
                return run_id
            except OSError:
                if not dest.exists():
                    raise
                run_id = new_run_id(config)
                full["run_id"] = run_id
                write_json(tmp / STATUS, full)
        raise ArchiveError("could not find a free run id for the import; try again")
    except ArchiveError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (OSError, RunError, ValueError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArchiveError(f"could not save the imported run: {getattr(e, 'strerror', None) or e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------- chart images

def chart_files(data: RunData) -> dict[str, bytes]:
    """PNG and SVG of the run's loss chart and heatmap A (h), keyed by file name.

    Costs about half a second per PNG: call it on demand, not on every page load.
    """
    from core import charts

    s = data.status_copy()
    loss = charts.loss_chart(data.table("metrics"), data.table("evals"), s.get("baseline_loss"))
    heat = charts.grad_time_heatmap(data.table("probes"), "h")
    return {
        "loss.png": charts.chart_to_png(loss),
        "loss.svg": charts.chart_to_svg(loss).encode(),
        "heatmap_a.png": charts.chart_to_png(heat),
        "heatmap_a.svg": charts.chart_to_svg(heat).encode(),
    }


__all__ = ["ArchiveError", "MAX_UPLOAD_BYTES", "chart_files", "export_run", "import_run"]

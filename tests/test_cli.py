"""The command line, run as a user would: a subprocess, one JSON line on stdout."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_train_prints_exactly_one_json_line_with_the_promised_fields(tmp_path):
    p = _run("train", "--task", "recall", "--arch", "gru", "--seq-len", "6", "--hidden", "8",
             "--batch", "8", "--steps", "12", "--probe-every", "4", "--eval-every", "6",
             "--eval-size", "32", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    for key in ("run_dir", "status", "steps", "final_loss", "eval_loss", "eval_metric",
                "baseline_loss", "solved", "steps_per_s", "wall_s"):
        assert key in out
    assert out["status"] == "finished" and out["steps"] == 12
    assert Path(out["run_dir"]).parent == tmp_path
    listing = _run("runs", "--out", str(tmp_path), "--json")
    assert json.loads(listing.stdout)[0]["run_id"] == Path(out["run_dir"]).name


def test_bad_flags_are_refused_with_the_field_and_range(tmp_path):
    p = _run("train", "--seq-len", "5000", "--arch", "cnn", "--out", str(tmp_path))
    assert p.returncode == 2
    assert "--seq-len must be int from 2 to 1000" in p.stderr
    assert "--arch must be one of" in p.stderr
    assert p.stdout == ""


def test_boolean_flags_set_their_field_even_when_the_field_name_starts_with_no():
    """--no-forget-gate is the field no_forget_gate set true (argparse's BooleanOptionalAction
    read it as 'false' and trained an LSTM with its forget gate); --no-<flag> sets false."""
    from core.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--no-forget-gate"]).no_forget_gate is True
    assert parser.parse_args(["train"]).no_forget_gate is False
    assert parser.parse_args(["train", "--no-no-forget-gate"]).no_forget_gate is False
    args = parser.parse_args(["train", "--coupled-gates", "--stop-when-solved"])
    assert args.coupled_gates is True and args.stop_when_solved is True
    assert parser.parse_args(["train", "--no-stop-when-solved"]).stop_when_solved is False

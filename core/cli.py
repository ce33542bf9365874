"""Command line: ``python -m core train|runs|sweep|settings``.

``train`` takes every TrainConfig field as a flag (built from ``core.config.FIELDS``,
so flags, ranges and defaults are stated once), prints progress on stderr and,
at the end, exactly one JSON line on stdout. ``settings`` prints the effective value of
each ``RNNLAB_*`` setting (``--markdown``: the table in README.md, see core.settings).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from core import settings
from core.config import FIELDS, ConfigError, TrainConfig
from core.runs import RunError, RunStore


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# Short aliases used in the README and the issue text.
ALIASES = {"hidden_size": ["--hidden"], "batch_size": ["--batch"]}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    for f in FIELDS:
        flags = [_flag(f.name), *ALIASES.get(f.name, [])]
        help_text = f"{f.help} [{f.describe()}; default {f.default}]"
        if f.kind is bool:
            # --flag sets True, --no-flag False. Not argparse.BooleanOptionalAction: it reads
            # any option starting with --no- as False, so --no-forget-gate (the field
            # no_forget_gate) trained an LSTM *with* its forget gate.
            parser.add_argument(*flags, dest=f.name, action="store_const", const=True,
                                default=f.default, help=help_text)
            parser.add_argument("--no-" + flags[0][2:], dest=f.name, action="store_const",
                                const=False, help=f"set {f.name} false")
        else:
            # Values stay strings here; TrainConfig validates and names the field.
            parser.add_argument(*flags, dest=f.name, default=None, metavar=f.name.upper(),
                                help=help_text)


def _json_number(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def cmd_train(args) -> int:
    from core.jobs import TrainingJob

    values = {f.name: getattr(args, f.name) for f in FIELDS if getattr(args, f.name) is not None}
    try:
        config = TrainConfig.from_dict(values)
    except ConfigError as e:
        for field_name, msg in e.errors.items():
            print(f"error: --{field_name.replace('_', '-')} {msg}", file=sys.stderr)
        return 2
    store = RunStore(args.out)
    job = TrainingJob([config], store=store, slots=None).start()
    run = job.runs[0]
    last = 0.0
    try:
        while job.alive:
            time.sleep(0.2)
            if not args.quiet and time.monotonic() - last > 1.0:
                last = time.monotonic()
                s = run.data.status_copy()
                loss = s.get("final_loss")
                rate = s.get("steps_per_s") or 0.0
                print(f"\rstep {s['step']}/{config.steps}  loss {loss if loss is None else f'{loss:.4f}'}"
                      f"  eval {s.get('eval_metric')}  {rate:.1f} steps/s", end="", file=sys.stderr)
    except KeyboardInterrupt:
        job.stop()
        job.join()
    if not args.quiet:
        print(file=sys.stderr)
    if job.error:
        print(f"error: {job.error}", file=sys.stderr)
    if job.save_error:
        print(f"warning: {job.save_error}", file=sys.stderr)
    s = run.data.status_copy()
    result = {
        "run_dir": str(run.writer.dir) if run.writer else None,
        "run_id": run.run_id,
        "status": s["status"],
        "steps": s["step"],
        "final_loss": s.get("final_loss"),
        "eval_loss": s.get("eval_loss"),
        "eval_metric": s.get("eval_metric"),
        "metric_name": s.get("metric_name"),
        "baseline_loss": s.get("baseline_loss"),
        "solved": bool(s.get("solved")),
        "steps_to_solve": s.get("steps_to_solve"),
        "vanishing_ratio": s.get("vanishing_ratio"),
        "gradient_reach": s.get("gradient_reach"),
        "steps_per_s": s.get("steps_per_s"),
        "wall_s": s.get("wall_s"),
        "message": s.get("message") or None,
    }
    print(json.dumps({k: _json_number(v) for k, v in result.items()}))
    return 0 if s["status"] in ("finished", "stopped") else 1


def cmd_runs(args) -> int:
    table = RunStore(args.out).list()
    if args.json:
        print(table.to_json(orient="records", date_format="iso"))
    elif table.empty:
        print(f"no runs in {RunStore(args.out).root}", file=sys.stderr)
    else:
        print(table.to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="RNN Gradient Lab engine")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one model and save the run")
    add_config_arguments(t)
    t.add_argument("--out", default=None, help="runs directory (default $RNNLAB_RUNS_DIR or ./runs)")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.set_defaults(func=cmd_train)
    r = sub.add_parser("runs", help="list saved runs")
    r.add_argument("--out", default=None, help="runs directory")
    r.add_argument("--json", action="store_true", help="print JSON records")
    r.set_defaults(func=cmd_runs)
    e = sub.add_parser("settings", help="the RNNLAB_* environment settings and their values")
    e.add_argument("--markdown", action="store_true", help="print README's table of every setting")
    e.set_defaults(func=lambda a: settings.main(["--markdown"] if a.markdown else []))
    # Imported here, not optional: a broken sweep import must fail loudly, not make the
    # subcommand vanish (SciPy, loky: requirements.txt).
    from core.sweeps.cli import add_sweep_arguments, sweep_main

    s = sub.add_parser("sweep", help="success rate against sequence length")
    add_sweep_arguments(s)
    s.set_defaults(func=sweep_main)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RunError, settings.SettingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

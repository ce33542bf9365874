"""``python -m bench [--quick] [--only throughput,solve] [--direct] [--app] [--sweep]``

Prints tables (plain and Markdown) and writes the figures with the machine's load
to ``bench/results.json`` (``bench/results-quick.json`` with ``--quick``).
See BENCHMARKS.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from bench import env, external, solve, throughput

SECTIONS = ("throughput", "solve")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="reduced grid (H=64, T=50/100) and a 1000-step solve budget on adding")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run (default: {','.join(SECTIONS)})")
    p.add_argument("--direct", action="store_true",
                   help="also time the trainer probing every 50th / 25th step directly (H=64, T=100)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per time-to-solve run (default 1)")
    p.add_argument("--app", action="store_true", help="also run tests/e2e/measure.py (if present)")
    p.add_argument("--sweep", action="store_true", help="also time the sweep CLI with 1 and 2 workers")
    p.add_argument("--out", help="results file (default bench/results.json, or results-quick.json)")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")

    torch.set_num_threads(1)
    out_path = Path(args.out) if args.out else Path(__file__).parent / (
        "results-quick.json" if args.quick else "results.json")
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    # Sections not run this time keep their last figures (each section records the
    # command and the load it was measured with).
    try:
        result: dict = json.loads(out_path.read_text())
    except (OSError, ValueError):
        result = {}
    result.update({"command": command, "quick": args.quick, "machine": env.describe(),
                   "load_start": env.load()})
    print(f"# {result['command'].strip()}")
    print(f"torch {result['machine']['torch']}, {result['machine']['torch_threads']} torch thread, "
          f"{result['machine']['cores']} cores ({result['machine']['cpu']}); "
          f"{env.load_line(result['load_start'])}")
    print(f"LSTM time loops: {result['machine']['lstm_loops']}")

    def save():
        result["load_end"] = env.load()
        out_path.write_text(json.dumps(result, indent=1, default=float) + "\n")

    if "throughput" in only:
        print("\n## Training throughput (ms per step, medians of interleaved rounds; batch 64)")
        result["throughput"] = {"command": command, "load_start": env.load()}
        result["throughput"].update(throughput.run(quick=args.quick, direct=args.direct))
        result["throughput"]["load_end"] = env.load()
        print(f"({env.load_line(result['throughput']['load_end'])})\n")
        print(throughput.markdown(result["throughput"]))
        save()
    if "solve" in only:
        print("\n## Time to solve (core.train.Trainer, stop_when_solved, 1 torch thread)")
        result["solve"] = {"command": command, "load_start": env.load()}
        result["solve"].update(solve.run(quick=args.quick, seeds=args.seeds))
        result["solve"]["load_end"] = env.load()
        print(f"({env.load_line(result['solve']['load_end'])})\n")
        print(solve.markdown(result["solve"]))
        save()
    if args.app:
        print("\n## App figures (tests/e2e/measure.py)")
        result["app"] = {"command": command, "load_start": env.load(), **external.app()}
        save()
    if args.sweep:
        print("\n## Sweep scaling (python -m core sweep)")
        result["sweep"] = {"command": command, "load_start": env.load(), **external.sweep()}
        save()
    save()
    print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

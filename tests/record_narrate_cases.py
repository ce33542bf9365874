"""Record the probe summaries tests/test_narrate.py reads, from real short trainings.

    .venv/bin/python tests/record_narrate_cases.py      # ~3 min on 2 shared cores

Trains the Train page's presets with core.train.Trainer (as the app does; the RNN and
the GRU probed every 25 steps) and keeps, for each case the sentence must get right, the
first probe that shows it: its summary (core.probe.summarise, as the trainer computed
it) and the context the page adds (core.narrate.probe_context: the latest held-out
evaluation at or before the probe, the baseline, the step the run diverged at). Writes
tests/data/narrate_cases.json. Nothing in it is edited by hand.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.narrate import probe_context  # noqa: E402
from core.presets import EXPLODING, preset_config  # noqa: E402
from core.train import EvalRecord, ProbeRecord, StepRecord, Trainer  # noqa: E402

OUT = ROOT / "tests" / "data" / "narrate_cases.json"


def _json(v):
    return v if not isinstance(v, float) or math.isfinite(v) else str(v)


def train(preset: str, **changes) -> dict:
    config = preset_config(preset).replace(threads=1, **changes)
    trainer = Trainer(config)
    probes, evals, metrics = [], [], []
    for r in trainer.run():
        if isinstance(r, ProbeRecord):
            probes.append((r.step, r.summary))
        elif isinstance(r, EvalRecord):
            evals.append({"step": r.step, "loss": r.loss, "metric": r.metric, "solved": r.solved})
        elif isinstance(r, StepRecord):
            metrics.append({"step": r.step, "loss": r.loss})
    task = trainer.task
    return {"arch": config.arch, "probes": probes, "evals": pd.DataFrame(evals),
            "metrics": pd.DataFrame(metrics), "baseline": task.baseline_loss,
            "metric_name": task.metric_name}


def case(name: str, run: dict, pick) -> dict:
    """The first probe of ``run`` for which ``pick(summary, context)`` holds."""
    for step, summary in run["probes"]:
        context = probe_context(run["evals"], run["metrics"], step, run["baseline"],
                                run["metric_name"])
        if pick(summary, context):
            return {"case": name, "arch": run["arch"], "step": step,
                    "summary": {k: _json(v) for k, v in summary.items()},
                    "context": {k: _json(v) for k, v in context.items()}}
    raise SystemExit(f"no probe shows the case {name!r}")


def _r(s):
    return s["vanishing_ratio"]


def main() -> None:
    torch.set_num_threads(1)
    rnn = train("Vanilla RNN forgets (adding, T=50)")
    gru = train("GRU remembers", steps=700)
    lstm = train("LSTM remembers (same task)", steps=900)
    boom = train(EXPLODING, steps=40)
    T = 50
    cases = [
        case("rnn_vanished_at_init", rnn, lambda s, c: c["step"] == 0),
        case("rnn_unsolved_full_reach", rnn,
             lambda s, c: s["gradient_reach"] == T and not c.get("solved")),
        case("gru_5e-4_at_baseline", gru, lambda s, c: 1e-4 < _r(s) < 1e-3),
        case("gru_mostly_vanished_reach_46", gru,
             lambda s, c: _r(s) < 1e-3 and 0.8 * T <= s["gradient_reach"] < T and c["step"] > 100),
        case("gru_2e-3_at_baseline", gru, lambda s, c: 1e-3 <= _r(s) < 1e-2),
        case("gru_solved", gru, lambda s, c: c.get("solved")),
        case("lstm_open_unit_vanished_cell", lstm,
             lambda s, c: s.get("mean_f_max", 0) >= 0.99 and s.get("cell_ratio", 1) < 1e-6),
        case("lstm_below_baseline_unsolved", lstm,
             lambda s, c: not c.get("solved") and c.get("loss", 1) < 0.9 * c["baseline"]),
        case("lstm_solved", lstm, lambda s, c: c.get("solved")),
        case("exploding_at_init", boom, lambda s, c: c["step"] == 0),
        case("exploding_grows", boom, lambda s, c: math.isfinite(_r(s)) and _r(s) > 10
             and c["step"] > 0),
        case("exploding_nonfinite", boom, lambda s, c: not math.isfinite(_r(s))
             or s["gradient_reach"] == 0),
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

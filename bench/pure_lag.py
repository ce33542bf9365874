"""Pure lag and gate initialisation (issue 16): the measurements behind BENCHMARKS.md's
section of that name that the CLI cannot take by itself.

    python -m bench.pure_lag init --task recall --seq-len 100 lstm lstm:gate_init=chrono ...
    python -m bench.pure_lag train recall 100 0 lstm:forget_bias=5:bias_i=-5
    python -m bench.pure_lag lstm1997 60 0 --trunc --squash --bias-i stagger:-1:-4
    python -m bench.pure_lag runs runs/<run id> ... [--every 500]

The measuring tools (variants, bias edits, cell statistics, gradients at init) are in
:mod:`core.explain.purelag`, shared with the Explain page. A variant is written as in
sweeps, ``arch[:key=value...]`` (TrainConfig fields), plus
``bias_i`` / ``bias_f`` = V: set that gate's bias sum b_ih + b_hh to V after the model is
built (V in b_ih, b_hh zeroed), ``stagger:A:B`` for linspace(A, B) over the units, or
``default`` for torch's default init of those rows (the same seed), e.g.
``lstm:gate_init=chrono:bias_i=default`` is chrono's forget bias without its input bias.

* ``init``: at initialisation (hidden 32, 256 fresh sequences, seeds 0/1/2), the gradient
  reaching step 0 (cell and input), the cell's size and the share of saturated units
  (|tanh c| > 0.95) at the last step, the input gate on distractor steps; on temporal
  order also the gradient reaching the two marker inputs.
* ``train``: one training (hidden 32, batch 64, Adam 0.003, eval every 100 steps on 1000
  held-out sequences, stop when solved, 3000 steps unless ``--steps``) through
  core.train.Trainer, and the same statistics of the network at init and at the end;
  one JSON line.
* ``lstm1997``: the no-forget-gate LSTM on recall with the 1997 paper's ingredients, one
  at a time: the truncated gradient (the error at the gates' and cell input's net inputs
  is not sent back through h_{t−1}; only the cell carries it), the 1997 squashing
  (g = 4σ − 2, h = o ⊙ (2σ(c) − 1)) and negative input-gate biases; its own unroll and
  Adam loop, with the Trainer's data streams and held-out set.
* ``runs``: what training did to saved runs: metric, gradient reach and gate means by
  step, and the RNN's spectral radius or the carry gate's bias at init and at the end.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from core.config import TrainConfig
# The measuring tools live in core (the Explain page uses them too); this script drives them.
from core.explain.purelag import (  # noqa: F401 - re-exported for scripts that import them from here
    GATE_ROWS,
    SATURATED,
    cell_stats,
    edit_biases,
    init_gradients,
    lstm_gates,
    parse_variant,
)
from core.train import EVAL_SEED_OFFSET, Trainer, make_model, make_optimizer

BASE = dict(hidden_size=32, batch_size=64, lr=0.003, probe_every=0, eval_every=100,
            stop_when_solved=True, steps=3000)


def cmd_init(args) -> None:
    for variant in args.variants:
        rows = [init_gradients(args.task, args.seq_len, variant, s) for s in args.seeds]
        keys = [k for k in rows[0] if k != "state"]
        print(f"{args.task} T={args.seq_len} {variant} (state {rows[0]['state']}, seeds "
              f"{'/'.join(map(str, args.seeds))}): "
              + ", ".join(f"{k} {'/'.join(f'{r[k]:.2g}' for r in rows)}" for k in keys), flush=True)


def cmd_train(args) -> None:
    options, edits = parse_variant(args.variant)
    config = TrainConfig.from_dict({**BASE, "task": args.task, "seq_len": args.seq_len,
                                    "seed": args.seed, "steps": args.steps, **options})
    torch.set_num_threads(1)
    trainer = Trainer(config)
    edit_biases(trainer.model, config, edits)
    lstm = config.arch == "lstm"
    at_init = cell_stats(trainer.model, trainer.task) if lstm else {}
    t0 = time.perf_counter()
    evals = [(r.step, round(r.metric, 3)) for r in trainer.run() if r.kind == "eval"]
    print(json.dumps({
        "task": args.task, "seq_len": args.seq_len, "seed": args.seed, "variant": args.variant,
        "solved_at": trainer.solved_at, "steps": trainer.steps_done, "final_metric": evals[-1][1],
        "best_metric": max(m for _, m in evals), "init": at_init,
        "end": cell_stats(trainer.model, trainer.task) if lstm else {},
        "wall_s": round(time.perf_counter() - t0, 1),
        "curve": evals[:: max(1, len(evals) // 10)]}), flush=True)


def _unroll_1997(layer, x: torch.Tensor, trunc: bool, squash: bool):
    B, T, H = x.shape[0], x.shape[1], layer.hidden_size
    gx = nn.functional.linear(x, layer.weight_ih_l0, layer.bias_ih_l0)
    h, c = x.new_zeros(B, H), x.new_zeros(B, H)
    cs = []
    for t in range(T):
        h_in = h.detach() if trunc else h  # 1997: no error back through h_{t−1}
        pre = gx[:, t] + nn.functional.linear(h_in, layer.weight_hh_l0, layer.bias_hh_l0)
        pi, _, pg, po = pre.chunk(4, 1)
        i, o = torch.sigmoid(pi), torch.sigmoid(po)
        g = 4 * torch.sigmoid(pg) - 2 if squash else torch.tanh(pg)  # 1997: g ∈ [−2, 2]
        c = c + i * g  # f ≡ 1: the constant error carousel
        h = o * (2 * torch.sigmoid(c) - 1 if squash else torch.tanh(c))  # 1997: h ∈ [−1, 1]
        cs.append(c)
    return h, torch.stack(cs, 1)


def cmd_lstm1997(args) -> None:
    config = TrainConfig.from_dict({**BASE, "task": "recall", "seq_len": args.seq_len,
                                    "seed": args.seed, "steps": args.steps, "arch": "lstm",
                                    "no_forget_gate": True})
    torch.set_num_threads(1)
    task = config.make_task()
    model = make_model(config, task)
    if args.bias_i is not None:
        edit_biases(model, config, {"i": args.bias_i})
    optimizer = make_optimizer(config, model.parameters())
    generator = torch.Generator().manual_seed(config.seed)
    ex, ey = task.sample(config.eval_size,
                         torch.Generator().manual_seed(config.seed + EVAL_SEED_OFFSET))

    @torch.no_grad()
    def evaluate() -> tuple[float, dict]:
        h, c = _unroll_1997(model.recurrent, ex, args.trunc, args.squash)
        accuracy = float((model.readout(h).argmax(-1) == ey).float().mean())
        rms = c.pow(2).mean((0, 2)).sqrt()
        squashed = 2 * torch.sigmoid(c[:, -1]) - 1 if args.squash else torch.tanh(c[:, -1])
        return accuracy, {"c_rms_t1": round(float(rms[1]), 3), "c_rms_end": round(float(rms[-1]), 3),
                          "saturated_end": round(float((squashed.abs() > SATURATED).float().mean()), 3)}

    accuracy, at_init = evaluate()
    curve, solved_at, t0 = [(0, round(accuracy, 3))], None, time.perf_counter()
    for step in range(1, config.steps + 1):
        x, y = task.sample(config.batch_size, generator)
        optimizer.zero_grad(set_to_none=True)
        h, _ = _unroll_1997(model.recurrent, x, args.trunc, args.squash)
        nn.functional.cross_entropy(model.readout(h), y).backward()
        optimizer.step()
        if step % config.eval_every == 0:
            accuracy, _ = evaluate()
            curve.append((step, round(accuracy, 3)))
            if task.is_solved(accuracy):
                solved_at = step
                break
    accuracy, at_end = evaluate()
    print(json.dumps({
        "seq_len": args.seq_len, "seed": args.seed, "trunc": args.trunc, "squash": args.squash,
        "bias_i": args.bias_i, "solved_at": solved_at, "steps": step, "final_metric": round(accuracy, 3),
        "best_metric": max(a for _, a in curve), "init": at_init, "end": at_end,
        "wall_s": round(time.perf_counter() - t0, 1), "curve": curve[:: max(1, len(curve) // 10)]}),
        flush=True)


def cmd_runs(args) -> None:
    """What training did to saved runs (run directories of ``python -m core train``): the
    held-out metric, the gradient reach and the gate means at some steps; the recurrent
    weights' spectral radius (RNN) or the carry gate's bias (LSTM b_f, GRU b_z), init → end."""
    import pandas as pd
    from safetensors.torch import load_file

    for d in args.run_dirs:
        config = TrainConfig.from_dict(json.loads(open(f"{d}/config.json").read()))
        init = make_model(config, config.make_task()).recurrent
        end = load_file(f"{d}/model.safetensors")
        H = config.hidden_size
        if config.arch.startswith("rnn"):
            radius = [float(torch.linalg.eigvals(w.detach().double()).abs().max())
                      for w in (init.weight_hh_l0, end["recurrent.weight_hh_l0"])]
            weights = f"spectral radius of W_hh {radius[0]:.2f} -> {radius[1]:.2f}"
        else:
            b0 = (init.bias_ih_l0 + init.bias_hh_l0).detach()[H:2 * H]
            b1 = (end["recurrent.bias_ih_l0"] + end["recurrent.bias_hh_l0"])[H:2 * H]
            name = "b_z" if config.arch == "gru" else "b_f"
            weights = (f"{name} mean {b0.mean():.2f} -> {b1.mean():.2f}, "
                       f"max {b0.max():.2f} -> {b1.max():.2f}")
        evals = pd.read_parquet(f"{d}/evals.parquet").set_index("step")["metric"]
        summaries = pd.read_parquet(f"{d}/summaries.parquet").set_index("step")
        gates = pd.read_parquet(f"{d}/gates.parquet").groupby(["step", "gate"])["mean"].mean().unstack()
        steps = [s for s in summaries.index if s % args.every == 0]
        shown = [g for g in ("i", "f", "f_max", "z", "z_max") if g in gates.columns]
        print(f"{d.rstrip('/').split('/')[-1]} ({config.label()}, seed {config.seed}): {weights}")
        if config.arch == "lstm":
            task = config.make_task()
            trained = make_model(config, task)
            trained.load_state_dict(end)
            a, b = cell_stats(make_model(config, task), task), cell_stats(trained, task)
            print(f"  cell RMS at the last step {a['c_rms_end']:.3g} -> {b['c_rms_end']:.3g}, "
                  f"saturated {a['saturated_end']:.2f} -> {b['saturated_end']:.2f}")
        probes = pd.read_parquet(f"{d}/probes.parquet")
        h = probes[probes.quantity == "h"].pivot(index="step", columns="t", values="grad_norm")
        for s in steps:
            metric = evals.get(s, float("nan"))
            gate_text = ", ".join(f"{g} {gates.loc[s, g]:.2f}" for g in shown) if s in gates.index else ""
            at = "".join(f", |dl/dh_{t}|/|dl/dh_last| {h.loc[s, t] / h.loc[s, h.columns.max()]:.2g}"
                         for t in args.at if s in h.index)
            print(f"  step {s:5d}: metric {metric:.3f}, gradient reach {summaries.loc[s, 'gradient_reach']:.0f}"
                  + (f", {gate_text}" if gate_text else "") + at)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.pure_lag", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="gradients and cell statistics at initialisation")
    i.add_argument("--task", default="recall")
    i.add_argument("--seq-len", type=int, default=100)
    i.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    i.add_argument("variants", nargs="+")
    i.set_defaults(func=cmd_init)
    t = sub.add_parser("train", help="one training with bias edits and cell statistics")
    t.add_argument("task")
    t.add_argument("seq_len", type=int)
    t.add_argument("seed", type=int)
    t.add_argument("variant")
    t.add_argument("--steps", type=int, default=3000)
    t.set_defaults(func=cmd_train)
    n = sub.add_parser("lstm1997", help="no forget gate, with the 1997 paper's ingredients")
    n.add_argument("seq_len", type=int)
    n.add_argument("seed", type=int)
    n.add_argument("--trunc", action="store_true", help="the 1997 truncated gradient")
    n.add_argument("--squash", action="store_true", help="the 1997 squashing functions")
    n.add_argument("--bias-i", default=None, help="input-gate bias V or stagger:A:B")
    n.add_argument("--steps", type=int, default=3000)
    n.set_defaults(func=cmd_lstm1997)
    r = sub.add_parser("runs", help="what training did to saved runs")
    r.add_argument("run_dirs", nargs="+")
    r.add_argument("--every", type=int, default=500, help="show every Nth step (default 500)")
    r.add_argument("--at", type=lambda v: [int(t) for t in v.split(",")], default=[],
                   help="time steps t at which to show the h-gradient relative to the last step")
    r.set_defaults(func=cmd_runs)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

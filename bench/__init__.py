"""Benchmarks of RNN Gradient Lab (``python -m bench``; see BENCHMARKS.md).

Sections:
  throughput  training steps/s: torch.nn's fused module (the reference) vs the
              trainer with the hand-written BPTT probe (core.bptt) at the app's
              probe rates and on every step (bench/throughput.py)
  solve       wall time and steps until the held-out metric is solved, through
              core.train.Trainer (bench/solve.py)
  app, sweep  other engineers' measurements, run when their scripts exist
              (tests/e2e/measure.py, the core sweep CLI) (bench/external.py)
"""

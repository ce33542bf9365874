"""RNN Gradient Lab's engine: a plain library (no UI) for training small recurrent
networks on long-range toy tasks and measuring how the gradient flows back
through time and through each gate.

    from core import TrainConfig, Trainer
    for record in Trainer(TrainConfig(arch="lstm", task="adding", seq_len=50)).run():
        print(record)

Modules: tasks (toy tasks), cells and models (torch.nn-exact layers), probe
(per-step gradient norms), config (the validated config), train (the record-
yielding trainer), runs (the run store), jobs (background training with
snapshots), cli (``python -m core``).
"""

from core.config import ConfigError, TrainConfig, parse_config
from core.models import ARCHS, build_model
from core.probe import gradient_profile, gradient_reach, vanishing_ratio
from core.runs import RunStore
from core.tasks import TASK_NAMES, make_task
from core.train import Trainer

__all__ = [
    "ARCHS", "TASK_NAMES", "ConfigError", "RunStore", "TrainConfig", "Trainer",
    "build_model", "gradient_profile", "gradient_reach", "make_task", "parse_config",
    "vanishing_ratio",
]

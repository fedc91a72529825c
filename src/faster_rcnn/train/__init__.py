"""Training: the trainer every scheme drives, its parts, checkpoints and data parallelism.

:class:`Trainer` runs one stage (approximate joint training by default; the RPN-only and
alternating schemes give it other losses and parameters); :func:`save_model` /
:func:`load_model` write and read model files that carry their config;
:func:`init_distributed` joins a ``torchrun`` job.
"""

from .checkpoint import TrainingCheckpoint, load_model, read_model_config, save_model
from .distributed import DistributedContext, PeersLost, destroy_distributed, init_distributed
from .metrics import MetricsLogger, read_metrics
from .schedule import learning_rate
from .train_config import TrainConfig
from .trainer import LossFn, Trainer, detector_losses

__all__ = [
    "DistributedContext",
    "LossFn",
    "MetricsLogger",
    "PeersLost",
    "TrainConfig",
    "Trainer",
    "TrainingCheckpoint",
    "destroy_distributed",
    "detector_losses",
    "init_distributed",
    "learning_rate",
    "load_model",
    "read_metrics",
    "read_model_config",
    "save_model",
]

"""Training: the shared loop, its schedule, checkpoints, metrics and data parallelism.

:func:`train_stage` is the loop every scheme runs (:func:`train_joint` is the paper's
approximate joint training); :func:`save_model` / :func:`load_model` write and read model
files that carry their config; :func:`init_distributed` joins a ``torchrun`` job.
"""

from .checkpoint import TrainingCheckpoint, load_model, read_model_config, save_model
from .distributed import DistributedContext, destroy_distributed, init_distributed
from .joint import train_joint
from .loop import LossFn, TrainConfig, detector_losses, train_stage
from .metrics import MetricsLogger, read_metrics
from .schedule import learning_rate

__all__ = [
    "DistributedContext",
    "LossFn",
    "MetricsLogger",
    "TrainConfig",
    "TrainingCheckpoint",
    "destroy_distributed",
    "detector_losses",
    "init_distributed",
    "learning_rate",
    "load_model",
    "read_metrics",
    "read_model_config",
    "save_model",
    "train_joint",
    "train_stage",
]

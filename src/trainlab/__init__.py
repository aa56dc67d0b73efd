"""trainlab: a deep-learning training and optimization lab on PyTorch, driven by one YAML recipe."""
from .api import Run, evaluate, resume, train
from .errors import TrainlabError
from .recipe import Recipe, load_recipe
from .track.rundir import RunDir
from .train import Trainer

__all__ = ["Recipe", "Run", "RunDir", "Trainer", "TrainlabError", "evaluate", "load_recipe", "resume", "train"]
__version__ = "0.1.0"

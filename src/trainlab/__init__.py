"""trainlab: a deep-learning training and optimization lab on PyTorch, driven by one YAML recipe."""
from .errors import TrainlabError
from .recipe import Recipe, load_recipe
from .track.rundir import RunDir
from .train import Trainer

# imported last: `trainlab.train` must be the function, not the subpackage of the same name
from .api import LoadedRun, Run, evaluate, load_run, resume, train  # noqa: E402

__all__ = ["LoadedRun", "Recipe", "Run", "RunDir", "Trainer", "TrainlabError", "evaluate", "load_recipe", "load_run",
           "resume", "train"]
__version__ = "0.1.0"

"""The recipe language: the schema (schema.py), search spaces (search.py) and reading a recipe
with every name and option checked against the registries (load.py)."""
from .load import apply_overrides, check_monitor_names, check_recipe, load_recipe, monitors, parse_recipe, parse_space, read_yaml
from .schema import (Component, DataConfig, EarlyStoppingConfig, LossConfig, ModelConfig, OptimConfig, OutputConfig,
                     Recipe, ScheduleConfig, Section, TrainConfig)
from .search import Param, SearchSpace, set_path

__all__ = ["Component", "DataConfig", "EarlyStoppingConfig", "LossConfig", "ModelConfig", "OptimConfig",
           "OutputConfig", "Param", "Recipe", "ScheduleConfig", "SearchSpace", "Section", "TrainConfig",
           "apply_overrides", "check_monitor_names", "check_recipe", "load_recipe", "monitors", "parse_recipe", "parse_space", "read_yaml", "set_path"]

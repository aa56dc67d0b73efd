"""Tracking: the run directory, metrics log and plots."""
from .rundir import RunDir

__all__ = ["RunDir"]

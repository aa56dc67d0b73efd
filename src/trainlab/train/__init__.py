"""Training: the Trainer loop, callbacks and checkpoints."""
from ..build import resolve_device
from .trainer import Trainer

__all__ = ["Trainer", "resolve_device"]

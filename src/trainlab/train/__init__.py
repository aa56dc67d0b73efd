"""Training: the Trainer loop, callbacks and checkpoints."""
from .trainer import Trainer, resolve_device

__all__ = ["Trainer", "resolve_device"]

"""The event protocol every trainer callback speaks: the trainer calls these at fit start, every
`train.log_every` steps, at each epoch end and at fit end.

It lives below train/ and track/ so that trackers (track/) and callbacks (train/) share it without
track/ importing the training loop. `trainlab.train.callbacks.Callback` is this class.
"""
from __future__ import annotations

from typing import Any


class Callback:
    """Override the events you need; each gets the trainer (read its state, set `should_stop`)."""

    def on_fit_start(self, trainer) -> None: ...
    def on_step(self, trainer, logs: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer, logs: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this callback, so a resumed run goes on where it stopped."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

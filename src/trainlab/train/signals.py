"""SIGINT / SIGTERM while training: finish the step, write a checkpoint, then stop.

The first signal only sets a flag that the loop reads at the next optimizer-step boundary (a
Python attribute read: free). A second signal stops at once by raising from the handler; every
file writer cleans up after itself, so even then nothing is left half-written.
"""
from __future__ import annotations

import os
import signal
import threading

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(BaseException):
    """Training stopped on a signal. A BaseException, like KeyboardInterrupt, so no `except Exception` eats it.

    `exit_code` is 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells report it.
    """

    def __init__(self, signum: int, step: int, checkpoint: bool, failed: str | None = None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint and failed is None
        self.name = _NAMES.get(signum, f"signal {signum}")
        if failed is not None:  # the write was tried and failed: the checkpoints on disk are the earlier ones
            saved = (f"the checkpoint at step {step} could not be written ({failed}); "
                     "a resume starts from the last checkpoint written before it")
        elif checkpoint:
            saved = f"checkpoint written at step {step}"
        else:
            saved = "no checkpoint written (stopped at once)"
        super().__init__(f"interrupted by {self.name} at step {step}; {saved}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_noted: list[int] = []  # a signal some caller saw before a Trainer's handlers were installed (see note)


def note(signum: int) -> None:
    """Remember `signum` for the next `GracefulSignals.install`. A handler that raises
    KeyboardInterrupt (Python's default for SIGINT) can have its exception swallowed when the signal
    lands inside a `__del__` or weakref callback ("Exception ignored in ..."); a caller whose handler
    notes the signal first (tune's worker) still gets the stop at the next step boundary."""
    if not _noted:
        _noted.append(signum)


def take_noted() -> int | None:
    """The signal `note` kept, if any; it is cleared."""
    return _noted.pop() if _noted else None


class GracefulSignals:
    """The two-stage handlers, installed for the length of `Trainer.fit` (main thread only; elsewhere a no-op)."""

    def __init__(self):
        self.signum: int | None = None
        self.step = 0  # kept current by the trainer, for the message of an immediate stop
        self._old: dict[int, object] = {}

    def install(self) -> None:
        self.signum = take_noted()  # a Ctrl-C that came before fit, its KeyboardInterrupt maybe swallowed
        if threading.current_thread() is threading.main_thread():
            for s in _NAMES:
                self._old[s] = signal.signal(s, self._handle)

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise TrainingInterrupted(signum, self.step, checkpoint=False)
        self.signum = signum
        # os.write, not print: a handler that prints can re-enter a half-done print and fail
        os.write(2, f"\ntrainlab: {_NAMES.get(signum, signum)} received: finishing the current step and "
                    "writing a checkpoint (send it again to stop at once)\n".encode())

    @property
    def pending(self) -> bool:
        return self.signum is not None

    def raise_if_pending(self, step: int, saved: bool, failed: str | None = None) -> None:
        """Called right after a checkpoint was written at `step` (`saved` False: the trainer has no run dir;
        `failed`: its write failed, and why)."""
        if self.signum is not None:
            raise TrainingInterrupted(self.signum, step, checkpoint=saved, failed=failed)

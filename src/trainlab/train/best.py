"""Which epoch's weights are `checkpoints/best`, and why.

A discrete metric (accuracy, top-k accuracy, precision/recall/F1) on a small validation split
moves in steps of one sample: on 46 samples, 0.978 is 45 right, and several epochs — an
under-trained early one among them — often share it or differ by a single sample. Taking the
first such epoch picks by accident. So an epoch's monitored value counts as tied with the best
value seen so far when it is within the metric's resolution (one validation sample's worth,
1/n, for a discrete metric; exact equality for a continuous one), and among tied epochs the
lower validation loss wins. An epoch becomes the best when it is better by more than that
resolution, or tied and of lower validation loss, or tied while the current pick is no longer
within the resolution of the best value seen (the best value rose): so the pick is always
within one sample of the best value any epoch reached.

`Selection` holds the state (a plain dict in the trainer's checkpoint state, so it survives
resume) and `reason()` says it in words for `trainlab runs`, the report and env.json.
"""
from __future__ import annotations

import math
from typing import Any

from ..metrics import higher_is_better

# metrics that count samples: their values move in steps of (about) one sample over the split
DISCRETE = ("accuracy", "precision", "recall", "f1")
TIEBREAK = "val.loss"


def resolution(monitor: str, samples: int | None) -> float:
    """How far apart two values of `monitor` may be and still count as a tie: one sample's worth
    (1/samples) for a discrete validation metric, else 0 (exact equality)."""
    split, _, name = monitor.partition(".")
    discrete = split == "val" and any(name == d or name.startswith(d + "_") or
                                      (name.startswith("top") and name.endswith("_accuracy")) for d in DISCRETE)
    return 1.0 / samples if discrete and samples else 0.0


class Selection:
    """The best-epoch choice of one run: `consider(logs)` after each validated epoch."""

    def __init__(self, monitor: str, samples: int | None = None):
        self.monitor, self.samples = monitor, samples
        self.tolerance = resolution(monitor, samples)
        self.sign = 1.0 if higher_is_better(monitor) else -1.0
        self.epoch: int | None = None        # the pick
        self.value: float | None = None      # its monitored value
        self.loss: float | None = None       # its val.loss (the tie-breaker), when logged
        self.top: float | None = None        # the best monitored value any epoch reached
        self.how = ""                        # "better" or "tie" (won on val.loss)

    def _tied(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.tolerance + 1e-12 * max(abs(a), abs(b), 1.0)

    def consider(self, logs: dict[str, Any]) -> bool:
        """Whether the epoch of `logs` becomes the best (then the state follows it)."""
        value = logs.get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.epoch is None and value is not None  # a first epoch of NaN is still a checkpoint
        value, loss = float(value), logs.get(TIEBREAK)
        loss = None if loss is None or math.isnan(float(loss)) else float(loss)
        if self.epoch is None or self.value is None or math.isnan(self.value):
            return self._take(logs, value, loss, "better")
        top = self.top if self.top is not None else self.value
        if self.sign * (value - top) > 0 and not self._tied(value, top):
            return self._take(logs, value, loss, "better")  # better beyond the resolution
        if not self._tied(value, top):
            self._raise_top(value)
            return False
        pick_in_reach = self._tied(self.value, max(top, value) if self.sign > 0 else min(top, value))
        lower_loss = loss is not None and (self.loss is None or loss < self.loss)
        if lower_loss or not pick_in_reach:
            return self._take(logs, value, loss, "tie")
        self._raise_top(value)
        return False

    def _raise_top(self, value: float) -> None:
        if self.top is None or self.sign * (value - self.top) > 0:
            self.top = value

    def _take(self, logs: dict[str, Any], value: float, loss: float | None, how: str) -> bool:
        self._raise_top(value)
        self.epoch, self.value, self.loss, self.how = int(logs.get("epoch", 0)), value, loss, how
        return True

    def reason(self, history: list[dict[str, Any]] | None = None) -> str:
        """E.g. "epoch 17 — val.accuracy 0.978 (tied with epochs 1, 5; 2 more epochs within one
        validation sample (1/46); lowest val.loss 0.071)"; `history`: the epoch logs, to name the ties."""
        if self.epoch is None or self.value is None:
            return ""
        head = f"epoch {self.epoch} — {self.monitor} {self.value:.4g}"
        others = [(int(h["epoch"]), float(h[self.monitor])) for h in history or []
                  if h.get("epoch") != self.epoch and isinstance(h.get(self.monitor), (int, float))]
        exact = [e for e, v in others if v == self.value]
        near = [e for e, v in others if v != self.value and self._tied(v, self.value)]
        if not exact and not near:
            return f"{head} (the {'highest' if self.sign > 0 else 'lowest'})"
        parts = []
        if exact:
            named = ", ".join(map(str, exact[:6])) + (f" and {len(exact) - 6} more" if len(exact) > 6 else "")
            parts.append(f"tied with epoch{'s' if len(exact) > 1 else ''} {named}")
        if near:
            what = (f"{len(near)} {'more ' if exact else ''}epochs" if len(near) > 3 else
                    f"epoch{'s' if len(near) > 1 else ''} {', '.join(map(str, near))}")
            parts.append(f"{what} within one validation sample (1/{self.samples})")
        loss = f"lowest {TIEBREAK} {self.loss:.4g}" if self.loss is not None else "the first of them"
        return f"{head} ({'; '.join(parts)}; {loss})"

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "samples": self.samples, "tolerance": self.tolerance, "epoch": self.epoch,
                "value": self.value, "loss": self.loss, "top": self.top, "how": self.how}

    def load_state_dict(self, state: dict[str, Any] | None, best: float | None = None) -> None:
        """`state` from `state_dict`; a checkpoint from before selections were kept has only the
        best value (`best`): that value becomes the pick, of unknown epoch and loss."""
        if state:
            for k in ("epoch", "value", "loss", "top", "how"):
                setattr(self, k, state.get(k))
        elif best is not None:
            self.epoch, self.value, self.top, self.loss, self.how = 0, float(best), float(best), None, "better"

    def summary(self, history: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """What env.json's `best` holds: monitor, epoch, value, val.loss and the reason in words."""
        if self.epoch is None:
            return None
        return {"monitor": self.monitor, "epoch": self.epoch, "value": self.value, TIEBREAK: self.loss,
                "tolerance": self.tolerance, "reason": self.reason(history)}

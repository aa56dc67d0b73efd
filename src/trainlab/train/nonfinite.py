"""The non-finite guard: notices an inf/NaN loss or gradient norm and decides what happens next.

`train.on_nonfinite` picks the policy:
  skip      skip the bad step (no optimizer update); after `nonfinite_skips` bad steps in a row,
            roll back; after `nonfinite_rollbacks` rollbacks, stop.      (the default)
  rollback  roll back at the first bad step; after `nonfinite_rollbacks` rollbacks, stop.
  stop      stop at the first bad step.
A rollback reloads the newest complete checkpoint and halves the learning rate.

Where it looks: on the CPU a step's verdict is read at once, because reading a CPU tensor is not a
device sync (~0.5 µs); so a bad step is caught before the optimizer applies it. On an accelerator,
reading it every step would stall the device, so the flag accumulates on the device and is read
only at the loop's existing sync points (every `log_every` steps, before each checkpoint); by then
the bad update is applied, so there the policy can only roll back or stop.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import TrainlabError


class NonFiniteError(TrainlabError):
    """Training met a non-finite loss or gradient and the policy says stop."""


class Rollback(Exception):
    """Raised inside the loop after the trainer went back to its last good checkpoint."""


class NonFiniteGuard:
    def __init__(self, policy: str = "skip", max_skips: int = 3, max_rollbacks: int = 1, immediate: bool = True):
        self.policy, self.max_skips, self.max_rollbacks, self.immediate = policy, max_skips, max_rollbacks, immediate
        self.consecutive = 0    # bad steps in a row
        self.skipped = 0        # bad steps skipped in all
        self.rollbacks = 0
        self.lr_scale = 1.0     # product of the LR factors of all rollbacks so far
        self.batch_ok = True    # the last batch's loss was finite (always True when not immediate)
        self._step_ok = True    # every batch of the step being accumulated was finite
        self._last_ok = True    # verdict of the last optimizer step
        self._what = "loss"
        self._flag: torch.Tensor | None = None  # deferred mode: any non-finite since the last poll
        self.value = math.nan   # immediate mode: the last batch's loss as a float

    # --- in the hot loop -------------------------------------------------------------------------
    def watch(self, loss: torch.Tensor) -> bool:
        """Every batch: note whether the loss is finite; returns whether it may count in the epoch's sums."""
        if self.immediate:
            # a CPU read, not a device sync; .item() costs 0.5 µs where a tensor isfinite() costs 10
            self.value = loss.item()  # the trainer's CPU loss sum adds this float: no kernel of its own
            self.batch_ok = math.isfinite(self.value)
            if not self.batch_ok:
                self._step_ok, self._what = False, "loss"
        else:
            bad = ~torch.isfinite(loss.detach())
            self._flag = bad if self._flag is None else self._flag | bad
        return self.batch_ok

    def step_ok(self, grad_norm: torch.Tensor | None = None) -> bool:
        """At an optimizer step: may the update be applied? `grad_norm` is the norm clipping computed."""
        ok = self._step_ok
        if grad_norm is not None:
            if self.immediate:
                if ok and not math.isfinite(grad_norm.item()):
                    ok, self._what = False, "gradient"
            else:
                bad = ~torch.isfinite(grad_norm)
                self._flag = bad if self._flag is None else self._flag | bad
        self._step_ok, self._last_ok = True, ok
        return ok

    # --- at step boundaries, on the host ----------------------------------------------------------
    def decide(self, sync_point: bool) -> tuple[str, str] | None:
        """After an optimizer step: None, or (action, what) for a bad step; action is skip/rollback/stop."""
        if self.immediate:
            if self._last_ok:
                self.consecutive = 0
                return None
            self.consecutive += 1
            action = self.escalate(can_skip=True)
            if action == "skip":
                self.skipped += 1
            return action, self._what
        if sync_point and self.poll():
            return self.escalate(can_skip=False), "loss or gradient"
        return None

    def poll(self) -> bool:
        """Deferred mode: read the device flag (a sync point); True if something was non-finite since."""
        if self._flag is None:
            return False
        bad, self._flag = bool(self._flag), None
        return bad

    def escalate(self, can_skip: bool) -> str:
        """The action the policy asks for now: skip while allowed, then rollback while allowed, then stop."""
        if self.policy == "skip" and can_skip and self.consecutive <= self.max_skips:
            return "skip"
        if self.policy != "stop" and self.rollbacks < self.max_rollbacks:
            return "rollback"
        return "stop"

    def after_rollback(self) -> None:
        self.rollbacks += 1
        self.consecutive = 0
        self._flag = None

    def state_dict(self) -> dict[str, Any]:
        return {"consecutive": self.consecutive, "skipped": self.skipped, "rollbacks": self.rollbacks,
                "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.consecutive, self.skipped, self.rollbacks = state["consecutive"], state["skipped"], state["rollbacks"]
        self.lr_scale = float(state.get("lr_scale", 1.0))


def weights_finite(model: torch.nn.Module) -> bool:
    """Every parameter and buffer is finite (one sync; called only before writing a checkpoint).
    Tensor subclasses (torchao's int8 weights, integers by construction) are not checked."""
    flags = [torch.isfinite(t).all() for t in (*model.parameters(), *model.buffers())
             if t.is_floating_point() and type(t) in (torch.Tensor, torch.nn.Parameter)]
    return bool(torch.stack(flags).all()) if flags else True


_LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")


def scale_lr(optimizer: torch.optim.Optimizer, schedule: Any, factor: float) -> float:
    """Multiply the learning rate by `factor` for the rest of the run, whatever the schedule.

    A schedule computes the LR from its `base_lrs` (LambdaLR, cosine), from the group's
    initial/max/min LR (OneCycleLR) or from the group's current LR (chainable ones): scale them all.
    """
    for g in optimizer.param_groups:
        for k in _LR_KEYS:
            if isinstance(g.get(k), float):
                g[k] *= factor
    stack = [schedule]
    while stack:
        s = stack.pop()
        if s is None:
            continue
        for attr in ("base_lrs", "_last_lr"):
            if isinstance(getattr(s, attr, None), list):
                setattr(s, attr, [v * factor if isinstance(v, float) else v for v in getattr(s, attr)])
        stack += list(getattr(s, "_schedulers", []))
    return float(optimizer.param_groups[0]["lr"])

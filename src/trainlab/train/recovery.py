"""What the trainer does when something goes wrong: a non-finite step, a rollback, a resume.

All three are the trainer's `state_dict()` / `load_state_dict()` applied to a checkpoint folder
chosen by `newest_checkpoint` (the newest complete one; damaged ones are skipped). Each function
takes the Trainer (trainer.py) that calls it.
"""
from __future__ import annotations

from typing import Any

from ..errors import RunDirError
from .checkpoint import newest_checkpoint
from .nonfinite import NonFiniteError, Rollback, scale_lr

LR_FACTOR = 0.5  # each rollback halves the learning rate


def handle_nonfinite(trainer, action: str, what: str) -> None:
    """Log and show a non-finite event, then act: skip (already done), rollback (raises Rollback), stop."""
    g = trainer.guard
    text = {"skip": f"step skipped ({g.consecutive} in a row, at most {g.max_skips})",
            "rollback": f"rolling back to the last good checkpoint with the LR x{LR_FACTOR} "
                        f"(rollback {g.rollbacks + 1} of {g.max_rollbacks})",
            "stop": "stopping"}[action]
    trainer._event({"split": "event", "event": "nonfinite", "epoch": trainer.epoch, "step": trainer.step,
                    "what": what, "action": action, "policy": g.policy},
                   f"non-finite {what} at step {trainer.step} (epoch {trainer.epoch + 1}): {text}")
    if action == "rollback":
        rollback(trainer)
    if action == "stop":
        where = _last_good(trainer)
        raise NonFiniteError(f"non-finite {what} at step {trainer.step}; stopped (train.on_nonfinite: {g.policy}, "
                             f"{g.skipped} steps skipped, {g.rollbacks} rollbacks){where}. Try a lower optim.lr "
                             "or train.grad_clip")


def _last_good(trainer) -> str:
    if trainer.run_dir is None:
        return ""
    trainer.checkpoints_on_disk(raise_errors=False)
    folder, _ = newest_checkpoint(trainer.run_dir.path / "checkpoints")
    return f"; the last good checkpoint is {folder}" if folder is not None else ""


def rollback(trainer) -> None:
    """Go back to the newest complete checkpoint, lower the LR, and raise Rollback to restart the loop there."""
    folder = None
    if trainer.run_dir is not None:
        trainer.checkpoints_on_disk()
        folder, _ = newest_checkpoint(trainer.run_dir.path / "checkpoints")
    if folder is None:
        raise NonFiniteError(f"non-finite values at step {trainer.step} and no checkpoint to roll back to "
                             "(a trainer without a run directory writes none)")
    from_step, events = trainer.step, list(trainer._events)
    state = trainer.load_checkpoint(folder, guard=False)  # cuts metrics.jsonl back to the checkpoint
    g = trainer.guard
    g.after_rollback()
    # the LR scale is part of the checkpoint's guard state: scale relative to it, so rollbacks compound
    saved_scale = float(state["guard"].get("lr_scale", 1.0))
    g.lr_scale *= LR_FACTOR
    lr = scale_lr(trainer.optimizer, trainer.schedule, g.lr_scale / saved_scale)
    trainer._events = []
    for record in events:  # the events since that checkpoint were cut with the rest: write them again
        trainer._events.append(record)
        trainer._log(record)
    trainer._event({"split": "event", "event": "rollback", "epoch": trainer.epoch, "step": trainer.step,
                    "from_step": from_step, "checkpoint": folder.name, "lr": lr},
                   f"rolled back from step {from_step} to checkpoints/{folder.name} (step {trainer.step}); "
                   f"LR now {lr:.3g}")
    raise Rollback


def resume_latest(trainer) -> dict[str, Any]:
    """Restore the trainer from its run directory's newest complete checkpoint; returns what was used.

    Damaged or incomplete checkpoints are skipped with a warning. With no checkpoint at all (the
    run died before its first one) training starts again from step 0; with only damaged ones it
    is an error, since starting over would silently discard them.
    """
    root = trainer.run_dir.path / "checkpoints"
    folder, skipped = newest_checkpoint(root)
    notes = [f"{f.name}: {reason}" for f, reason in skipped]
    for note in notes:
        trainer._say(f"warning: skipped checkpoint {note}")
    if folder is None:
        if skipped:
            raise RunDirError(f"{root}: no complete checkpoint to resume from ({'; '.join(notes)}); "
                              "remove the folder to train again from the start")
        trainer._say("warning: no checkpoint yet: training again from step 0")
        trainer.run_dir.truncate_metrics(0)
        return {"checkpoint": None, "step": 0, "epoch": 0, "skipped": notes}
    trainer.load_checkpoint(folder)
    trainer._say(f"resuming from checkpoints/{folder.name}: step {trainer.step}, "
                 f"epoch {trainer.epoch + 1} (batch {trainer.loader.position} of {len(trainer.loader)})")
    return {"checkpoint": folder.name, "step": trainer.step, "epoch": trainer.epoch, "skipped": notes}

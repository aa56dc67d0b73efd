"""The training accuracy's running count, without a kernel per step.

Counting correct predictions every step costs four small kernels (argmax, eq, sum, add): on two
CPU threads ~45 µs of a ~750 µs MLP step, more than anything else the loop adds to a bare
forward-backward-step. Instead each step's outputs are kept (their argmax when they are large,
e.g. a language model's (B, T, vocab) logits) and compared with the targets in one batch every
`FLUSH_EVERY` steps and whenever the count is read. The count is an integer, so where the flushes
fall never changes it: a resumed run counts exactly as an uninterrupted one.
"""
from __future__ import annotations

import torch

FLUSH_EVERY = 64          # steps kept at most: bounds the memory held
KEEP_LOGITS = 1 << 16     # outputs up to this many elements are kept whole, larger ones as their argmax


class RunningCorrect:
    def __init__(self, count: torch.Tensor):
        self.count = count  # a long scalar on the training device
        self._logits: list[torch.Tensor] = []
        self._preds: list[torch.Tensor] = []
        self._ys_logits: list[torch.Tensor] = []
        self._ys_preds: list[torch.Tensor] = []

    def add(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """One batch: `out` (..., classes) against class indices `y` (...). No kernel runs here
        unless the outputs are large."""
        out = out.detach()
        if self._logits and self._logits[0].shape[-1] != out.shape[-1]:
            self.flush()  # logits are concatenated: keep one width at a time
        if out.numel() <= KEEP_LOGITS:
            self._logits.append(out.reshape(-1, out.shape[-1]))
            self._ys_logits.append(y.reshape(-1))
        else:
            self._preds.append((out.argmax(-1) if out.shape[-1] > 1 else (out[..., 0] > 0).long()).reshape(-1))
            self._ys_preds.append(y.reshape(-1))
        if len(self._logits) + len(self._preds) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> torch.Tensor:
        """Add the kept batches to the count (a few kernels, no device sync) and return the count."""
        if self._logits:
            logits = torch.cat(self._logits)
            # one logit (a two-class model under bce): class 1 where it is positive
            preds = logits.argmax(-1) if logits.shape[-1] > 1 else (logits[:, 0] > 0).long()
            self.count.add_((preds == torch.cat(self._ys_logits)).sum())
        if self._preds:
            self.count.add_((torch.cat(self._preds) == torch.cat(self._ys_preds)).sum())
        self._logits, self._preds, self._ys_logits, self._ys_preds = [], [], [], []
        return self.count

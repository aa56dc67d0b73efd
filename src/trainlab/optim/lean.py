"""The lean optimizer step: PyTorch's own fused SGD/Adam/AdamW kernels, called without the
per-step Python wrapper around them.

`torch.optim.SGD(fused=True).step()` spends most of its time outside the kernel: the profiling
hook, grad-mode switching, `_init_group`, grouping the tensors by device and dtype. For a small
model that is most of the step: on the 784-256-10 MLP at batch 64 on 2 CPU cores, `step()` plus
`zero_grad()` took ~200 µs of a ~750 µs training step, the fused kernel ~95 µs of it
(docs/performance.md). `LeanStep` gathers the same lists from the optimizer's own parameter groups
and state and calls the same kernel, so the update, the state and `state_dict()` are the
optimizer's, bit for bit (tests/test_optim_lean.py: eight configurations with schedules, a reloaded
state, and whole trainer runs with and without it).

It steps in only where that is exactly what `step()` would do, and returns False otherwise so the
caller uses `step()`:
  - the optimizer is exactly torch.optim.SGD, Adam or AdamW, built with fused=True;
  - the kernels it calls exist with the arguments it passes (checked once per process against their
    registered schemas, `kernels_match`), and the optimizer internals it reads are there. They are
    private to PyTorch: the bit-identity tests ran on torch 2.13 (pyproject.toml pins it); on any
    other build where they differ the lean step stays off, says so in one debug line on the
    "trainlab" logger, and every step goes through `step()`;
  - no step hooks (the optimizer's or the global ones), no GradScaler attributes, no closure (the
    trainer does not call it at all in fp16, where torch's GradScaler steps the optimizer);
  - every parameter with a gradient already has its state (the first step creates it, so the first
    step of a run, and of any newly trainable parameter, goes through `step()`);
  - per group: one device and dtype, dense gradients, a float learning rate and betas, and for
    Adam neither `capturable` nor `differentiable`.
`train.lean_step: false` turns it off.
"""
from __future__ import annotations

import functools
import logging

import torch
from torch.optim import SGD, Adam, AdamW
from torch.optim import optimizer as _optimizer_module

from .optimizers import optimizer_capabilities

log = logging.getLogger("trainlab")

# the kernel family of each `fused_kernel` an optimizer declares where it is registered (optim/__init__.py)
_FAMILY = {"sgd": "sgd", "adam": "adam", "adamw": "adam"}
# The private kernels each kind calls, with the signature they have in torch 2.13 (`aten::` schema:
# name:type, `*` before the keyword-only ones); the calls below pass exactly these arguments.
_ADAM = ("self:List[Tensor] grads:List[Tensor] exp_avgs:List[Tensor] exp_avg_sqs:List[Tensor] "
         "max_exp_avg_sqs:List[Tensor] state_steps:List[Tensor] * lr:float beta1:float beta2:float "
         "weight_decay:float eps:float amsgrad:bool maximize:bool grad_scale:Optional[Tensor] found_inf:Optional[Tensor]")
KERNELS = {
    "sgd": {"_fused_sgd_": "self:List[Tensor] grads:List[Tensor] momentum_buffer_list:List[Tensor] * "
                           "weight_decay:float momentum:float lr:float dampening:float nesterov:bool maximize:bool "
                           "is_first_step:bool grad_scale:Optional[Tensor] found_inf:Optional[Tensor]"},
    "adam": {"_fused_adam_": _ADAM, "_fused_adamw_": _ADAM},
}
# torch.optim internals read besides: the global step hooks (module) and each optimizer's own (instance)
_MODULE_INTERNALS = ("_global_optimizer_pre_hooks", "_global_optimizer_post_hooks")
_OPTIMIZER_INTERNALS = ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks")


def kernel_signature(name: str) -> str | None:
    """`torch.<name>`'s registered signature in KERNELS' notation; None if torch has no such kernel."""
    if not callable(getattr(torch, name, None)):
        return None
    try:
        schema = getattr(torch.ops.aten, name).default._schema
    except (AttributeError, RuntimeError):
        return None
    parts, star = [], False
    for a in schema.arguments:
        if a.kwarg_only and not star:
            parts.append("*")
            star = True
        parts.append(f"{a.name}:{a.type}")
    return " ".join(parts)


@functools.cache
def kernels_match(kind: str) -> bool:
    """Whether this torch has the kernels and internals the lean step of `kind` (sgd, adam) relies on,
    as it has them in torch 2.13. Checked once per process and kind (a few schema reads); a mismatch
    is one debug line on the "trainlab" logger."""
    problems = []
    for name, expected in KERNELS[kind].items():
        got = kernel_signature(name)
        if got != expected:
            problems.append(f"torch.{name} " + ("is missing" if got is None else f"takes ({got})"))
    missing = [n for n in _MODULE_INTERNALS if not isinstance(getattr(_optimizer_module, n, None), dict)]
    probe = SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    missing += [n for n in _OPTIMIZER_INTERNALS if not isinstance(getattr(probe, n, None), dict)]
    if not callable(getattr(torch._C, "_set_grad_enabled", None)):
        missing.append("torch._C._set_grad_enabled")
    problems += [f"{n} is missing" for n in missing]
    if problems:
        log.debug("lean step off for %s (torch %s): %s; optimizer.step() takes every step", kind,
                  torch.__version__, "; ".join(problems))
    return not problems


def _global_hooks() -> bool:
    return bool(_optimizer_module._global_optimizer_pre_hooks or _optimizer_module._global_optimizer_post_hooks)


class LeanStep:
    def __init__(self, optimizer: torch.optim.Optimizer, enabled: bool = True):
        self.optimizer = optimizer
        declared = optimizer_capabilities(optimizer).fused_kernel
        # exactly torch's class, never a subclass: a subclass may change what step() does
        kind = _FAMILY.get(declared) if type(optimizer) in (SGD, Adam, AdamW) else None
        fused = all(g.get("fused") for g in optimizer.param_groups)
        self.decoupled = declared == "adamw"  # AdamW: weight decay decoupled from the gradient
        self.kind = kind if enabled and fused and kind is not None and kernels_match(kind) else None
        self._uniform: dict[int, tuple[int, bool]] = {}  # id(group) -> (len(params), one device and dtype)

    @property
    def active(self) -> bool:
        return self.kind is not None

    def step(self) -> bool:
        """One optimizer step through the fused kernel; False (and nothing changed) where `step()` must run."""
        opt = self.optimizer
        if self.kind is None or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks or _global_hooks():
            return False
        if getattr(opt, "grad_scale", None) is not None or getattr(opt, "found_inf", None) is not None:
            return False
        gather = self._sgd_calls if self.kind == "sgd" else self._adam_calls
        calls = []
        for group in opt.param_groups:  # gather every group first: a refusal must leave nothing applied
            found = self._params_with_grads(group)
            if found is None:
                return False
            if not found[0]:  # no gradients in this group: nothing to update
                continue
            call = gather(group, *found)
            if call is None:
                return False
            calls.append(call)
        grad_was = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)  # what step()'s no_grad does, without the context manager
        try:
            for fn, args, kwargs in calls:
                fn(*args, **kwargs)
        finally:
            torch._C._set_grad_enabled(grad_was)
        opt._opt_called = True  # what the LR scheduler's wrapper around step() records
        return True

    def zero_grad(self) -> None:
        """`zero_grad(set_to_none=True)` without the hooks and profiling around it."""
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                p.grad = None

    # --- per group: the parameters with gradients, then (kernel, args, kwargs), or None to refuse -------
    def _params_with_grads(self, group) -> tuple[list, list] | None:
        params, grads = [], []
        for p in group["params"]:
            g = p.grad
            if g is not None:
                if g.is_sparse:
                    return None
                params.append(p)
                grads.append(g)
        if params and not self._one_device_dtype(group):
            return None
        return params, grads

    def _one_device_dtype(self, group) -> bool:
        ps = group["params"]
        known = self._uniform.get(id(group))
        if known is None or known[0] != len(ps):
            first = ps[0]
            known = (len(ps), all(p.device == first.device and p.dtype == first.dtype for p in ps))
            self._uniform[id(group)] = known
        return known[1]

    def _sgd_calls(self, group, params: list, grads: list):
        momentum, bufs, state = group["momentum"], [], self.optimizer.state
        if momentum != 0:
            for p in params:
                s = state.get(p)
                buf = s.get("momentum_buffer") if s else None
                if buf is None:  # the first step allocates the buffers: leave it to step()
                    return None
                bufs.append(buf)
        lr = group["lr"]
        if isinstance(lr, torch.Tensor):
            return None
        return (torch._fused_sgd_, (params, grads, bufs),
                dict(weight_decay=group["weight_decay"], momentum=momentum, lr=lr, dampening=group["dampening"],
                     nesterov=group["nesterov"], maximize=group["maximize"], is_first_step=False))

    def _adam_calls(self, group, params: list, grads: list):
        if group["capturable"] or group["differentiable"]:
            return None
        lr, (beta1, beta2) = group["lr"], group["betas"]
        if any(isinstance(v, torch.Tensor) for v in (lr, beta1, beta2)):
            return None
        amsgrad, state = group["amsgrad"], self.optimizer.state
        exp_avgs, exp_avg_sqs, max_sqs, steps = [], [], [], []
        for p in params:
            s = state.get(p)
            if not s or "step" not in s:  # the first step creates the moments: leave it to step()
                return None
            exp_avgs.append(s["exp_avg"])
            exp_avg_sqs.append(s["exp_avg_sq"])
            steps.append(s["step"])
            if amsgrad:
                max_sqs.append(s["max_exp_avg_sq"])
        decoupled = group.get("decoupled_weight_decay", self.decoupled)
        kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_

        def run(*args, **kwargs):
            torch._foreach_add_(steps, 1)  # as torch.optim's fused Adam: the kernel reads the new count
            kernel(*args, **kwargs)
        return (run, (params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps),
                dict(amsgrad=amsgrad, lr=lr, beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                     eps=group["eps"], maximize=group["maximize"], grad_scale=None, found_inf=None))

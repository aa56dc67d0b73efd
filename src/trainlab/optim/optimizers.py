"""Optimizer factories over maintained implementations: PyTorch's, lion-pytorch's and schedulefree's.

Every factory takes the parameter groups built by `groups.param_groups` (keys: params, param_names,
lr, weight_decay, lr_mult) plus its own options, which are the recipe's `optim.*` keys. PyTorch's
fused kernel is used where it has one for the optimizer and device (on CPU a fused AdamW step is
~2.5x faster than the foreach or for-loop one), its foreach kernel otherwise.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import Literal

import torch
from torch import nn
from torch.optim.optimizer import _device_dtype_check_for_fused

from ..errors import RecipeError
from .groups import muon_names

Betas = tuple[float, float]


@dataclass(frozen=True)
class OptimizerCapabilities:
    """What the loop, the schedules and the lean step need to know about an optimizer, declared as
    metadata where it is registered (`OPTIMIZERS.add(..., closure=True)`), never found by its type."""

    closure: bool = False            # step(closure) re-evaluates the batch several times (L-BFGS)
    schedule_free: bool = False      # train() / eval() switch between the iterate and the average
    fused_kernel: str | None = None  # "sgd" | "adam" | "adamw": the PyTorch fused kernel its step is
    momentum: str | None = None      # "betas" | "momentum": the group key one-cycle may cycle


CAPABILITIES = tuple(f.name for f in fields(OptimizerCapabilities))


def capabilities_of(meta) -> OptimizerCapabilities:
    """The capabilities an OPTIMIZERS entry declares in its metadata."""
    return OptimizerCapabilities(**{k: meta[k] for k in CAPABILITIES if k in meta})


def optimizer_capabilities(optimizer: torch.optim.Optimizer) -> OptimizerCapabilities:
    """The capabilities of a built optimizer: those its registry entry declares (`build_optimizer`
    records the entry's name as `optimizer.trainlab_optimizer`); for an optimizer built elsewhere,
    what its class tells (exactly SGD/Adam/AdamW have fused kernels, LBFGS a closure, ...)."""
    name = getattr(optimizer, "trainlab_optimizer", None)
    if name is not None:
        from . import OPTIMIZERS

        entry = OPTIMIZERS.find(name)
        if entry is not None:
            return capabilities_of(entry.meta)
    return _inferred(optimizer)


def _inferred(optimizer: torch.optim.Optimizer) -> OptimizerCapabilities:
    import schedulefree

    schedule_free = isinstance(optimizer, (schedulefree.AdamWScheduleFree, schedulefree.SGDScheduleFree,
                                           schedulefree.RAdamScheduleFree, schedulefree.ScheduleFreeWrapper))
    defaults = optimizer.defaults
    return OptimizerCapabilities(
        closure=isinstance(optimizer, torch.optim.LBFGS),
        schedule_free=schedule_free,
        fused_kernel={torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.AdamW: "adamw"}.get(
            type(optimizer)),
        momentum="betas" if "betas" in defaults else "momentum" if "momentum" in defaults else None)


def _groups(params) -> list[dict]:
    # torch writes its defaults into the group dicts it is given: hand each optimizer its own copies
    return [dict(g) for g in params]


def _fused_ok(params, cuda_unsupported: bool = False) -> bool:
    """Whether PyTorch has a fused kernel for every parameter's device and dtype (its own check)."""
    try:
        for g in params:
            for p in g["params"]:
                _device_dtype_check_for_fused(p, cuda_unsupported=cuda_unsupported)
    except RuntimeError:
        return False
    return True


def _torch_optimizer(cls: type[torch.optim.Optimizer], params, cuda_unsupported: bool = False, **kw):
    """`cls` with fused=True where PyTorch has that kernel here, else foreach=True where it has that."""
    accepted = inspect.signature(cls).parameters
    if "fused" in accepted and _fused_ok(params, cuda_unsupported):
        kw["fused"] = True
    elif "foreach" in accepted:
        kw["foreach"] = True
    return cls(_groups(params), **kw)


def sgd(params, lr: float, weight_decay: float, momentum: float = 0.9, dampening: float = 0.0,
        nesterov: bool = False) -> torch.optim.Optimizer:
    """SGD with (Nesterov) momentum; weight_decay is coupled L2."""
    return _torch_optimizer(torch.optim.SGD, params, lr=lr, momentum=momentum, dampening=dampening,
                            nesterov=nesterov, weight_decay=weight_decay)


def adam(params, lr: float, weight_decay: float, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
         amsgrad: bool = False) -> torch.optim.Optimizer:
    """Kingma & Ba, "Adam" (2014); weight_decay is coupled L2."""
    return _torch_optimizer(torch.optim.Adam, params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                            amsgrad=amsgrad)


def adamw(params, lr: float, weight_decay: float, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
          amsgrad: bool = False) -> torch.optim.Optimizer:
    """Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (2017)."""
    return _torch_optimizer(torch.optim.AdamW, params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                            amsgrad=amsgrad)


def nadam(params, lr: float, weight_decay: float, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
          momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False) -> torch.optim.Optimizer:
    """Dozat, "Incorporating Nesterov Momentum into Adam" (2016)."""
    return _torch_optimizer(torch.optim.NAdam, params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                            momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay)


def radam(params, lr: float, weight_decay: float, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
          decoupled_weight_decay: bool = False) -> torch.optim.Optimizer:
    """Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (2019)."""
    return _torch_optimizer(torch.optim.RAdam, params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                            decoupled_weight_decay=decoupled_weight_decay)


def adamax(params, lr: float, weight_decay: float, betas: Betas = (0.9, 0.999),
           eps: float = 1e-8) -> torch.optim.Optimizer:
    """Adam with the infinity norm (Kingma & Ba 2014, §7)."""
    return _torch_optimizer(torch.optim.Adamax, params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def rmsprop(params, lr: float, weight_decay: float, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
            centered: bool = False) -> torch.optim.Optimizer:
    """Hinton's RMSprop (lecture 6e); `centered` divides by the gradient's estimated variance."""
    return _torch_optimizer(torch.optim.RMSprop, params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                            momentum=momentum, centered=centered)


def adagrad(params, lr: float, weight_decay: float, lr_decay: float = 0.0, initial_accumulator_value: float = 0.0,
            eps: float = 1e-10) -> torch.optim.Optimizer:
    """Duchi et al., "Adaptive Subgradient Methods" (2011)."""
    # PyTorch's fused Adagrad kernel exists for CPU only
    return _torch_optimizer(torch.optim.Adagrad, params, cuda_unsupported=True, lr=lr, lr_decay=lr_decay,
                            weight_decay=weight_decay, initial_accumulator_value=initial_accumulator_value, eps=eps)


def adadelta(params, lr: float, weight_decay: float, rho: float = 0.9, eps: float = 1e-6) -> torch.optim.Optimizer:
    """Zeiler, "ADADELTA" (2012); PyTorch scales its update by lr (1.0 in the paper)."""
    return _torch_optimizer(torch.optim.Adadelta, params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


def adafactor(params, lr: float, weight_decay: float, beta2_decay: float = -0.8,
              eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0) -> torch.optim.Optimizer:
    """Shazeer & Stern, "Adafactor" (2018): factored second moments; weight_decay is decoupled."""
    return _torch_optimizer(torch.optim.Adafactor, params, lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                            weight_decay=weight_decay)


def lbfgs(params, lr: float, weight_decay: float, max_iter: int = 20, max_eval: int | None = None,
          tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
          line_search_fn: Literal["strong_wolfe"] | None = "strong_wolfe") -> torch.optim.Optimizer:
    """L-BFGS (Nocedal 1980); each step re-evaluates the batch through a closure, up to `max_iter` times.

    PyTorch's LBFGS takes one parameter group and has no weight decay, so neither
    `optim.lr_mult` nor `optim.weight_decay` applies to it.
    """
    if weight_decay > 0:
        raise RecipeError("optim.weight_decay: lbfgs has no weight decay; set it to 0 (or use optim.l1)")
    if any(g["lr_mult"] != 1.0 for g in params):
        raise RecipeError("optim.lr_mult: lbfgs optimizes one parameter group; remove the multipliers")
    merged = {"params": [p for g in params for p in g["params"]],
              "param_names": [n for g in params for n in g["param_names"]], "lr": lr, "lr_mult": 1.0}
    return torch.optim.LBFGS([merged], lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                             tolerance_change=tolerance_change, history_size=history_size,
                             line_search_fn=line_search_fn)


def lion(params, lr: float, weight_decay: float, betas: Betas = (0.9, 0.99)) -> torch.optim.Optimizer:
    """Chen et al., "Symbolic Discovery of Optimization Algorithms" (2023), from lion-pytorch.

    The update is a sign, so the LR is typically 3-10x smaller than AdamW's; decay is decoupled.
    """
    from lion_pytorch import Lion

    return Lion(_groups(params), lr=lr, betas=betas, weight_decay=weight_decay)


def schedule_free_adamw(params, lr: float, weight_decay: float, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
                        warmup_steps: int = 0, r: float = 0.0,
                        weight_lr_power: float = 2.0) -> torch.optim.Optimizer:
    """Defazio et al., "The Road Less Scheduled" (2024), from schedulefree: no LR schedule needed.

    The trainer evaluates and saves the averaged weights (the optimizer's eval mode).
    """
    from schedulefree import AdamWScheduleFree

    return AdamWScheduleFree(_groups(params), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                             warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                             foreach=True)


# --- Muon ------------------------------------------------------------------------------------------
def _as_matrix(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`t` (shaped like parameter `like`) as an (out, rest) matrix whose columns follow `like`'s memory
    order, so the result is a view of `t` when `t` is laid out as `like` (channels_last included)."""
    if t.ndim == 2:
        return t
    if like.ndim == 4 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
        t = t.permute(0, 2, 3, 1)  # (out, kh, kw, in): a column permutation, which orthogonalization respects
    return t.reshape(t.shape[0], -1)


class _MatrixMuon(torch.optim.Muon):
    """torch.optim.Muon on hidden weights of any rank >= 2.

    torch's Muon takes 2-D parameters only; conv filters (out, in, kh, kw) are orthogonalized as
    (out, in·kh·kw) matrices, as in Keller Jordan's reference implementation. Only the grouping
    of elements changes: the update itself is torch's.
    """

    def __init__(self, params, **options):
        # torch's constructor validates the options, then refuses rank != 2: let a stand-in take that
        # check and keep the validated defaults
        defaults = torch.optim.Muon([torch.zeros(1, 1)], **options).defaults
        torch.optim.Optimizer.__init__(self, params, defaults)

    def _init_group(self, group, params_with_grad, grads, muon_momentum_bufs) -> bool:
        for p in group["params"]:
            if p.grad is None:
                continue
            if torch.is_complex(p) or p.grad.is_sparse:
                raise RuntimeError("Muon does not support complex parameters or sparse gradients")
            state = self.state[p]
            if "momentum_buffer" not in state:  # shaped and laid out like p, so _as_matrix gives a view
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            matrix = _as_matrix(p, p)
            if matrix is not p and matrix._base is not p:  # a copy: the update would be lost
                raise RuntimeError(f"muon: cannot view a parameter of shape {tuple(p.shape)} as a matrix")
            params_with_grad.append(matrix)
            grads.append(_as_matrix(p.grad, p))
            muon_momentum_bufs.append(_as_matrix(state["momentum_buffer"], p))
        return False


class MuonWithAdamW(torch.optim.Optimizer):
    """One optimizer to the trainer and the schedules: Muon for the hidden weight matrices, AdamW for
    the rest. Its param_groups are the two optimizers' own group dicts, so schedules reach both."""

    def __init__(self, parts: dict[str, torch.optim.Optimizer]):
        self.parts = parts
        super().__init__([g for opt in parts.values() for g in opt.param_groups], defaults={})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.parts.values():
            opt.step()
        return loss

    def state_dict(self):
        return {name: opt.state_dict() for name, opt in self.parts.items()}

    def load_state_dict(self, state_dict):
        for name, opt in self.parts.items():
            opt.load_state_dict(state_dict[name])
        # loading replaces each part's group dicts: point ours at the new ones
        self.param_groups = [g for opt in self.parts.values() for g in opt.param_groups]


def muon(params, model: nn.Module, lr: float, weight_decay: float, momentum: float = 0.95, nesterov: bool = True,
         ns_steps: int = 5, adjust_lr_fn: Literal["original", "match_rms_adamw"] = "match_rms_adamw",
         adamw_lr: float | None = None, adamw_betas: Betas = (0.9, 0.95),
         adamw_eps: float = 1e-8) -> torch.optim.Optimizer:
    """Jordan et al., "Muon" (2024): torch.optim.Muon on the hidden weight matrices (linear and conv
    weights except the output head), AdamW on embeddings, the head, biases and norms.

    With the default `adjust_lr_fn: match_rms_adamw` (Liu et al., "Muon is Scalable for LLM
    Training", 2025) Muon's update has AdamW's RMS, so one `optim.lr` suits both parts;
    `adamw_lr` sets the AdamW part's LR on its own.
    """
    hidden = muon_names(model)
    ratio = (adamw_lr / lr) if adamw_lr is not None else 1.0
    muon_groups, adamw_groups = [], []
    for g in params:
        for to_muon, out in ((True, muon_groups), (False, adamw_groups)):
            pairs = [(n, p) for n, p in zip(g["param_names"], g["params"]) if (n in hidden) == to_muon]
            if pairs:
                part = {**g, "params": [p for _, p in pairs], "param_names": [n for n, _ in pairs]}
                if not to_muon:
                    part.update(lr=g["lr"] * ratio, lr_mult=g["lr_mult"] * ratio)
                out.append(part)
    parts: dict[str, torch.optim.Optimizer] = {}
    if muon_groups:
        parts["muon"] = _MatrixMuon(muon_groups, lr=lr, weight_decay=weight_decay, momentum=momentum,
                                    nesterov=nesterov, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
    if adamw_groups:
        parts["adamw"] = _torch_optimizer(torch.optim.AdamW, adamw_groups, lr=lr * ratio, betas=adamw_betas,
                                          eps=adamw_eps, weight_decay=weight_decay)
    return MuonWithAdamW(parts)

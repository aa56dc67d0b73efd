"""Parameter groups: no weight decay on biases and norm weights; per-module LR multipliers."""
from __future__ import annotations

from torch import nn

from ..errors import RecipeError

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
          nn.InstanceNorm1d, nn.InstanceNorm2d, nn.RMSNorm, nn.Embedding)


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of biases, normalization weights and embeddings (not decayed by default)."""
    names = set()
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if pname == "bias" or isinstance(module, _NORMS) or p.ndim <= 1:
                names.add(full)
    return names


def param_groups(model: nn.Module, lr: float, weight_decay: float, decay_bias_and_norm: bool,
                 lr_mult: dict[str, float]) -> list[dict]:
    """Split trainable parameters into groups keyed by (decay?, lr multiplier)."""
    skip = set() if decay_bias_and_norm else no_decay_names(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for prefix in lr_mult:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            raise RecipeError(f"optim.lr_mult.{prefix}: no parameter name starts with {prefix!r} "
                              f"(names look like {names[0]!r}; see `trainlab summary`)")
    groups: dict[tuple[bool, float], dict] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mult = next((m for pre, m in sorted(lr_mult.items(), key=lambda kv: -len(kv[0]))
                     if n == pre or n.startswith(pre + ".")), 1.0)
        decay = n not in skip
        g = groups.setdefault((decay, mult), {"params": [], "param_names": [], "lr": lr * mult,
                                              "weight_decay": weight_decay if decay else 0.0})
        g["params"].append(p)
        g["param_names"].append(n)
    return list(groups.values())

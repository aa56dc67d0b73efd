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
    """Split trainable parameters into groups keyed by (weight decay, lr multiplier).

    Each group keeps `lr_mult` (its LR over the base LR) so schedules, the LR finder and the
    logged LR can tell the base LR from a module's multiplied one.
    """
    skip = set() if decay_bias_and_norm else no_decay_names(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for prefix in lr_mult:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            raise RecipeError(f"optim.lr_mult.{prefix}: no parameter name starts with {prefix!r} "
                              f"(names look like {names[0]!r}; see `trainlab summary`)")
    # keyed by the options that differ, so that without weight decay one group holds every parameter
    # (each group is one more kernel launch per optimizer step: ~5-10 µs on CPU)
    groups: dict[tuple[float, float], dict] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mult = next((m for pre, m in sorted(lr_mult.items(), key=lambda kv: -len(kv[0]))
                     if n == pre or n.startswith(pre + ".")), 1.0)
        decay = weight_decay if n not in skip else 0.0
        g = groups.setdefault((decay, mult), {"params": [], "param_names": [], "lr": lr * mult, "lr_mult": mult,
                                              "weight_decay": decay})
        g["params"].append(p)
        g["param_names"].append(n)
    return list(groups.values())


def muon_names(model: nn.Module) -> set[str]:
    """Names of the hidden weight matrices Muon orthogonalizes: weights of rank >= 2, except
    embeddings and the output head (the last nn.Linear registered, by the usual convention)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if linears else None
    names = set()
    for mname, module in model.named_modules():
        if module is head or isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            continue
        for pname, p in module.named_parameters(recurse=False):
            if p.requires_grad and p.ndim >= 2:
                names.add(f"{mname}.{pname}" if mname else pname)
    return names

"""int8 Linear layers through torchao (`quantize_` with Int8DynamicActivationInt8WeightConfig or
Int8WeightOnlyConfig), stored without pickle.

torchao keeps a quantized weight as a tensor subclass (int8 `qdata`, per-row `scale` and
`zero_point`), which safetensors cannot save. `quantize_linear` therefore gives each quantized
Linear a state-dict hook that writes the subclass's inner tensors as plain tensors
(`<layer>.weight.qdata`, `.scale`, `.zero_point`) and a load hook that rebuilds the subclass from
them (`__tensor_unflatten__`, with the layout of the module's own quantized weight), so the
checkpoint writer and `load_model_weights` work unchanged. `build_model_for` calls it for a run
whose recipe says `compress: {method: quantize, scheme: int8_dynamic | int8_weight_only}`: the model
is built, quantized (its initial weights, overwritten by the load), then loaded.
"""
from __future__ import annotations

import logging
from typing import Any

from torch import nn

LINEAR_SCHEMES = ("int8_dynamic", "int8_weight_only")


def torchao_quantization():
    """torchao.quantization, imported without its import-time log lines (it cannot load its CUDA
    kernels on a CPU-only machine; torch's pytree notes a deprecated registration): nothing a user can act on."""
    quiet = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        import torchao.quantization
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return torchao.quantization


def _config(scheme: str):
    q = torchao_quantization()
    return q.Int8DynamicActivationInt8WeightConfig() if scheme == "int8_dynamic" else q.Int8WeightOnlyConfig()


def linear_layers(model: nn.Module) -> list[str]:
    """The names of the model's nn.Linear layers (what the linear schemes quantize)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def quantize_linear(model: nn.Module, scheme: str) -> nn.Module:
    """Quantize every nn.Linear of `model` in place with torchao's `scheme` config (see
    LINEAR_SCHEMES) and make its state dict plain tensors; returns `model`."""
    if scheme not in LINEAR_SCHEMES:
        raise ValueError(f"not a linear int8 scheme: {scheme!r}")
    names = set(linear_layers(model))
    torchao_quantization().quantize_(model, _config(scheme), filter_fn=lambda m, fqn: isinstance(m, nn.Linear))
    for name, m in model.named_modules():
        if name in names:
            m.register_state_dict_post_hook(_plain_state)
            m.register_load_state_dict_pre_hook(_rebuild_weight)
    return model


def _inner(t: Any) -> list[str] | None:
    flatten = getattr(t, "__tensor_flatten__", None)
    return None if flatten is None else list(flatten()[0])


def _plain_state(module: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """state[prefix + 'weight'] (a torchao subclass) -> its inner tensors as plain tensors."""
    w = state.get(prefix + "weight")
    names = _inner(w)
    if names is None:
        return
    del state[prefix + "weight"]
    for n in names:
        state[f"{prefix}weight.{n}"] = getattr(w, n)


def _rebuild_weight(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    """The inverse of `_plain_state`: the plain inner tensors -> the subclass at state[prefix + 'weight']
    (laid out as the module's own quantized weight), which load_state_dict then copies in."""
    names = _inner(module.weight)
    if names is None or not all(f"{prefix}weight.{n}" in state for n in names):
        return  # missing tensors: load_state_dict reports the weight missing
    _, ctx = module.weight.__tensor_flatten__()
    inner = {n: state.pop(f"{prefix}weight.{n}") for n in names}
    state[prefix + "weight"] = type(module.weight).__tensor_unflatten__(inner, ctx, None, None)

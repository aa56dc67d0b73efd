"""A run's model as one module from *raw* inputs to answers (`RawModel`), and the description of
those inputs and outputs (`io_spec`) that the exported files carry and the server publishes.

Raw inputs, by the run's data kind:
- image: pixels as 0–255 floats, (N, C, H, W) at the training size; the graph divides by 255;
- tabular: the encoded feature row in original units: numeric columns as they are (NaN for a
  missing cell, imputed in the graph with the training value) and each categorical column
  one-hot over the training vocabulary (data/info.json `extra.columns`), in `encoded_features`
  order; an all-zero one-hot group is an unknown category, as at training;
- tokens: int64 token ids (N, T) from the run's data/vocab.json, 0 = <pad>, 1 = <unk>;
- vector: the feature row the data source gives (text bow/tfidf rows, synthetic vectors).
Then the run's fitted `data.preprocess` and the model. Outputs: `logits` plus `probabilities`
(softmax; sigmoid per label for multi-label; [1-p, p] for a one-logit binary model), or for
regression `value` in the target's original units (`data.target_scaling` undone).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class RawModel(nn.Module):
    """`loaded` (an `api.LoadedRun`) as raw inputs -> (logits, probabilities) or (value,)."""

    def __init__(self, loaded: Any):
        super().__init__()
        info = loaded.info
        self.model = loaded.model
        self.kind, self.task = info.kind, info.task
        self.steps = list(loaded.preprocess)
        fill = tabular_fill(info)
        self.register_buffer("fill", fill if fill is not None else torch.zeros(0), persistent=False)
        scaler = loaded.target_scaler
        self.register_buffer("y_shift", scaler.shift.clone() if scaler is not None else torch.zeros(0),
                             persistent=False)
        self.register_buffer("y_scale", scaler.scale.clone() if scaler is not None else torch.zeros(0),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.kind != "tokens":
            x = x.float()
        if self.kind == "image":
            x = x / 255.0
        if self.fill.numel():
            x = torch.where(torch.isnan(x), self.fill, x)
        for step in self.steps:
            x = step(x)
        out = self.model(x).float()
        if self.task == "regression":
            if self.y_shift.numel():
                out = out * self.y_scale + self.y_shift
            return (out,)
        if self.task == "multilabel":
            return out, torch.sigmoid(out)
        if out.shape[-1] == 1:  # one logit (bce): p(class 1) = sigmoid
            p1 = torch.sigmoid(out)
            return out, torch.cat([1 - p1, p1], dim=-1)
        return out, torch.softmax(out, dim=-1)


def tabular_fill(info: Any) -> torch.Tensor | None:
    """(1, features) values that replace NaN in a table run's encoded row: each numeric column's
    training imputation value, 0 in one-hot columns (a missing categorical cell is turned into its
    column's fill category by `inputs.encode_table`, as the training encoder did)."""
    if info.kind != "tabular":
        return None
    names = info.extra.get("encoded_features") or []
    numeric = (info.extra.get("columns") or {}).get("numeric") or {}
    if not names:
        return None
    values = []
    for n in names:
        col = n.split("__", 1)[1] if n.startswith("num__") else None
        values.append(float(numeric.get(col, 0.0)) if col is not None else 0.0)
    return torch.tensor(values, dtype=torch.float32).reshape(1, -1)


def output_names(info: Any) -> list[str]:
    return ["value"] if info.task == "regression" else ["logits", "probabilities"]


def io_spec(loaded: Any) -> dict[str, Any]:
    """The raw input and the outputs, as JSON: what a consumer needs to call the exported graph
    (name, dtype, shape with N the batch, what the values mean) and how to read its answers."""
    info = loaded.info
    shape = ["N", *[int(s) for s in info.input_shape]]
    spec: dict[str, Any] = {"name": "input", "shape": shape, "kind": info.kind,
                            "dtype": "int64" if info.kind == "tokens" else "float32"}
    if info.kind == "image":
        c = int(info.input_shape[0])
        spec["description"] = (f"pixels as 0-255 floats, {'grayscale' if c == 1 else 'RGB' if c == 3 else f'{c} channels'}, "
                               f"{info.input_shape[1]}x{info.input_shape[2]} (N, C, H, W)")
    elif info.kind == "tabular":
        spec["features"] = list(info.extra.get("encoded_features") or [])
        spec["columns"] = info.extra.get("columns") or {}
        spec["description"] = ("one row per sample in the training columns' original units: numeric columns as "
                               "they are (NaN = missing, imputed with the training value), categorical columns "
                               "one-hot over the training categories (all zeros = unknown)")
    elif info.kind == "tokens":
        spec["description"] = ("token ids from the run's data/vocab.json (0 = <pad>, 1 = <unk>), truncated "
                               "and right-padded with 0 to the training length")
        spec["vocab_size"] = info.extra.get("vocab_size")
    else:
        spec["description"] = "the feature row the run's data source gives"
    outputs = [{"name": n} for n in output_names(info)]
    if info.task == "regression":
        outputs[0]["description"] = "the predicted value in the target's original units"
    else:
        outputs[0]["description"] = "the model's logits"
        outputs[1]["description"] = ("independent sigmoid per label" if info.task == "multilabel"
                                     else "softmax over the classes")
    return {"task": info.task, "input": spec, "outputs": outputs, "classes": info.class_names,
            "preprocessing": preprocessing_included(loaded)}


def preprocessing_included(loaded: Any) -> list[str]:
    """In words, what the graph does before the model, in order."""
    info, out = loaded.info, []
    if info.kind == "image":
        out.append("x / 255")
    if info.kind == "tabular":
        out.append("missing (NaN) numeric cells -> the training split's imputation value")
    for step in loaded.preprocess:
        stats = step.stats() if hasattr(step, "stats") else {}
        out.append(f"{type(step).__name__.lower()} {stats.get('method', '')}".strip() + " (training-split statistics)")
    if info.task == "regression" and loaded.target_scaler is not None:
        out.append("output * target std + target mean (data.target_scaling undone)")
    return out

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

    def __init__(self, loaded: Any, for_export: bool = False):
        super().__init__()
        info = loaded.info
        # for_export: the same function written so torch.export can trace it (see `export_ready`)
        self.model = export_ready(loaded.model) if for_export else loaded.model
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


def export_ready(model: nn.Module) -> nn.Module:
    """`model`, or where a layer of it cannot be traced with a dynamic batch, an equivalent that
    can: a recurrent classifier over right-padded tokens packs its sequences (data-dependent shapes
    torch.export refuses), so it becomes `UnpackedRNN`, the same answers without packing."""
    from ..models.rnn import RNNClassifier

    if isinstance(model, RNNClassifier) and model.pad is not None:
        return UnpackedRNN(model)
    return model


class UnpackedRNN(nn.Module):
    """`RNNClassifier`'s packed forward on right-padded tokens without packing: each (layer,
    direction) runs as its own one-layer RNN over the whole padded length (sharing the weights); the
    reverse direction reads each row reversed within its true length, so neither direction's state
    at a true step depends on the padding, and `last` pooling takes each state at the true end."""

    def __init__(self, model: nn.Module):
        super().__init__()
        rnn = model.rnn
        self.model, self.dirs, self.layers = model, model.dirs, rnn.num_layers
        cells = []
        for layer in range(rnn.num_layers):
            for d in range(model.dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                size = rnn.input_size if layer == 0 else rnn.hidden_size * model.dirs
                cell = type(rnn)(size, rnn.hidden_size, 1, bias=rnn.bias, batch_first=True,
                                 **({"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}))
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    if hasattr(rnn, name + sfx):
                        setattr(cell, name + "_l0", getattr(rnn, name + sfx))  # shared, not copied
                cells.append(cell)
        self.cells = nn.ModuleList(cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        e = m.drop(m.embed(x))
        mask = x != m.pad
        lengths = mask.sum(1).clamp_min(1)
        pos = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        # row n's steps j < length reversed (length-1-j), the padding after them left in place
        rev = torch.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)
        end = (lengths - 1).view(-1, 1, 1)
        inp, finals = e, []
        for layer in range(self.layers):
            outs, finals = [], []
            for d in range(self.dirs):
                cell = self.cells[layer * self.dirs + d]
                seq = inp if d == 0 else _take_steps(inp, rev)
                out = cell(seq)[0]
                finals.append(out.gather(1, end.expand(-1, 1, out.shape[-1])).squeeze(1))
                outs.append(out if d == 0 else _take_steps(out, rev))
            inp = torch.cat(outs, dim=-1)
        out = inp * mask.unsqueeze(-1).to(inp.dtype)  # packed outputs are 0 past the true end
        if m.pool == "last":
            feat = torch.cat(finals, dim=-1)
        elif m.pool == "mean":
            w = mask.unsqueeze(-1).to(out.dtype)
            feat = (out * w).sum(1) / w.sum(1).clamp_min(1)
        else:
            feat = out.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1).nan_to_num(0.0, neginf=0.0)
        return m.head(m.drop(feat))


def _take_steps(seq: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """seq (N, T, F) with its steps reordered per row by index (N, T)."""
    return seq.gather(1, index.unsqueeze(-1).expand(-1, -1, seq.shape[-1]))


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
    spec: dict[str, Any] = {"name": "input", "shape": shape, "kind": info.kind, "dynamic": ["N"],
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
                               f"and right-padded with 0 to the training length {info.input_shape[-1]} "
                               "(the batch N is dynamic, the length fixed)")
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

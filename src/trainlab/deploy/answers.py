"""A graph's output arrays as answers, one plain dict per sample (JSON-ready), for `trainlab predict`
and the server: the class and its probability with the top k, the labels of a multi-label model
above 0.5, or the regression value in the target's original units. numpy only.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError

THRESHOLD = 0.5  # a multi-label model's label is on when its sigmoid probability exceeds this


def rows(outputs: dict[str, np.ndarray], spec: dict[str, Any], top_k: int = 1) -> list[dict[str, Any]]:
    """One dict per sample of `outputs` (a `Predictor`'s {"logits", "probabilities"} or {"value"})
    for a graph described by `spec` (`graph.io_spec`):

    - classification: `prediction` (class name), `probability`, `top_k` ([{"class", "probability"}],
      the `top_k` most probable, best first) and `probabilities` ({class: p});
    - multi-label: `labels` ([{"label", "probability"}] of the labels above 0.5, most probable first)
      and `probabilities` ({label: p});
    - regression: `value` (a float, or a list for several targets), in the target's original units.
    Raises DataError for outputs this cannot read (e.g. a language model's per-token logits)."""
    task = spec["task"]
    if task == "regression":
        value = np.asarray(outputs["value"], dtype=np.float64)
        value = value.reshape(len(value), -1)
        return [{"value": float(v[0]) if len(v) == 1 else [float(a) for a in v]} for v in value]
    probs = np.asarray(outputs["probabilities"], dtype=np.float64)
    if probs.ndim != 2:
        raise DataError(f"the model answers with outputs of shape {tuple(probs.shape)} (e.g. per token); "
                        "predict reads one answer per sample, (N, classes)")
    names = class_names(spec, probs.shape[1])
    if task == "multilabel":
        out = []
        for p in probs:
            on = [int(i) for i in np.argsort(-p, kind="stable") if p[i] > THRESHOLD]
            out.append({"labels": [{"label": names[i], "probability": float(p[i])} for i in on],
                        "probabilities": dict(zip(names, map(float, p)))})
        return out
    k = max(1, min(int(top_k), probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # ties: the lower class index first, as argmax
    return [{"prediction": names[int(best[0])], "probability": float(p[best[0]]),
             "top_k": [{"class": names[int(i)], "probability": float(p[i])} for i in best],
             "probabilities": dict(zip(names, map(float, p)))} for p, best in zip(probs, order)]


def class_names(spec: dict[str, Any], n: int) -> list[str]:
    """The spec's class (or label) names, else "0".."n-1"."""
    names = spec.get("classes")
    if names and len(names) == n:
        return [str(c) for c in names]
    return [str(i) for i in range(n)]


def columns(spec: dict[str, Any], outputs: dict[str, np.ndarray]) -> list[str]:
    """The value columns of a flat table of `rows` (CSV): prediction, probability and p(class) per
    class; labels and p(label) per label; value (value_0, value_1, ... for several targets)."""
    if spec["task"] == "regression":
        value = np.asarray(outputs["value"])
        width = int(np.prod(value.shape[1:])) if value.ndim > 1 else 1
        return ["value"] if width == 1 else [f"value_{i}" for i in range(width)]
    names = class_names(spec, np.asarray(outputs["probabilities"]).shape[-1])
    head = ["labels"] if spec["task"] == "multilabel" else ["prediction", "probability"]
    return head + [f"p({n})" for n in names]


def flat(row: dict[str, Any], delimiter: str = "|") -> list[Any]:
    """One `rows` entry as the values of `columns` (a multi-label row's labels joined by `delimiter`)."""
    if "value" in row:
        v = row["value"]
        return list(v) if isinstance(v, list) else [v]
    probs = list(row["probabilities"].values())
    if "labels" in row:
        return [delimiter.join(lab["label"] for lab in row["labels"]), *probs]
    return [row["prediction"], row["probability"], *probs]

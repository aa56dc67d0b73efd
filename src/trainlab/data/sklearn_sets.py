"""The small data sets scikit-learn ships with itself (no download): digits, iris, wine,
breast_cancer (classification) and diabetes (regression)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from .bundle import SourceData, Split

# name -> (loader name in sklearn.datasets, task, one-line description)
SETS: dict[str, tuple[str, str, str]] = {
    "digits": ("load_digits", "classification", "scikit-learn digits: 1797 8×8 grayscale images, 10 classes"),
    "iris": ("load_iris", "classification", "scikit-learn iris: 150 flowers, 4 features, 3 classes"),
    "wine": ("load_wine", "classification", "scikit-learn wine: 178 wines, 13 features, 3 classes"),
    "breast_cancer": ("load_breast_cancer", "classification",
                      "scikit-learn breast cancer: 569 tumours, 30 features, malignant/benign"),
    "diabetes": ("load_diabetes", "regression", "scikit-learn diabetes: 442 patients, 10 features, disease progression"),
}


def _load(name: str) -> SourceData:
    import sklearn.datasets

    loader, task, _ = SETS[name]
    d = getattr(sklearn.datasets, loader)()
    x = torch.tensor(d.data, dtype=torch.float32)
    if name == "digits":  # pixel intensities 0..16 -> images (N, 1, 8, 8) in [0, 1]
        return SourceData(train=Split(x.view(-1, 1, 8, 8) / 16.0, torch.tensor(d.target, dtype=torch.long)),
                          test=None, task="classification", class_names=[str(c) for c in d.target_names],
                          kind="image")
    if task == "regression":
        return SourceData(train=Split(x, torch.tensor(d.target, dtype=torch.float32).unsqueeze(1)), test=None,
                          task="regression", kind="tabular", extra={"feature_names": list(d.feature_names)})
    return SourceData(train=Split(x, torch.tensor(d.target, dtype=torch.long)), test=None, task="classification",
                      class_names=[str(c) for c in d.target_names], kind="tabular",
                      extra={"feature_names": list(d.feature_names)})


def factory(name: str) -> Callable[[], SourceData]:
    def load() -> SourceData:
        return _load(name)
    load.__doc__ = SETS[name][2] + "; no test split of its own (carved by test_fraction)."
    return load

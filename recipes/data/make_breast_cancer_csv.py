"""Writes breast_cancer.csv: scikit-learn's breast-cancer data (569 tumours, 30 numeric features)
as a plain CSV with a text target column `diagnosis` (malignant / benign), the shape a user's
own table usually has. Run from the repository root: python recipes/data/make_breast_cancer_csv.py
"""
from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_breast_cancer


def main() -> None:
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map({0: "malignant", 1: "benign"})
    out = Path(__file__).with_name("breast_cancer.csv")
    frame.to_csv(out, index=False, float_format="%.6g")
    print(f"wrote {out} ({len(frame)} rows)")


if __name__ == "__main__":
    main()

"""Writes what drift.yaml names beside it, so that the drift quick start runs as written:

- drift-write-tokens and drift-read-tokens: one random token each (kept if they exist already);
- iris-reference.parquet: the reference of the `iris` model, the example model's (fleetscope
  model-server's) predictions on scikit-learn's iris data set, with each flower's petal length and a
  region, in the columns drift.yaml declares.

Run it with the environment fleetscope is installed in (it needs the `drift` and `example` extras):
    .venv/bin/python example/drift-quickstart/prepare.py
"""

from __future__ import annotations

import secrets
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_token(path: Path) -> None:
    if not path.exists():
        path.write_text(secrets.token_hex(16) + "\n")
        path.chmod(0o600)


def write_reference(path: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris

    from fleetscope.example.model import IrisModel

    data = load_iris()
    model = IrisModel()
    predictions = model.predict(data.data)
    regions = np.random.default_rng(0).choice(["eu", "us"], size=len(predictions))
    pd.DataFrame({"confidence": [p.confidence for p in predictions],
                  "petal_length": data.data[:, 2],
                  "label": [p.label for p in predictions],
                  "region": regions}).to_parquet(path, index=False)


def main() -> None:
    write_token(HERE / "drift-write-tokens")
    write_token(HERE / "drift-read-tokens")
    write_reference(HERE / "iris-reference.parquet")
    print(f"wrote the tokens and iris-reference.parquet in {HERE}")


if __name__ == "__main__":
    main()

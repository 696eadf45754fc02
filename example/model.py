"""The example's model: logistic regression trained at start on scikit-learn's iris data set."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_INSTANCES = 1024
# A measurement in centimetres past this is refused: near float's range the model's logits overflow and its
# probabilities come out NaN, which would be answered as a confidence.
MAX_MEASUREMENT = 1e6


class BadInput(ValueError):
    """A request the model cannot take; the message names the offending instance and field."""


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    embedding: tuple[float, ...]  # IrisModel.embedding_of: classes x features terms of the decision function


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past float's range, such as 10**400
        return False


class IrisModel:
    name = "iris"

    def __init__(self, seed: int = 0):
        # Imported here so that the CLI, which names this command, does not load scikit-learn.
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        data = load_iris()
        self.features: tuple[str, ...] = tuple(name.removesuffix(" (cm)").replace(" ", "_")
                                               for name in data.feature_names)
        self.labels: tuple[str, ...] = tuple(str(label) for label in data.target_names)
        self._pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
        self._pipeline.fit(data.data, data.target)

    def validate(self, instances: object) -> np.ndarray:
        if not isinstance(instances, list) or not instances:
            raise BadInput("instances must be a non-empty list of feature lists")
        if len(instances) > MAX_INSTANCES:
            raise BadInput(f"at most {MAX_INSTANCES} instances per request, not {len(instances)}")
        for row, instance in enumerate(instances):
            if not isinstance(instance, list) or len(instance) != len(self.features):
                raise BadInput(f"instance {row}: expected {len(self.features)} numbers ({', '.join(self.features)})")
            for column, value in enumerate(instance):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                    shown = repr(value)
                    shown = shown if len(shown) <= 40 else shown[:37] + "..."
                    raise BadInput(f"instance {row}, {self.features[column]}: {shown} is not a finite number")
                if abs(value) > MAX_MEASUREMENT:
                    raise BadInput(f"instance {row}, {self.features[column]}: {value:g} cm is out of range "
                                   f"(at most {MAX_MEASUREMENT:g} either way)")
        return np.asarray(instances, dtype=np.float64)

    @property
    def embedding_names(self) -> tuple[str, ...]:
        """What each component of an embedding is: `<class>.<feature>`."""
        return tuple(f"{label}.{feature}" for label in self.labels for feature in self.features)

    def predict(self, features: np.ndarray) -> list[Prediction]:
        probabilities = self._pipeline.predict_proba(features)
        best = probabilities.argmax(axis=1)
        embeddings = self.embedding_of(features)
        return [Prediction(self.labels[index], float(probabilities[row, index]), tuple(map(float, embeddings[row])))
                for row, index in enumerate(best)]

    def embedding_of(self, features: np.ndarray) -> np.ndarray:
        """Each answer's embedding (rows x classes * features): the terms of the logistic regression's decision
        function, coefficient[class, feature] x standardized feature, class by class (embedding_names). A class's
        terms plus its intercept are its logit, so the vector is what the model weighed, feature by feature,
        before the softmax: nothing random or added. Finite for every input validate() accepts (MAX_MEASUREMENT)."""
        scaler, regression = self._pipeline[0], self._pipeline[-1]
        terms = regression.coef_[np.newaxis, :, :] * scaler.transform(features)[:, np.newaxis, :]
        return terms.reshape(len(features), -1)

    def rows(self, features: np.ndarray, predictions: Sequence[Prediction],
             request_ids: tuple[str, Sequence[str]] | None = None,
             embedding_column: str | None = None) -> list[dict[str, object]]:
        """What a drift monitor wants of each answer: the inputs and the outputs, by name; given (column, ids),
        each answer's request id in that column (ground truth arriving later names it); given embedding_column,
        each answer's embedding in that column, as a list."""
        rows: list[dict[str, object]] = [
            {**dict(zip(self.features, map(float, instance), strict=True)), "label": p.label,
             "confidence": p.confidence} for instance, p in zip(features, predictions, strict=True)]
        if embedding_column is not None:
            for row, prediction in zip(rows, predictions, strict=True):
                row[embedding_column] = list(prediction.embedding)
        if request_ids is not None:
            column, ids = request_ids
            for row, request in zip(rows, ids, strict=True):
                row[column] = request
        return rows

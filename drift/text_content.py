"""Text content drift: a domain classifier told reference texts from current ones, as Evidently 0.7.23 does it for
text columns (evidently/legacy/utils/data_drift_utils.py, calculate_text_drift_score and
roc_auc_domain_classifier; the stattests text_content_drift.py and text_content_drift_abs.py).

TF-IDF (sublinear, max_df 0.5, scikit-learn's English stop words: nothing is downloaded) and an L1 SGD classifier
with modified Huber loss, trained on a random half of both sides and scored by its ROC AUC on the other half, all
seeded as Evidently seeds them, so the score is Evidently's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Evidently 0.7.23, evidently/legacy/calculations/stattests/registry.py, _get_default_stattest: by reference size
ABSOLUTE_ABOVE_ROWS = 1000


@dataclass(frozen=True)
class TextContentTest:
    name: str
    default_threshold: float
    bootstrap: bool


TESTS = {test.name: test for test in (
    TextContentTest("abs_text_content_drift", 0.55, bootstrap=False),  # text_content_drift_abs.py
    TextContentTest("perc_text_content_drift", 0.95, bootstrap=True),  # text_content_drift.py
)}


def get(name: str) -> TextContentTest:
    try:
        return TESTS[name]
    except KeyError:
        raise ValueError(f"text content drift method {name!r} is not one of {', '.join(sorted(TESTS))}") from None


def default_for(reference_rows: int) -> TextContentTest:
    return TESTS["abs_text_content_drift" if reference_rows > ABSOLUTE_ABOVE_ROWS else "perc_text_content_drift"]


def drift(test: TextContentTest, reference: list[str], current: list[str], threshold: float) -> tuple[float, bool]:
    """(ROC AUC, drifted): calculate_text_drift_score. The absolute test finds drift above the threshold; the
    percentile test above the (threshold x 100)th percentile of 1000 random classifiers' ROC AUC."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    texts = np.array(reference + current, dtype=object)
    target = np.concatenate((np.zeros(len(reference), dtype=np.int64), np.ones(len(current), dtype=np.int64)))
    train, test_rows = train_test_split(np.arange(len(texts)), test_size=0.5, random_state=42, shuffle=True)
    pipeline = Pipeline([
        ("vectorization", TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")),
        ("classification", SGDClassifier(alpha=0.0001, max_iter=50, penalty="l1", loss="modified_huber",
                                         random_state=42))])
    pipeline.fit(texts[train], target[train])
    auc = float(roc_auc_score(target[test_rows], pipeline.predict_proba(texts[test_rows])[:, 1]))
    if not test.bootstrap:
        return auc, auc > threshold
    return auc, auc > _random_classifier_percentile(target[test_rows], p_value=1 - threshold)


def _random_classifier_percentile(labels: np.ndarray, p_value: float, rounds: int = 1000, seed: int = 42) -> float:
    """roc_auc_random_classifier_percentile: the ROC AUC of random scores, seeded by 1000 seeds drawn from 42."""
    from sklearn.metrics import roc_auc_score

    seeds = np.random.RandomState(seed).randint(0, rounds * 10, size=rounds)
    aucs = [roc_auc_score(labels, np.random.RandomState(each).rand(len(labels))) for each in seeds]
    return float(np.percentile(aucs, 100 * (1 - p_value)))

"""Text columns against Evidently 0.7.23: each descriptor value for value (evidently/legacy/features), and the whole
comparison (content drift and descriptors' drift) against DataDriftPreset run with the same descriptors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import ColumnKind, PreparedReference, compare, text_descriptors
from fleetscope.drift.report import evidently_numbers
from tests.drift.test_compare_parity import assert_same

TRICKY = ["Hello, world. This is two? No: three. Dr. Who came at 5 p.m. today.", "", "   ", "ünïcödé wörds ½ ² Ⅷ",
          "tabs\tand\nnewlines. End", "e.g. an abbrev. And Mr. Smith? Yes.", "日本語のテキスト。文。", "12345!!!",
          "a" * 300, "Emoji 🙂 here. And there?  Two spaces."]


def evidently_features():
    from evidently.legacy.features.non_letter_character_percentage_feature import NonLetterCharacterPercentage
    from evidently.legacy.features.sentence_count_feature import SentenceCount
    from evidently.legacy.features.text_length_feature import TextLength
    from evidently.legacy.features.word_count_feature import WordCount

    return {"text_length": TextLength("t"), "word_count": WordCount("t"),
            "non_letter_percentage": NonLetterCharacterPercentage("t"), "sentence_count": SentenceCount("t")}


@pytest.mark.parametrize("text", TRICKY + [None])
def test_each_descriptor_is_evidentlys_value_for_value(text):
    for name, feature in evidently_features().items():
        ours = text_descriptors.descriptor_columns("t", pd.Series([text], dtype=object))[f"t.{name}"].iloc[0]
        if name == "non_letter_percentage" and text == "":
            assert ours == 0  # Evidently divides by zero here
            continue
        assert ours == feature.apply(text), (name, text)


def vocabulary(seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyzé")
    return ["".join(rng.choice(letters, rng.integers(2, 9))) + rng.choice(["", "", "", ".", "?", ",", "!", "1"])
            for _ in range(400)]


def texts(rows: int, seed: int, shift: float = 0.0) -> list[str | None]:
    rng = np.random.default_rng(seed)
    words = vocabulary(0)
    weights = np.ones(len(words))
    weights[:40] *= 1 + 6 * shift  # drifted texts lean on some words and run longer
    weights /= weights.sum()
    found: list[str | None] = [" ".join(rng.choice(words, rng.integers(3, 30 + int(20 * shift)), p=weights))
                               for _ in range(rows)]
    for index in rng.choice(rows, rows // 50, replace=False):
        found[index] = None
    return found


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"body": texts(rows, seed, shift), "x": np.random.default_rng(seed).normal(shift, 1, rows)})


def evidently_with_descriptors(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.descriptors import NonLetterCharacterPercentage, SentenceCount, TextLength, WordCount
    from evidently.presets import DataDriftPreset

    def descriptors():
        return [TextLength("body", alias="body.text_length"), WordCount("body", alias="body.word_count"),
                NonLetterCharacterPercentage("body", alias="body.non_letter_percentage"),
                SentenceCount("body", alias="body.sentence_count")]

    definition = DataDefinition(numerical_columns=["x"], text_columns=["body"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition, descriptors=descriptors()),
            Dataset.from_pandas(reference, data_definition=definition, descriptors=descriptors()))
    return evidently_numbers(snapshot)


# Both sides of Evidently's switch between the percentile and the absolute content test: above 1000 texts present
# in the reference (2% of texts are missing here: 1001 rows are 981 texts).
@pytest.mark.parametrize(("reference_rows", "current_rows", "shift"),
                         [(300, 250, 0.0), (600, 500, 0.6), (1001, 800, 0.0), (1100, 800, 0.0), (1500, 1200, 0.5)])
def test_text_columns_drift_as_in_evidentlys_preset_with_the_same_descriptors(reference_rows, current_rows, shift):
    reference, current = frame(reference_rows, seed=1), frame(current_rows, seed=2, shift=shift)
    ours = compare(reference, current, numerical=["x"], text=["body"])
    assert_same(ours, evidently_with_descriptors(reference, current))
    assert ours.columns["body"].kind is ColumnKind.TEXT
    present = reference["body"].notna().sum()
    assert ours.columns["body"].method == ("abs_text_content_drift" if present > 1000 else "perc_text_content_drift")
    assert ours.columns["body"].drifted == (shift > 0)
    prepared = PreparedReference(reference, {"x": ColumnKind.NUMERICAL, "body": ColumnKind.TEXT})
    assert compare(prepared, current) == ours


def test_a_text_column_is_compared_only_where_declared():
    reference, current = frame(300, seed=3), frame(300, seed=4)
    assert "body" in compare(reference, current).skipped  # inferred text (request ids, say) is left out
    assert "body" in compare(reference, current, text=["body"]).columns


def test_methods_and_thresholds_apply_by_name():
    reference, current = frame(400, seed=5), frame(400, seed=6, shift=0.3)
    ours = compare(reference, current, text=["body"], methods={"body": "abs_text_content_drift",
                                                               "body.text_length": "psi"},
                   thresholds={"body": 0.99})
    assert (ours.columns["body"].method, ours.columns["body"].threshold) == ("abs_text_content_drift", 0.99)
    assert not ours.columns["body"].drifted
    assert ours.columns["body.text_length"].method == "psi"
    with pytest.raises(ValueError, match="text content drift method 'ks'"):
        compare(reference, current, text=["body"], methods={"body": "ks"})

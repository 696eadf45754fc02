"""A text column in a profile: each text's descriptors (fleetscope.drift.text_descriptors, the function rows mode
uses), profiled as the numerical columns `<column>.<descriptor>`, so that a merged profile compares them exactly as
it compares any numerical column, with the same bound. The texts themselves are not kept: text content drift (a
TF-IDF domain classifier, fleetscope.drift.text_content) needs them, and is refused (CONTENT_REFUSAL)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from fleetscope.drift.columns import DEFAULT_MAX_TEXT_LENGTH
from fleetscope.drift.text_descriptors import DESCRIPTORS, descriptor_columns, descriptor_name

CONTENT_REFUSAL = ("text content drift trains a classifier on the texts themselves, which a profile does not keep "
                   "(it carries each text's descriptors, compared as the columns {column}.<descriptor>): send rows "
                   "to compare the content")


class TextError(ValueError):
    """Texts that cannot be summarized; `reason` is the one rows ingest refuses such a batch for."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def descriptor_names(column: str) -> list[str]:
    return [descriptor_name(column, descriptor) for descriptor in DESCRIPTORS]


def described(frame: pd.DataFrame, text: Iterable[str], max_text_length: int = DEFAULT_MAX_TEXT_LENGTH) -> \
        pd.DataFrame:
    """The frame with each text column replaced by its descriptors' columns. Each value is a text or missing
    (None, NaN; counted 0, as rows mode counts it) and at most max_text_length characters, as rows ingest requires
    (fleetscope.drift.service.decode.text_values): TextError naming the row and the reason it would give."""
    text, columns = set(text), {}
    for name in frame.columns:
        if name not in text:
            columns[name] = frame[name]
            continue
        for index, value in enumerate(frame[name].to_numpy()):
            if value is None or isinstance(value, float) and value != value:
                continue
            if not isinstance(value, str):
                raise TextError("schema", f"row {index}, column {name!r}: {type(value).__name__} is not a text (text "
                                          "column; None for no text)")
            if len(value) > max_text_length:
                raise TextError("too_long", f"row {index}, column {name!r}: a text of {len(value)} characters; the "
                                            f"limit is {max_text_length} (limits.max_text_length)")
        columns.update(descriptor_columns(name, frame[name]))
    return pd.DataFrame(columns, index=frame.index, copy=False)

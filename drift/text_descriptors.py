"""Numbers computed from each text of a text column, each then compared as a numerical column named
`<column>.<descriptor>`: Evidently 0.7.23's text descriptors, value for value.

Each function names the Evidently feature it reproduces (evidently/legacy/features/*_feature.py, `apply`), which
the descriptors of evidently.descriptors (TextLength, WordCount, NonLetterCharacterPercentage, SentenceCount) run.
A missing text counts 0, as Evidently counts it. Evidently's OOVWordsPercentage is left out: its vocabulary
(NLTK's words and wordnet corpora) does not ship with any installed package and Evidently downloads it when first
run, which the service never does.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

import numpy as np
import pandas as pd

# Evidently 0.7.23, evidently/legacy/features/word_count_feature.py, WordCount._reg
_NOT_A_WORD_CHARACTER = re.compile(r"[^a-zA-Z ]+")
# Evidently 0.7.23, evidently/legacy/features/sentence_count_feature.py, SentenceCount._reg
_SENTENCE_END = re.compile(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s")
_ASCII_LETTERS_AND_SPACE = (string.ascii_letters + " ").encode()


def text_length(text: str) -> float:
    """TextLength (text_length_feature.py): characters."""
    return float(len(text))


def word_count(text: str) -> float:
    """WordCount (word_count_feature.py): the words left once everything but ASCII letters and spaces is removed."""
    return float(len(_NOT_A_WORD_CHARACTER.sub("", text).split()))


def non_letter_percentage(text: str) -> float:
    """NonLetterCharacterPercentage (non_letter_character_percentage_feature.py): the percentage of characters
    that are neither letters (str.isalpha) nor spaces. An empty text counts 0 (Evidently divides by zero)."""
    if not text:
        return 0.0
    if text.isascii():  # the same count at C speed: ASCII letters are exactly the ASCII characters isalpha() takes
        others = len(text.encode().translate(None, _ASCII_LETTERS_AND_SPACE))
    else:
        others = len(text) - sum(map(str.isalpha, text)) - text.count(" ")
    return 100 * others / len(text)


def sentence_count(text: str) -> float:
    """SentenceCount (sentence_count_feature.py): pieces split after '.' or '?' and a space, at least 1."""
    return float(max(1, len(_SENTENCE_END.split(text))))


DESCRIPTORS: dict[str, Callable[[str], float]] = {
    "text_length": text_length, "word_count": word_count, "non_letter_percentage": non_letter_percentage,
    "sentence_count": sentence_count}


def descriptor_name(column: str, descriptor: str) -> str:
    return f"{column}.{descriptor}"


def descriptor_columns(column: str, texts: pd.Series) -> dict[str, pd.Series]:
    """Each descriptor of each text, as numerical columns named `<column>.<descriptor>`, in the texts' order."""
    values = [value if isinstance(value, str) else None for value in texts.to_numpy()]
    return {descriptor_name(column, name): pd.Series(
                np.fromiter((0.0 if value is None else describe(value) for value in values), np.float64, len(values)),
                index=texts.index)
            for name, describe in DESCRIPTORS.items()}

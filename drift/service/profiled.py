"""Evaluation of a model fed profiles: the current window's intervals merged per segment, compared with the
reference's profile (rows profiled once, a profile put as the reference, or a rolling window of intervals)."""

from __future__ import annotations

import re

import pandas as pd

from fleetscope.drift import quality, samples, text_profiles
from fleetscope.drift.columns import ColumnKind, value_rules
from fleetscope.drift.comparison import DriftResult
from fleetscope.drift.profile_comparison import ProfileDriftResult, ProfileMethodError, compare_profiles
from fleetscope.drift.profiles import DEFAULT_K, Profile, merge_all, profile
from fleetscope.drift.segments import segment_label
from fleetscope.drift.service.config import ModelConfig
from fleetscope.drift.service.evaluation import Evaluation

WHOLE = ""  # the label of the model as a whole
SEGMENT_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_.:-]*)=(.*)$")


def parse_segment(config: ModelConfig, label: str, max_length: int) -> str:
    """The segment label a replica sent, checked against the model's segments; ValueError saying why."""
    if not label:
        return WHOLE
    if not config.segments:
        raise ValueError(f"model {config.name!r} has no segments; send its profiles without one")
    parts = [SEGMENT_PART.match(part) for part in label.split(",")]
    names = tuple(part.group(1) if part else "" for part in parts)
    if names != config.segments:
        raise ValueError(f"segment {label[:200]!r} must name the model's segments in order: "
                         f"{','.join(f'{name}=VALUE' for name in config.segments)}")
    if any(len(part.group(2)) > max_length for part in parts if part):
        raise ValueError(f"a segment value is longer than limits.max_category_length ({max_length})")
    return label


def reference_profiles(config: ModelConfig, frame: pd.DataFrame, k: int = DEFAULT_K) -> dict[str, Profile]:
    """A rows reference profiled once: as a whole and per segment."""
    kinds = {name: kind for name, kind in config.columns.items() if name not in config.segments}
    declared = {kind: [name for name, found in kinds.items() if found is kind] for kind in ColumnKind}
    rules = value_rules(config.columns)

    def of(rows: pd.DataFrame, sample_rows: int = 0) -> Profile:
        return profile(rows, declared[ColumnKind.NUMERICAL], declared[ColumnKind.CATEGORICAL], k,
                       sample_rows=sample_rows, text=declared[ColumnKind.TEXT],
                       embeddings=declared[ColumnKind.EMBEDDING], max_text_length=rules.max_text_length,
                       max_dimensions=rules.max_dimensions)

    profiles = {WHOLE: of(frame, samples.CAP)}
    if config.segments:
        for values, group in frame.groupby(list(config.segments), dropna=False, sort=False):
            values = values if isinstance(values, tuple) else (values,)
            profiles[segment_label(config.segments, values)] = of(group)
    return profiles


def compared_kinds(config: ModelConfig) -> dict:
    """The columns a profile of the model holds: segment columns are constant within a segment, and profiles leave
    them out; a text column is its descriptors' numerical columns (fleetscope.drift.text_profiles)."""
    found = {}
    for name, kind in config.columns.items():
        if name in config.segments:
            continue
        if kind is ColumnKind.TEXT:
            found.update(dict.fromkeys(text_profiles.descriptor_names(name), ColumnKind.NUMERICAL))
        else:
            found[name] = kind
    return found


def run(config: ModelConfig, current: dict[str, tuple[Profile, int]], reference: dict[str, Profile],
        max_segments: int, evaluation: Evaluation, exact_categories: int | None = None) -> Evaluation:
    """Fills `evaluation` from the current window's profiles per segment and the reference's, the segments'
    categories merged exactly up to exact_categories (limits.max_exact_categories)."""
    evaluation.profiled = True
    whole = merge_all((found for found, _ in current.values()), exact_categories)
    evaluation.current_intervals = sum(intervals for _, intervals in current.values())
    reference_whole = reference.get(WHOLE) or merge_all(reference.values(), exact_categories)
    evaluation.current_rows, evaluation.reference_rows = whole.rows, reference_whole.rows
    evaluation.result = _compare(config, reference_whole, whole)
    evaluation.quality = quality.from_profiles(reference_whole, whole, compared_kinds(config))
    evaluation.samples = (reference_whole.sample, whole.sample)
    segments = sorted(((label, found) for label, (found, _) in current.items() if label != WHOLE),
                      key=lambda item: -item[1].rows)
    for position, (label, found) in enumerate(segments):
        if position >= max_segments:
            evaluation.skipped_segments[label] = f"beyond limits.max_segments ({max_segments}), by rows"
        elif label not in reference:
            evaluation.skipped_segments[label] = "the reference has no rows for this segment"
        else:
            evaluation.segments[label] = _compare(config, reference[label], found)
            evaluation.segment_rows[label] = (found.rows, reference[label].rows)
    evaluation.outcome = "success"
    return evaluation


def _compare(config: ModelConfig, reference: Profile, current: Profile) -> DriftResult:
    """Column by column, so that a column a profile cannot score is skipped with the reason and the rest
    still are."""
    columns, skipped = {}, {}
    for name, kind in config.columns.items():
        if kind is ColumnKind.TEXT:
            skipped[name] = text_profiles.CONTENT_REFUSAL.format(column=name)
    for name in compared_kinds(config):
        if current.columns[name].rows == 0 or reference.columns[name].rows == 0:
            skipped[name] = f"no values in the {'current window' if current.columns[name].rows == 0 else 'reference'}"
            continue
        try:
            result = compare_profiles(Profile({name: reference.columns[name]}, reference.k),
                                      Profile({name: current.columns[name]}, current.k),
                                      methods=config.methods, thresholds=config.thresholds)
        except ProfileMethodError as error:
            skipped[name] = str(error)
            continue
        columns.update(result.columns)
        skipped.update(result.skipped)
    return ProfileDriftResult(columns, config.drift_share, skipped, config.uncertain_columns == "count")

"""Segment labels, as the client, the service, the metrics and the JSON all write them."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def segment_label(names: Sequence[str], values: Sequence[object]) -> str:
    """"region=eu,model_version=v2" for those names and values; a missing value is written empty."""
    return ",".join(f"{name}={'' if pd.isna(value) else value}" for name, value in zip(names, values, strict=True))

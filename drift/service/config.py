"""The drift service's configuration: a YAML file, with command-line flags over it.

Every section is optional. A model listed under `models` has a fixed schema; a model not
listed is created by PUT /v1/models/{model}/reference, its schema taken from that data
with the `defaults` settings.

    listen_address: 127.0.0.1:9840
    evaluation_interval: 1m
    storage:
      path: /var/lib/fleetscope-drift/drift.sqlite
      retention: 7d
      profile_rollup_after: 2d
      max_bytes: 16GiB            # the whole store: bytes, or with KiB, MiB, GiB, TiB (or KB, MB, GB, TB)
      max_bytes_per_model: 4GiB   # each model's quota (by default a quarter of max_bytes)
      when_full: refuse           # past a limit: refuse the write (507), or drop_oldest (evict the oldest data)
    limits: {max_body_bytes: 16777216, max_rows_per_batch: 100000, max_models: 100,
             max_columns: 100, max_segments: 20, max_window_rows: 1000000,
             max_category_length: 256, max_concurrent_writes: 4, max_concurrent_evaluations: 2,
             max_concurrent_reports: 1, max_decoded_bytes: 134217728, max_connections: 1024, max_classes: 20,
             max_profile_rows: 100000000, max_series: 50000, max_segment_values: 100, max_replicas: 1000,
             max_embedding_dimensions: 4096, max_text_length: 65536, max_exact_categories: 100000,
             header_timeout_seconds: 10, body_timeout_seconds: 30, idle_timeout_seconds: 60}
    auth:
      read_tokens_file: /etc/fleetscope/drift-read-tokens    # one token a line
      write_tokens_file: /etc/fleetscope/drift-write-tokens  # write tokens may also read
      metrics_require_token: false
    tls: {cert_file: server.crt, key_file: server.key}
    shard: {index: 0, count: 1}     # models spread over count instances (fleetscope.drift.sharding)
    defaults:
      window: {type: sliding, duration: 10m, rows: 100000}
      drift_share: 0.5
      uncertain_columns: exclude    # or count: see ModelConfig.uncertain_columns
    models:
      iris:
        columns: {score: numerical, label: categorical, region: categorical}
        segments: [region]
        window: {type: tumbling, duration: 5m}
        reference: {file: iris-reference.parquet}     # or {rolling: {offset: 1d, duration: 1h}}
        methods: {score: psi}
        thresholds: {score: 0.2}
        drift_share: 0.5
        evaluation_interval: 30s
        quality:                                      # ground truth joined to outputs (POST .../labels)
          task: classification                        # or regression
          request_id: request_id                      # the outputs' column naming each request (not compared)
          prediction: label                           # the predicted class (or value)
          confidence: score                           # optional: a score per prediction, for estimates
          confidence_of: prediction                   # or positive: the binary positive class's probability
          positive: "1"                               # the positive class, with confidence_of: positive
          window: 1h                                  # quality of the outputs of the last hour
          horizon: 7d                                 # labels for older outputs are refused (beyond_horizon)
          calibration_rows: 10000                     # labelled outputs before the window CBPE calibrates on
                                                      # (a regression model's: DLE learns its error from them)
        multivariate:                                 # drift of the columns together (fleetscope.drift.multivariate)
          methods: [reconstruction, classifier]       # PCA reconstruction error; domain classifier ROC AUC
          columns: [score, region]                    # optional: by default every numerical and categorical column
      search:                                         # an embedding column and a text column (rows only)
        columns: {query_vector: embedding, query: text, latency: numerical}
        dimensions: {query_vector: 384}               # optional: else the reference's vectors' length
        methods: {query_vector: mmd, query.text_length: psi}
      chat:                                           # replicas send profiles (DriftClient(mode="profile"))
        mode: profiles
        columns: {latency: numerical, tokens: numerical, finish: categorical}
        window: {type: sliding, duration: 10m}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from fleetscope import durations
from fleetscope.drift import embedding_profiles, embeddings, stattests, text_content
from fleetscope.drift.columns import (
    DEFAULT_MAX_EMBEDDING_DIMENSIONS,
    DEFAULT_MAX_TEXT_LENGTH,
    ColumnKind,
    ColumnSchema,
    category_text,
    parse_kind,
    value_rules,
)
from fleetscope.drift.profiles import EXACT_CATEGORIES, MAX_EXACT_CATEGORIES
from fleetscope.drift.sharding import shard_of
from fleetscope.drift.text_descriptors import DESCRIPTORS, descriptor_name
from fleetscope.web.connections import ConnectionLimits

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the setting."""


@dataclass(frozen=True)
class Window:
    type: str = "sliding"  # sliding: the latest duration and/or rows; tumbling: the latest complete period
    duration: float | None = 600.0
    rows: int | None = 100_000

    def check(self, where: str) -> None:
        if self.type not in ("sliding", "tumbling"):
            raise ConfigError(f"{where}.type must be sliding or tumbling, not {self.type!r}")
        if self.duration is None and self.rows is None:
            raise ConfigError(f"{where} needs a duration, rows, or both")
        if self.type == "tumbling" and self.duration is not None and self.rows is not None:
            raise ConfigError(f"{where}: a tumbling window is by duration or by rows, not both")
        if self.duration is not None and self.duration <= 0 or self.rows is not None and self.rows <= 0:
            raise ConfigError(f"{where}: duration and rows must be positive")


@dataclass(frozen=True)
class RollingReference:
    offset: float  # how far back the reference window ends, e.g. 1d for "the same hour yesterday"
    duration: float


@dataclass(frozen=True)
class QualityConfig:
    """How a model's ground truth is joined to its outputs and its quality measured (POST .../labels)."""
    task: str  # classification or regression
    prediction: str  # the output column holding the predicted class or value
    request_id: str | None = None  # the output column naming each request; None: labels come pre-joined only
    confidence: str | None = None  # a numerical output column: a score per prediction, for estimated quality
    confidence_of: str = "prediction"  # prediction: confidence in the predicted class; positive: P(positive class)
    positive: str | None = None  # the positive class, with confidence_of: positive
    window: float = 3600.0  # quality of the outputs that arrived in the last this many seconds
    horizon: float = 7 * 86400.0  # labels for outputs older than this are refused
    calibration_rows: int = 10_000

    @property
    def classification(self) -> bool:
        return self.task == "classification"


MULTIVARIATE_METHODS = ("reconstruction", "classifier")  # fleetscope.drift.multivariate.METHODS


@dataclass(frozen=True)
class MultivariateConfig:
    """Multivariate drift of a model fed rows: the methods, and the numerical and categorical columns they take."""
    methods: tuple[str, ...]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ModelConfig:
    name: str
    columns: dict[str, ColumnKind]
    segments: tuple[str, ...] = ()
    window: Window = field(default_factory=Window)
    reference_file: Path | None = None
    rolling_reference: RollingReference | None = None
    methods: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    evaluation_interval: float | None = None  # None: the service's
    # rows: replicas send output rows, stored and compared exactly; profiles: replicas send a profile per
    # interval (fleetscope.drift.profiles), merged and compared by compare_profiles().
    mode: str = "rows"
    quality: QualityConfig | None = None
    multivariate: MultivariateConfig | None = None
    # A model fed profiles: whether a column whose drift decision is uncertain (its score's error bound straddles
    # the threshold) counts toward the dataset's drift share when it is found drifted: exclude (the default: the
    # dataset is found drifted on certain columns only) or count.
    uncertain_columns: str = "exclude"

    @property
    def profiled(self) -> bool:
        return self.mode == "profiles"

    def to_json(self) -> dict:
        """The schema part that the store keeps for models created through the API."""
        dimensions = value_rules(self.columns).dimensions
        return {"columns": {name: kind.value for name, kind in self.columns.items()},
                "segments": list(self.segments), **({"mode": self.mode} if self.profiled else {}),
                **({"dimensions": dict(dimensions)} if dimensions else {})}


# Series one compared column adds to a drift result on /metrics (fleetscope.drift.service.series): score, error
# bound, threshold and detected; its missing share; its new-category or out-of-range share. And a result's own:
# drifted share, dataset detected, and the two window sizes. (Multivariate drift, config: multivariate, adds at most
# 8 more to a result, admitted within limits.max_series like the rest.)
SERIES_PER_COLUMN = 6
SERIES_PER_RESULT = 4
# The most counter and gauge series one model has besides its evaluation's and its columns' refusals (a few of
# its own, its storage, rows and batches refused by each of the ~40 reasons, labels and their delay histogram),
# and the service's own: set aside on /metrics for every model the service may hold.
COUNTER_SERIES_PER_MODEL = 120
SERVICE_SERIES = 13


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 16 * 1024 * 1024
    max_rows_per_batch: int = 100_000
    max_models: int = 100
    max_columns: int = 100
    max_segments: int = 20
    max_window_rows: int = 1_000_000
    max_category_length: int = 256
    max_concurrent_writes: int = 4
    max_concurrent_evaluations: int = 2
    max_concurrent_reports: int = 1
    max_classes: int = 20  # classes given their own model-quality series (precision, recall, f1, confusion)
    # Rows one replica's profile of one interval may summarize (a replica serving 27,000 rows a second for an hour).
    max_profile_rows: int = 100_000_000
    # Series on /metrics in all: evaluations' series past it are left off (counted, and said in /drift).
    max_series: int = 50_000
    # A model fed profiles, per interval: distinct segment labels stored, and replicas that sent a profile.
    max_segment_values: int = 100
    max_replicas: int = 1000
    # An embedding column's vectors (dimensions.<column>, or any length up to this where not declared), and a text
    # column's texts, in characters. A window of an embedding column takes rows x dimensions x 8 bytes to compare.
    max_embedding_dimensions: int = DEFAULT_MAX_EMBEDDING_DIMENSIONS
    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH
    # Categories a categorical column of a profile counts exactly (at most MAX_EXACT_CATEGORIES): a replica's profile
    # counting more is refused, and an interval's merge past it keeps a frequent-items sketch instead. An open
    # interval holds about 93 bytes a short category counted, 9.3 MB a column at 100,000 (docs/drift.md).
    max_exact_categories: int = EXACT_CATEGORIES
    # What a body may decode to (Arrow, Parquet and CSV columns; dictionary-encoded text expanded).
    max_decoded_bytes: int = 128 * 1024 * 1024
    max_connections: int = 1024
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 30
    idle_timeout_seconds: int = 60

    def most_series_of_a_model(self) -> int:
        """The most series one model's drift results can take: the model as a whole and each segment evaluated."""
        return (self.max_columns * SERIES_PER_COLUMN + SERIES_PER_RESULT) * (self.max_segments + 1)

    def most_counter_series(self) -> int:
        """The most series /metrics serves besides evaluations': counters of max_models models (and of '_unknown')
        with max_columns columns each, and the service's own."""
        return (self.max_models + 1) * (COUNTER_SERIES_PER_MODEL + self.max_columns) + SERVICE_SERIES

    def connections(self) -> ConnectionLimits:
        return ConnectionLimits(self.max_connections, self.header_timeout_seconds, self.idle_timeout_seconds,
                                self.body_timeout_seconds)


# storage.max_bytes by default: the Kubernetes manifest gives each drift shard a 20Gi volume (deploy/kubernetes.py,
# drift_storage). Of its 20 GiB, ext4 keeps about 1.5% for its journal and tables and reserves 5% for root, which the
# service (uid 65532) cannot use: about 18.7 GiB are writable. Past max_bytes the store needs room for SQLite's
# write-ahead log, which is at most journal_size_limit (64 MiB) after a checkpoint plus the largest transaction,
# and for retention's incremental vacuum, which moves at most 64 MiB between checkpoints (no full VACUUM is ever run).
# 16 GiB leaves 2.7 GiB of that: ten times the most these can take with the default limits.
DEFAULT_MAX_BYTES = 16 * 1024 ** 3
# storage.max_bytes_per_model by default: a quarter of max_bytes, so that one model (a runaway sender, or a model
# created by mistake) fills at most a quarter of the store and the others keep writing. A service with one model or
# a few should set it to max_bytes.
DEFAULT_MODEL_SHARE = 4
WHEN_FULL = ("refuse", "drop_oldest")


@dataclass(frozen=True)
class StorageLimits:
    """How much the store may hold (storage.max_bytes, max_bytes_per_model) and what a write past it meets."""
    max_bytes: int = DEFAULT_MAX_BYTES
    max_bytes_per_model: int | None = None  # None: max_bytes / DEFAULT_MODEL_SHARE
    # refuse: the write is answered 507 and nothing is stored; drop_oldest: the oldest batches, profile intervals
    # and outcomes (the model's for its quota, the whole store's for max_bytes) are deleted until it fits.
    when_full: str = "refuse"

    @property
    def model_quota(self) -> int:
        return self.max_bytes_per_model if self.max_bytes_per_model is not None else \
            self.max_bytes // DEFAULT_MODEL_SHARE


@dataclass(frozen=True)
class Auth:
    read_tokens: frozenset[str] = frozenset()
    write_tokens: frozenset[str] = frozenset()
    metrics_require_token: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.read_tokens or self.write_tokens)


@dataclass(frozen=True)
class ServiceConfig:
    listen_address: str = "127.0.0.1:9840"
    evaluation_interval: float = 60.0
    storage_path: Path = Path("fleetscope-drift.sqlite")
    retention: float = 7 * 86400.0
    # Profile intervals older than this are merged into hourly ones (storage.profile_rollup_after).
    profile_rollup_after: float = 2 * 86400.0
    storage_limits: StorageLimits = field(default_factory=StorageLimits)
    limits: Limits = field(default_factory=Limits)
    auth: Auth = field(default_factory=Auth)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    default_window: Window = field(default_factory=Window)
    default_drift_share: float = 0.5
    default_uncertain_columns: str = "exclude"
    models: dict[str, ModelConfig] = field(default_factory=dict)
    # This instance is shard `shard_index` of `shard_count` (fleetscope.drift.sharding): it holds, takes and
    # evaluates only the models whose shard that is.
    shard_index: int = 0
    shard_count: int = 1

    def owns(self, model: str) -> bool:
        return self.shard_count == 1 or shard_of(model, self.shard_count) == self.shard_index

    def with_overrides(self, **overrides: Any) -> ServiceConfig:
        config = replace(self, **{key: value for key, value in overrides.items() if value is not None})
        config.check_shard()
        return config

    def check_shard(self) -> None:
        if not 0 <= self.shard_index < self.shard_count:
            raise ConfigError(f"shard.index must be from 0 to shard.count - 1 ({self.shard_count - 1}), "
                              f"not {self.shard_index}")

    def model_from_schema(self, name: str, schema: Mapping) -> ModelConfig:
        """A model created through the API: its stored schema with the default settings."""
        return model_config(name, schema, self, Path("."))


def load(path: Path | None) -> ServiceConfig:
    if path is None:
        return ServiceConfig()
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read the config file {path}: {error}") from None
    return parse(document, base=path.parent)


def parse(document: Mapping, base: Path = Path(".")) -> ServiceConfig:
    _mapping(document, "the config")
    _only(document, "the config", {"listen_address", "evaluation_interval", "storage", "limits", "auth", "tls",
                                   "defaults", "models", "shard"})
    shard = _mapping(document.get("shard", {}), "shard")
    _only(shard, "shard", {"index", "count"})
    storage = _mapping(document.get("storage", {}), "storage")
    _only(storage, "storage", {"path", "retention", "profile_rollup_after", "max_bytes", "max_bytes_per_model",
                               "when_full"})
    limits_document = _mapping(document.get("limits", {}), "limits")
    _only(limits_document, "limits", set(Limits.__dataclass_fields__))
    limits = Limits(**{key: _positive_int(value, f"limits.{key}") for key, value in limits_document.items()})
    if limits.most_counter_series() + limits.most_series_of_a_model() > limits.max_series:
        raise ConfigError(f"/metrics may need {limits.most_counter_series():,} series for counters ((limits."
                          f"max_models + 1) x ({COUNTER_SERIES_PER_MODEL} + limits.max_columns) + {SERVICE_SERIES}) "
                          f"and {limits.most_series_of_a_model():,} for one model's evaluation ((limits.max_columns x "
                          f"{SERIES_PER_COLUMN} + {SERIES_PER_RESULT}) x (limits.max_segments + 1)), more than "
                          f"limits.max_series ({limits.max_series:,}): lower max_models, max_columns or "
                          "max_segments, or raise max_series")
    if limits.max_exact_categories > MAX_EXACT_CATEGORIES:
        raise ConfigError(f"limits.max_exact_categories must be at most {MAX_EXACT_CATEGORIES} (what a profile "
                          f"counts exactly at most), not {limits.max_exact_categories}")
    tls = _mapping(document.get("tls", {}), "tls")
    _only(tls, "tls", {"cert_file", "key_file"})
    if bool(tls.get("cert_file")) != bool(tls.get("key_file")):
        raise ConfigError("tls needs both cert_file and key_file")
    defaults = _mapping(document.get("defaults", {}), "defaults")
    _only(defaults, "defaults", {"window", "drift_share", "uncertain_columns"})
    config = ServiceConfig(
        listen_address=str(document.get("listen_address", ServiceConfig.listen_address)),
        evaluation_interval=_duration(document.get("evaluation_interval", "1m"), "evaluation_interval"),
        storage_path=base / str(storage.get("path", ServiceConfig.storage_path)),
        retention=_duration(storage.get("retention", "7d"), "storage.retention"),
        profile_rollup_after=_duration(storage.get("profile_rollup_after", "2d"), "storage.profile_rollup_after"),
        storage_limits=_storage_limits(storage),
        limits=limits,
        auth=_auth(_mapping(document.get("auth", {}), "auth"), base),
        tls_cert_file=base / tls["cert_file"] if tls.get("cert_file") else None,
        tls_key_file=base / tls["key_file"] if tls.get("key_file") else None,
        default_window=_window(defaults.get("window"), Window(), "defaults.window"),
        default_drift_share=_share(defaults.get("drift_share", 0.5), "defaults.drift_share"),
        default_uncertain_columns=_uncertain(defaults.get("uncertain_columns", "exclude"),
                                             "defaults.uncertain_columns"),
        shard_count=_positive_int(shard.get("count", 1), "shard.count"),
        shard_index=_whole(shard.get("index", 0), "shard.index"),
    )
    config.check_shard()
    models = _mapping(document.get("models", {}), "models")
    if len(models) > limits.max_models:
        raise ConfigError(f"the config declares {len(models)} models; limits.max_models is {limits.max_models}")
    parsed = {str(name): model_config(str(name), _mapping(body, f"models.{name}"), config, base)
              for name, body in models.items()}
    return replace(config, models=parsed)


def model_config(name: str, document: Mapping, service: ServiceConfig, base: Path) -> ModelConfig:
    where = f"models.{name}"
    if not MODEL_NAME.match(name):
        raise ConfigError(f"{where}: a model name is 1-128 letters, digits, '_', '.', ':' or '-'")
    _only(document, where, {"columns", "segments", "window", "reference", "methods", "thresholds", "drift_share",
                            "evaluation_interval", "mode", "quality", "uncertain_columns", "dimensions",
                            "multivariate"})
    mode = str(document.get("mode", "rows"))
    if mode not in ("rows", "profiles"):
        raise ConfigError(f"{where}.mode must be rows or profiles, not {mode!r}")
    columns_document = _mapping(document.get("columns"), f"{where}.columns")
    if not columns_document:
        raise ConfigError(f"{where}.columns must name at least one column and its kind")
    if len(columns_document) > service.limits.max_columns:
        raise ConfigError(f"{where} has {len(columns_document)} columns; limits.max_columns is "
                          f"{service.limits.max_columns}")
    columns = {}
    for column, kind in columns_document.items():
        if not COLUMN_NAME.match(str(column)):
            raise ConfigError(f"{where}.columns: {column!r} is not a valid column name")
        try:
            columns[str(column)] = parse_kind(str(kind))
        except ValueError as error:
            raise ConfigError(f"{where}.columns.{column}: {error}") from None
    columns = _rows_only_columns(columns, document, service.limits, where)
    segments = tuple(str(segment) for segment in document.get("segments") or ())
    for segment in segments:
        if columns.get(segment) is not ColumnKind.CATEGORICAL:
            raise ConfigError(f"{where}.segments: {segment!r} must be one of the model's categorical columns")
    methods = {str(column): str(method) for column, method in
               _mapping(document.get("methods", {}), f"{where}.methods").items()}
    compared = _compared_columns(columns)
    for column, method in methods.items():
        if column not in compared:
            raise ConfigError(f"{where}.methods: {column!r} is not one of the model's columns")
        try:
            _check_method(method, compared[column])
        except ValueError as error:
            raise ConfigError(f"{where}.methods.{column}: {error}") from None
    if mode == "profiles":
        _check_profiled_embeddings(columns, methods, where)
    thresholds = {}
    for column, threshold in _mapping(document.get("thresholds", {}), f"{where}.thresholds").items():
        if column not in compared:
            raise ConfigError(f"{where}.thresholds: {column!r} is not one of the model's columns")
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not threshold == threshold:
            raise ConfigError(f"{where}.thresholds.{column} must be a number")
        thresholds[str(column)] = float(threshold)
    reference = _mapping(document.get("reference", {}), f"{where}.reference")
    _only(reference, f"{where}.reference", {"file", "rolling"})
    if "file" in reference and "rolling" in reference:
        raise ConfigError(f"{where}.reference is a file or a rolling window, not both")
    rolling = None
    if "rolling" in reference:
        body = _mapping(reference["rolling"], f"{where}.reference.rolling")
        _only(body, f"{where}.reference.rolling", {"offset", "duration"})
        rolling = RollingReference(_duration(body.get("offset"), f"{where}.reference.rolling.offset"),
                                   _duration(body.get("duration"), f"{where}.reference.rolling.duration"))
        if rolling.offset + rolling.duration > service.retention:
            raise ConfigError(f"{where}.reference.rolling reaches back further than storage.retention keeps data")
    window = _window(document.get("window"), service.default_window, f"{where}.window")
    if mode == "profiles" and window.duration is None:
        raise ConfigError(f"{where}.window: a model fed profiles has no rows to count; give the window a duration")
    interval = document.get("evaluation_interval")
    quality = _quality(document["quality"], columns, mode, service, where) if document.get("quality") else None
    multivariate = (_multivariate(document["multivariate"], columns, segments, mode, where)
                    if document.get("multivariate") else None)
    return ModelConfig(
        name=name, columns=columns, segments=segments,
        window=window, mode=mode, quality=quality, multivariate=multivariate,
        reference_file=base / str(reference["file"]) if "file" in reference else None,
        rolling_reference=rolling, methods=methods, thresholds=thresholds,
        drift_share=_share(document.get("drift_share", service.default_drift_share), f"{where}.drift_share"),
        uncertain_columns=_uncertain(document.get("uncertain_columns", service.default_uncertain_columns),
                                     f"{where}.uncertain_columns"),
        evaluation_interval=_duration(interval, f"{where}.evaluation_interval") if interval is not None else None)


def _quality(document: Any, columns: dict[str, ColumnKind], mode: str, service: ServiceConfig,
             model_where: str) -> QualityConfig:
    where = f"{model_where}.quality"
    document = _mapping(document, where)
    _only(document, where, {"task", "request_id", "prediction", "confidence", "confidence_of", "positive", "window",
                            "horizon", "calibration_rows"})
    task = str(document.get("task", ""))
    if task not in ("classification", "regression"):
        raise ConfigError(f"{where}.task must be classification or regression, not {task!r}")
    prediction = str(document.get("prediction", ""))
    wanted = ColumnKind.CATEGORICAL if task == "classification" else ColumnKind.NUMERICAL
    if columns.get(prediction) is not wanted:
        raise ConfigError(f"{where}.prediction must name one of the model's {wanted.name.lower()} columns "
                          f"(a {task} model's prediction), not {prediction!r}")
    confidence = document.get("confidence")
    if confidence is not None and (task != "classification" or columns.get(str(confidence)) is not
                                   ColumnKind.NUMERICAL):
        raise ConfigError(f"{where}.confidence must name one of a classifier's numerical columns")
    confidence_of = str(document.get("confidence_of", "prediction"))
    if confidence_of not in ("prediction", "positive"):
        raise ConfigError(f"{where}.confidence_of must be prediction or positive, not {confidence_of!r}")
    positive = document.get("positive")
    if confidence_of == "positive" and (positive is None or confidence is None):
        raise ConfigError(f"{where}: confidence_of: positive needs the confidence column and the positive class")
    request_id = document.get("request_id")
    if request_id is not None:
        if mode == "profiles":
            raise ConfigError(f"{where}.request_id: a model fed profiles stores no outputs to join labels to; send "
                              "labels pre-joined (prediction, confidence, actual)")
        if not COLUMN_NAME.match(str(request_id)) or str(request_id) in columns:
            raise ConfigError(f"{where}.request_id must name a column that is not one of the compared columns")
    quality = QualityConfig(
        task=task, prediction=prediction, request_id=None if request_id is None else str(request_id),
        confidence=None if confidence is None else str(confidence), confidence_of=confidence_of,
        positive=_category(positive, f"{where}.positive"),
        window=_duration(document.get("window", "1h"), f"{where}.window"),
        horizon=_duration(document.get("horizon", "7d"), f"{where}.horizon"),
        calibration_rows=_positive_int(document.get("calibration_rows", 10_000), f"{where}.calibration_rows"))
    if quality.horizon > service.retention:
        raise ConfigError(f"{where}.horizon is longer than storage.retention keeps outputs")
    return quality


def _multivariate(document: Any, columns: dict[str, ColumnKind], segments: tuple[str, ...], mode: str,
                  model_where: str) -> MultivariateConfig:
    where = f"{model_where}.multivariate"
    document = _mapping(document, where)
    _only(document, where, {"methods", "columns"})
    if mode == "profiles":
        raise ConfigError(f"{where}: a model fed profiles cannot have multivariate drift: its profiles summarize each "
                          "column alone, and neither a PCA's reconstruction error nor a classifier telling windows "
                          "apart can be computed, or bounded, from per-column sketches; send rows (mode: rows)")
    methods = document.get("methods", list(MULTIVARIATE_METHODS))
    if not isinstance(methods, list) or not methods or not all(method in MULTIVARIATE_METHODS for method in methods):
        raise ConfigError(f"{where}.methods must list one or more of {', '.join(MULTIVARIATE_METHODS)}, not "
                          f"{str(methods)[:200]}")
    usable = [name for name, kind in columns.items() if kind in (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL)]
    chosen = document.get("columns", [name for name in usable if name not in segments])
    if not isinstance(chosen, list) or not chosen:
        raise ConfigError(f"{where}.columns must list one or more of the model's numerical or categorical columns")
    for column in chosen:
        if str(column) not in usable:
            raise ConfigError(f"{where}.columns: {str(column)[:200]!r} is not one of the model's numerical or "
                              f"categorical columns ({', '.join(usable)})")
    if len(set(map(str, chosen))) != len(chosen):
        raise ConfigError(f"{where}.columns names a column twice")
    return MultivariateConfig(tuple(dict.fromkeys(map(str, methods))), tuple(map(str, chosen)))


def _rows_only_columns(columns: dict[str, ColumnKind], document: Mapping, limits: Limits,
                       where: str) -> ColumnSchema:
    """The columns as a ColumnSchema: with the declared dimension of each embedding column (dimensions), and the
    limits on embedding and text values. A text column counts toward limits.max_columns as itself and its
    descriptors, each of which is a compared column with its own series."""
    descriptors = {descriptor_name(name, descriptor) for name, kind in columns.items() if kind is ColumnKind.TEXT
                   for descriptor in DESCRIPTORS}
    clashing = sorted(descriptors & set(columns))
    if clashing:
        raise ConfigError(f"{where}.columns: {clashing[0]!r} is also the name of a text column's descriptor; "
                          "rename it")
    counted = len(columns) + len(DESCRIPTORS) * sum(kind is ColumnKind.TEXT for kind in columns.values())
    if counted > limits.max_columns:
        raise ConfigError(f"{where} compares {counted} columns (each text column is itself and {len(DESCRIPTORS)} "
                          f"descriptors); limits.max_columns is {limits.max_columns}")
    dimensions = {}
    for column, value in _mapping(document.get("dimensions", {}), f"{where}.dimensions").items():
        if columns.get(str(column)) is not ColumnKind.EMBEDDING:
            raise ConfigError(f"{where}.dimensions: {column!r} is not one of the model's embedding columns")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limits.max_embedding_dimensions:
            raise ConfigError(f"{where}.dimensions.{column} must be a whole number from 1 to "
                              f"limits.max_embedding_dimensions ({limits.max_embedding_dimensions}), not {value!r}")
        dimensions[str(column)] = value
    return ColumnSchema(columns, dimensions, limits.max_embedding_dimensions, limits.max_text_length)


def _check_profiled_embeddings(columns: ColumnSchema, methods: Mapping[str, str], where: str) -> None:
    """A model fed profiles compares an embedding column from its profiles' sum vectors: by a distance method
    (fleetscope.drift.embedding_profiles), with its dimension declared so that a replica's profile of another is
    refused when it arrives, before it could meet the others' in a merge."""
    for name, kind in columns.items():
        if kind is not ColumnKind.EMBEDDING:
            continue
        refusal = embedding_profiles.refusal(methods.get(name))
        if refusal is not None:
            raise ConfigError(f"{where}.methods.{name}: a model fed profiles compares embedding column {name!r} from "
                              f"a count and sum vector per profile: {refusal}")
        if name not in columns.dimensions:
            raise ConfigError(f"{where}.dimensions.{name}: a model fed profiles declares each embedding column's "
                              "dimension, so that a profile of other vectors is refused when it arrives")


def _compared_columns(columns: Mapping[str, ColumnKind]) -> dict[str, ColumnKind]:
    """The columns a drift result holds: the model's, and each text column's descriptors (numerical)."""
    compared = dict(columns)
    for name, kind in columns.items():
        if kind is ColumnKind.TEXT:
            compared.update({descriptor_name(name, descriptor): ColumnKind.NUMERICAL for descriptor in DESCRIPTORS})
    return compared


def _check_method(method: str, kind: ColumnKind) -> None:
    if kind is ColumnKind.EMBEDDING:
        embeddings.get(method)
    elif kind is ColumnKind.TEXT:
        text_content.get(method)
    else:
        stattests.get(method, kind)


def _category(value: Any, where: str) -> str | None:
    try:
        return category_text(value)
    except TypeError:
        raise ConfigError(f"{where} must be a class name: a string, an integer or a boolean") from None


def _auth(document: Mapping, base: Path) -> Auth:
    _only(document, "auth", {"read_tokens", "write_tokens", "read_tokens_file", "write_tokens_file",
                             "metrics_require_token"})

    def tokens(kind: str) -> frozenset[str]:
        found = [str(token) for token in document.get(f"{kind}_tokens") or ()]
        if document.get(f"{kind}_tokens_file"):
            path = base / str(document[f"{kind}_tokens_file"])
            try:
                found += [line.strip() for line in path.read_text().splitlines() if line.strip()]
            except (OSError, UnicodeDecodeError) as error:
                raise ConfigError(f"auth.{kind}_tokens_file: cannot read {path}: {error}") from None
        for token in found:
            if len(token) < 16:
                raise ConfigError(f"auth.{kind}_tokens: tokens must be at least 16 characters")
            if not (token.isascii() and token.isprintable()) or " " in token:
                raise ConfigError(f"auth.{kind}_tokens: a token must be printable ASCII without spaces (it is "
                                  "sent in an HTTP header); generate one with `openssl rand -hex 32`")
        return frozenset(found)

    write = tokens("write")
    return Auth(read_tokens=tokens("read") | write, write_tokens=write,
                metrics_require_token=bool(document.get("metrics_require_token", False)))


def _window(document: Any, default: Window, where: str) -> Window:
    if document is None:
        return default
    _mapping(document, where)
    _only(document, where, {"type", "duration", "rows"})
    window = Window(
        type=str(document.get("type", "sliding")),
        duration=_duration(document["duration"], f"{where}.duration") if document.get("duration") else None,
        rows=_positive_int(document["rows"], f"{where}.rows") if document.get("rows") else None)
    window.check(where)
    return window


MIN_STORE_BYTES = 1024 ** 2
MAX_SIZE_BYTES = 1024 ** 6  # an EiB: past any disk, and within SQLite's and Python's integers
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?$")
_SIZE_UNITS: dict[str | None, int] = {
    None: 1, "B": 1, **{f"{prefix}B": 1000 ** power for power, prefix in enumerate("KMGT", 1)},
    **{f"{prefix}iB": 1024 ** power for power, prefix in enumerate("KMGT", 1)}}


def _storage_limits(storage: Mapping) -> StorageLimits:
    max_bytes = _size(storage.get("max_bytes", DEFAULT_MAX_BYTES), "storage.max_bytes")
    if max_bytes < MIN_STORE_BYTES:
        raise ConfigError(f"storage.max_bytes must be at least 1MiB (the store's own tables take about 200KiB), "
                          f"not {max_bytes} bytes")
    per_model = storage.get("max_bytes_per_model")
    per_model = None if per_model is None else _size(per_model, "storage.max_bytes_per_model")
    if per_model is not None and per_model > max_bytes:
        raise ConfigError(f"storage.max_bytes_per_model ({per_model} bytes) is larger than storage.max_bytes "
                          f"({max_bytes} bytes): a model cannot hold more than the whole store")
    when_full = str(storage.get("when_full", "refuse"))
    if when_full not in WHEN_FULL:
        raise ConfigError(f"storage.when_full must be refuse or drop_oldest, not {when_full!r}")
    return StorageLimits(max_bytes, per_model, when_full)


def _size(value: Any, where: str) -> int:
    """A size in bytes: a whole number, or a number and a unit (16GiB, 500 MB)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{where} must be a number of bytes or a size such as 16GiB or 500MB, not {value!r}")
    match = _SIZE.match(str(value).strip())
    if match is None:
        raise ConfigError(f"{where}: {value!r} is not a size; write a number of bytes, or a number and one of "
                          "KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (of 1000), e.g. 16GiB")
    amount = float(match.group(1)) * _SIZE_UNITS[match.group(2)]  # a 400-digit number is infinite here
    if not amount < MAX_SIZE_BYTES:
        raise ConfigError(f"{where} must be less than 1EiB, not {str(value)[:40]}")
    size = int(amount)
    if size <= 0:
        raise ConfigError(f"{where} must be more than 0 bytes")
    return size


def _mapping(value: Any, where: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    return value


def _only(document: Mapping, where: str, allowed: set[str]) -> None:
    unknown = set(map(str, document)) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(allowed))}")


def _duration(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    try:
        seconds = durations.parse(str(value))
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if seconds <= 0:
        raise ConfigError(f"{where} must be positive")
    return seconds


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where} must be a positive whole number, not {value!r}")
    return value


def _whole(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where} must be a whole number from 0, not {value!r}")
    return value


def _uncertain(value: Any, where: str) -> str:
    if value not in ("exclude", "count"):
        raise ConfigError(f"{where} must be exclude or count, not {value!r}")
    return str(value)


def _share(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
        raise ConfigError(f"{where} must be a number in (0, 1]")
    return float(value)

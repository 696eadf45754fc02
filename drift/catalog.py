"""Every metric the drift service and its client produce, declared once. Consumers import from here.

Drift series carry the model and, when the model is evaluated per segment (region,
model_version, ...), a `segment` label such as "region=eu,model_version=v2"; the series of
the model as a whole carry no segment label. Segments are bounded by limits.max_segments,
columns by limits.max_columns and models by limits.max_models.
"""

from fleetscope.catalog import MetricSpec, check_unique
from fleetscope.self_metrics import BUILD_INFO  # every fleetscope process serves it (the core declares it once)

SEGMENT = ("segment",)


def _drift(name: str, type_: str, help_: str, *labels: str, segmented: bool = False) -> MetricSpec:
    return MetricSpec(f"fleetscope_drift_{name}", type_, help_, labels, SEGMENT if segmented else ())


SCORE = _drift(
    "score", "gauge",
    "Latest drift score of a column against the model's reference: a p-value for tests (ks, chisquare, z, ...), "
    "a distance for the others (wasserstein, jensenshannon, psi, ...), a classifier's ROC AUC or a share for "
    "embedding and text columns (model, ratio, text_content_drift, ...); method says which.",
    "model", "column", "method", segmented=True)
THRESHOLD = _drift(
    "threshold", "gauge",
    "Threshold the column's score is compared with: drift when a p-value falls below it or a distance reaches it.",
    "model", "column", "method", segmented=True)
SCORE_ERROR_BOUND = _drift(
    "score_error_bound", "gauge",
    "Absolute bound on the error of the column's score: 0 where the score is exact (rows, or a profile's exact "
    "counts), above 0 where a model fed profiles is scored from sketches (at the sketches' 99% confidence). The "
    "drift decision is certain where |score - threshold| exceeds it.",
    "model", "column", "method", segmented=True)
DETECTED = _drift(
    "detected", "gauge", "1 when the latest evaluation found the column drifted, else 0.",
    "model", "column", segmented=True)
DECISION_CERTAIN = _drift(
    "decision_certainty_state", "gauge",
    "1 when the column's latest drift decision is certain: its score is exact, or its error bound (a model fed "
    "profiles) does not reach the threshold; 0 when the bound straddles it and the decision could go either way.",
    "model", "column", segmented=True)
UNCERTAIN_SHARE = _drift(
    "uncertain_ratio", "gauge",
    "Share of the model's compared columns whose latest drift decision is uncertain (the score's error bound "
    "straddles the threshold); by default they do not count toward the dataset's drift (uncertain_columns).",
    "model", segmented=True)
SHARE = _drift(
    "share_ratio", "gauge",
    "Share of the model's columns found drifted in the latest evaluation (for a model fed profiles, by default "
    "only those whose decision is certain).",
    "model", segmented=True)
DATASET_DETECTED = _drift(
    "dataset_detected", "gauge",
    "1 when the share of drifted columns reached the model's drift_share in the latest evaluation, else 0.",
    "model", segmented=True)
WINDOW_ROWS = _drift(
    "window_rows", "gauge", "Rows in the window compared by the latest evaluation, current or reference.",
    "model", "window", segmented=True)
# Multivariate drift (config: multivariate; fleetscope.drift.multivariate, as NannyML 0.13.1 computes it): the columns
# together, per model and per segment.
MULTIVARIATE_RECONSTRUCTION_SCORE = _drift(
    "multivariate_reconstruction_score", "gauge",
    "Mean PCA reconstruction error of the current window's rows (standardized columns, PCA fitted on the reference "
    "keeping 65% of its variance): it grows when the columns stop varying together as they did in the reference.",
    "model", segmented=True)
MULTIVARIATE_RECONSTRUCTION_BOUND = _drift(
    "multivariate_reconstruction_bound", "gauge",
    "Band of the reconstruction error: the mean +/- 3 standard deviations of it over the reference cut into chunks "
    "of the current window's rows (bound=lower or upper; no lower series where that end is at or below 0).",
    "model", "bound", segmented=True)
MULTIVARIATE_CLASSIFIER_AUC = _drift(
    "multivariate_domain_classifier_auc_ratio", "gauge",
    "ROC AUC of a LightGBM classifier telling the current window's rows from the reference's (5-fold "
    "cross-validated): 0.5 when they cannot be told apart, 1 when they always can.",
    "model", segmented=True)
MULTIVARIATE_CLASSIFIER_BOUND = _drift(
    "multivariate_domain_classifier_bound", "gauge",
    "Band of the domain classifier's ROC AUC, NannyML's constant 0.45 to 0.65 (bound=lower or upper).",
    "model", "bound", segmented=True)
MULTIVARIATE_DETECTED = _drift(
    "multivariate_detected", "gauge",
    "1 when the latest evaluation found the method's multivariate value outside its band, else 0; "
    "method is reconstruction or classifier.",
    "model", "method", segmented=True)
MULTIVARIATE_METRICS = (MULTIVARIATE_RECONSTRUCTION_SCORE, MULTIVARIATE_RECONSTRUCTION_BOUND,
                        MULTIVARIATE_CLASSIFIER_AUC, MULTIVARIATE_CLASSIFIER_BOUND, MULTIVARIATE_DETECTED)

ROWS_ACCEPTED = _drift(
    "rows_accepted_total", "counter",
    "Output rows accepted and stored durably (for a model fed profiles, the rows its profiles summarize).",
    "model")
PROFILES_ACCEPTED = _drift(
    "profiles_accepted_total", "counter",
    "Profiles (one replica's outputs of one interval) accepted and merged durably; a retried or duplicate "
    "profile is not counted again. Their rows count in fleetscope_drift_rows_accepted_total.", "model")
PROFILE_INTERVALS_UNUSABLE = _drift(
    "profile_intervals_unusable_total", "counter",
    "Stored profile intervals an evaluation left out because they could not be read or merged (written by an "
    "older fleetscope that checked profiles less); the rest of the window is still evaluated.", "model")
SERIES_LIMIT = _drift(
    "max_series", "gauge", "limits.max_series: the most series this page holds.")
SERIES_DROPPED = _drift(
    "dropped_series", "gauge",
    "Series of the model's latest evaluation left off this page because it holds limits.max_series "
    "(the model as a whole and its largest segments are kept first).", "model")
ROWS_REJECTED = _drift(
    "rows_rejected_total", "counter",
    "Output rows refused, by reason; rows of a body that could not be parsed are not counted here.",
    "model", "reason")
BATCHES_REJECTED = _drift(
    "batches_rejected_total", "counter",
    "Requests refused, by reason (malformed, schema, too_large, unauthorized, overloaded, unknown_model, ...).",
    "model", "reason")
ROWS_REFUSED_BY_COLUMN = _drift(
    "column_rows_refused_total", "counter",
    "Output rows refused because a value of this column was of the wrong type, not finite, too long or not "
    "text (the whole batch is refused; its rows are counted here and in rows_rejected_total by reason).",
    "model", "column")
MISSING = _drift(
    "missing_ratio", "gauge", "Share of the current window's rows in which the column has no value (null, NaN).",
    "model", "column")
NEW_CATEGORIES = _drift(
    "new_category_ratio", "gauge",
    "Share of the current window's values of a categorical column that the reference never held (for a model "
    "fed profiles past 1,000 categories, an upper bound: values too rare for the sketch to list count as new).",
    "model", "column")
OUT_OF_RANGE = _drift(
    "out_of_range_ratio", "gauge",
    "Share of the current window's values of a numerical column below the reference's minimum or above its "
    "maximum (for a model fed profiles past 1,000 values, from its quantile sketch: within twice its rank error).",
    "model", "column")
EVALUATIONS = _drift(
    "evaluations_total", "counter", "Evaluations run, by outcome (success, no_data, error).", "model", "outcome")
LAST_EVALUATION = _drift(
    "last_evaluation_timestamp_seconds", "gauge", "Unix time the model was last evaluated successfully.", "model")
EVALUATION_DURATION = _drift(
    "evaluation_duration_seconds", "gauge", "Time the model's latest evaluation took.", "model")
MODELS = _drift("models", "gauge", "Models the service holds a schema for.")
STORE_SIZE = _drift(
    "store_size_bytes", "gauge", "Size of the service's store on disk, database and write-ahead log.")
STORAGE_LIMIT = _drift(
    "storage_limit_bytes", "gauge",
    "Bytes the store may hold, as configured: scope=store is storage.max_bytes (the whole store), scope=model "
    "storage.max_bytes_per_model (each model's quota). Past them writes are refused with 507 or, with "
    "storage.when_full: drop_oldest, the oldest data is deleted.", "scope")
STORAGE_USED = _drift(
    "storage_used_bytes", "gauge",
    "Bytes the store holds as storage.max_bytes counts them: SQLite's pages in use (not its free pages) and its "
    "write-ahead log.")
STORAGE_MODEL_BYTES = _drift(
    "storage_model_bytes", "gauge",
    "Bytes the model's data takes in the store, as storage.max_bytes_per_model counts them: its batches, profile "
    "intervals and references as stored (compressed), and an estimate for its outcome, receipt and idempotency rows.",
    "model")
STORAGE_EVICTED = _drift(
    "storage_evicted_bytes_total", "counter",
    "Bytes of the model's oldest batches, profile intervals and outcomes deleted to make room "
    "(storage.when_full: drop_oldest), as storage.max_bytes_per_model counts them.", "model")


# Model quality: ground truth joined to outputs (POST /v1/models/{model}/labels). Classes label series up to
# limits.max_classes; a model with more keeps its overall figures and drops the per-class ones.
def _model(name: str, type_: str, help_: str, *labels: str, optional: tuple[str, ...] = (),
           buckets: tuple[float, ...] = ()) -> MetricSpec:
    return MetricSpec(f"fleetscope_model_{name}", type_, help_, labels, optional, buckets)


QUALITY = _model(
    "quality", "gauge",
    "Realized quality of the model over the labelled outputs of its quality window, as scikit-learn computes it: "
    "metric is accuracy, precision, recall, f1 (macro averages; per class with a class label), roc_auc and "
    "log_loss (binary classifiers with the positive class's probability), or mae, rmse, mape (a ratio), r2 and "
    "mean_error (prediction minus actual) for regression.",
    "model", "metric", optional=("class", "segment"))
QUALITY_ESTIMATED = _model(
    "quality_estimated", "gauge",
    "Quality of the model over all outputs of its quality window, labelled or not, estimated from its calibrated "
    "confidence (NannyML's CBPE): accuracy for any classifier with a confidence; precision, recall, f1 and roc_auc "
    "too for a binary one scoring its positive class; for a regression model, its error estimated by NannyML's DLE "
    "(mae, mse, rmse) from the labelled outputs before the window.",
    "model", "metric")
QUALITY_ESTIMATED_BOUND = _model(
    "quality_estimated_bound", "gauge",
    "Lower and upper bound of the estimated quality: 3 standard deviations of the realized value over labels drawn "
    "from the calibrated probabilities (DLE: 3 sampling errors of the labelled outputs' error, not below 0).",
    "model", "metric", "bound")
QUALITY_ESTIMATED_THRESHOLD = _model(
    "quality_estimated_threshold", "gauge",
    "A regression model's estimated error (DLE: metric mae, mse or rmse) is alerted on past these: the mean +/- 3 "
    "standard deviations of the realized error over the labelled outputs before the window, cut into chunks of the "
    "window's outputs (bound=lower or upper).",
    "model", "metric", "bound")
# What DLE estimates for a regression model (fleetscope_model_quality_estimated's metric)
ESTIMATED_ERRORS = ("mae", "mse", "rmse")
CONFUSION = _model(
    "confusion_rows", "gauge",
    "Labelled outputs of the quality window by actual and predicted class (the confusion matrix); cells with no "
    "rows are absent.",
    "model", "actual", "predicted")
LABEL_COVERAGE = _model(
    "label_coverage_ratio", "gauge",
    "Share of the outputs of the quality window that have ground truth: how much of the window the realized "
    "quality rests on.",
    "model", optional=("segment",))
QUALITY_WINDOW_ROWS = _model(
    "quality_window_rows", "gauge",
    "Rows behind the model's quality: outputs in the quality window, those labelled, and the labelled outputs "
    "before it the estimate is calibrated on (rows=outputs, labelled or calibration).",
    "model", "rows")
LABELS = _model(
    "labels_total", "counter",
    "Labels received, by outcome: joined (to a stored output), prejoined (sent with their prediction), "
    "unknown_request (no stored output has the request id), beyond_horizon (the output is older than the "
    "model's quality horizon) or duplicate (the output has its label already).",
    "model", "outcome")
LABEL_DELAY = _model(
    "label_delay_seconds", "histogram",
    "Time from an output to its ground truth, for labels joined (or sent pre-joined with the output's time).",
    "model",
    # a click a second after its output to a chargeback a month after
    buckets=(1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0,
             7 * 86400.0, 30 * 86400.0))
LAST_LABEL = _model(
    "last_label_timestamp_seconds", "gauge", "Unix time a label of the model was last stored.", "model")

MODEL_QUALITY_METRICS = (QUALITY, QUALITY_ESTIMATED, QUALITY_ESTIMATED_BOUND, QUALITY_ESTIMATED_THRESHOLD, CONFUSION,
                         LABEL_COVERAGE, QUALITY_WINDOW_ROWS, LABELS, LABEL_DELAY, LAST_LABEL)

SERVICE_METRICS = (SCORE, SCORE_ERROR_BOUND, THRESHOLD, DETECTED, DECISION_CERTAIN, UNCERTAIN_SHARE,
                   SHARE, DATASET_DETECTED, WINDOW_ROWS,
                   ROWS_ACCEPTED, PROFILES_ACCEPTED, ROWS_REJECTED, BATCHES_REJECTED, ROWS_REFUSED_BY_COLUMN,
                   MISSING, NEW_CATEGORIES, OUT_OF_RANGE, EVALUATIONS, LAST_EVALUATION, EVALUATION_DURATION, MODELS,
                   STORE_SIZE, PROFILE_INTERVALS_UNUSABLE, SERIES_LIMIT, SERIES_DROPPED, STORAGE_LIMIT, STORAGE_USED,
                   STORAGE_MODEL_BYTES, STORAGE_EVICTED, *MULTIVARIATE_METRICS, *MODEL_QUALITY_METRICS, BUILD_INFO)

CLIENT_ROWS_SENT = _drift(
    "client_rows_sent_total", "counter", "Output rows the drift client delivered to the drift service.", "model")
CLIENT_ROWS_DROPPED = _drift(
    "client_rows_dropped_total", "counter",
    "Output rows the drift client dropped, by reason (queue_full, retries_exhausted, closed; storage_full: the "
    "service's store was full and they could not wait, the queue being full, the client closing or their profile's "
    "interval too old; the service's own reason where it refused them, such as unknown_model or schema, or rejected "
    "where it gave none).",
    "model", "reason")
CLIENT_QUEUE_ROWS = _drift(
    "client_queue_rows", "gauge", "Output rows waiting in the drift client's queue.", "model")

CLIENT_METRICS = (CLIENT_ROWS_SENT, CLIENT_ROWS_DROPPED, CLIENT_QUEUE_ROWS)
ALL = SERVICE_METRICS + CLIENT_METRICS
check_unique(ALL)

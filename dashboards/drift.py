"""Model drift: per model the share of drifted columns, per column the score against its
threshold over time, data quality per column, model quality against ground truth (realized and
estimated), what the drift service ingests and rejects, and links to its reports."""

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as models

from fleetscope.dashboards.build import (
    RATE,
    Query,
    Row,
    dashboard,
    datasource_variable,
    label_variable,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import TITLES, UIDS, links_except, m
from fleetscope.drift import catalog as drift
from fleetscope.mixin.config import MonitoringConfig
from fleetscope.mixin.matchers import matchers

MODEL_FILTERS = 'cluster=~"$cluster",model=~"$model"'
VERDICT_COLUMNS = "model, column, method"
REPORT = "${drift_service}/v1/models/${model}/report"


def build(config: MonitoringConfig | None = None) -> dict:
    service = (config or MonitoringConfig()).selectors.drift_service
    model = matchers(service, MODEL_FILTERS)
    whole = model + ',segment=""'  # the model as a whole, not one segment
    segments = model + ',segment!=""'
    by_column = whole + ',column=~"$column"'
    verdict = Row("Drift per model", [
        stat_panel("Models drifted now", "Models whose latest evaluation found the dataset drifted.", "none",
                   Query(f"sum({m(drift.DATASET_DETECTED, whole)})"), thresholds=[(1, "red")]),
        stat_panel("Columns drifted now", "Columns found drifted in the latest evaluations.", "none",
                   Query(f"sum({m(drift.DETECTED, by_column)})"), thresholds=[(1, "orange")]),
        stat_panel("Time since last evaluation", "Seconds since each model was last evaluated successfully.",
                   "s", Query(f"time() - max by (model) ({m(drift.LAST_EVALUATION, model)})", "{{model}}"),
                   thresholds=[(300, "orange"), (900, "red")], width=12),
        timeseries_panel("Share of drifted columns", "Share of each model's columns whose latest evaluation found "
                                                     "drift; the dataset counts as drifted at its drift_share.",
                         "percentunit", Query(m(drift.SHARE, whole), "{{model}}"), min=0, max=1,
                         thresholds=[(0.5, "red")], links=[("Drift report for $model", REPORT)]),
        timeseries_panel("Segments drifted", "Share of drifted columns in each segment of the model (region, "
                                             "version, ...).", "percentunit",
                         Query(m(drift.SHARE, segments), "{{model}} {{segment}}"), min=0, max=1),
    ])
    columns = Row("Columns", [
        timeseries_panel("Drift score by column", "Each column's score from its test: a p-value for ks, "
                                                  "chisquare and z (drift below the threshold), a distance for "
                                                  "wasserstein, jensenshannon, psi (drift at or above it). "
                                                  "Embedding columns: a classifier's ROC AUC (model), the share "
                                                  "of components drifted (ratio), a distance (distance, mmd); text "
                                                  "columns: a classifier's ROC AUC (text_content_drift), and each "
                                                  "descriptor (<column>.text_length, ...) as a numerical column.",
                         "none",
                         Query(m(drift.SCORE, by_column), "{{model}} {{column}} ({{method}})"),
                         links=[("Drift report for $model", REPORT)]),
        timeseries_panel("Score over threshold", "Score divided by its threshold: above 1 is drift for distances, "
                                                 "below 1 is drift for p-values.", "none",
                         Query(f"{m(drift.SCORE, by_column)} / {m(drift.THRESHOLD, by_column)}",
                               "{{model}} {{column}} ({{method}})")),
        table_panel("Latest verdict per column", "Each column's latest method, score, threshold, verdict "
                                                 "(1 drifted) and whether it is certain (a model fed profiles: "
                                                 "the score's error bound does not straddle the threshold).", "none",
                    Query(f"max by ({VERDICT_COLUMNS}) ({m(drift.SCORE, by_column)})", "score"),
                    Query(f"max by ({VERDICT_COLUMNS}) ({m(drift.THRESHOLD, by_column)})", "threshold"),
                    Query(f"max by (model, column) ({m(drift.DETECTED, by_column)})", "drifted"),
                    Query(f"max by (model, column) ({m(drift.DECISION_CERTAIN, by_column)})", "certain"),
                    columns=VERDICT_COLUMNS.split(", "), mappings={"drifted": {"0": "no", "1": "drifted"},
                                                                   "certain": {"0": "uncertain", "1": "certain"}},
                    width=24, links=[("Drift report", REPORT)]),
    ])
    together = Row("Multivariate drift", [
        timeseries_panel("Reconstruction error", "Mean PCA reconstruction error of each model's current window "
                                                 "(and each segment's), with its band from the reference: it leaves "
                                                 "the band when the columns stop varying together as they did.",
                         "none", Query(m(drift.MULTIVARIATE_RECONSTRUCTION_SCORE, model), "{{model}} {{segment}}"),
                         Query(m(drift.MULTIVARIATE_RECONSTRUCTION_BOUND, model), "{{model}} {{segment}} {{bound}}")),
        timeseries_panel("Domain classifier ROC AUC", "How well a classifier tells each model's current window from "
                                                      "its reference (0.5: not at all), with its band (0.45 to "
                                                      "0.65).", "none",
                         Query(m(drift.MULTIVARIATE_CLASSIFIER_AUC, model), "{{model}} {{segment}}"),
                         Query(m(drift.MULTIVARIATE_CLASSIFIER_BOUND, whole), "{{model}} {{bound}}"), min=0, max=1),
    ])
    per_column = model + ',column=~"$column"'
    quality = Row("Data quality", [
        timeseries_panel("Missing values by column", "Share of the current window's rows in which each column has "
                                                     "no value (null or NaN).", "percentunit",
                         Query(m(drift.MISSING, per_column), "{{model}} {{column}}"), min=0, max=1),
        timeseries_panel("New categories by column", "Share of each categorical column's values in the current "
                                                     "window that its reference never held.", "percentunit",
                         Query(m(drift.NEW_CATEGORIES, per_column), "{{model}} {{column}}"), min=0, max=1),
        timeseries_panel("Values outside the reference range", "Share of each numerical column's values in the "
                                                               "current window below the reference's minimum or "
                                                               "above its maximum.", "percentunit",
                         Query(m(drift.OUT_OF_RANGE, per_column), "{{model}} {{column}}"), min=0, max=1),
        timeseries_panel("Rows refused by column", "Output rows refused because a value of the column had the "
                                                   "wrong type, was not finite or was too long.", "rowsps",
                         Query(f"sum by (model, column) (rate({m(drift.ROWS_REFUSED_BY_COLUMN, per_column)}[{RATE}]))",
                               "{{model}} {{column}}")),
        timeseries_panel("Score error bound", "For models fed profiles: the bound on each column's score where it "
                                              "comes from sketches (0 where exact). The verdict is certain where "
                                              "|score - threshold| exceeds it.", "none",
                         Query(m(drift.SCORE_ERROR_BOUND, by_column), "{{model}} {{column}} ({{method}})")),
        timeseries_panel("Uncertain decisions", "For models fed profiles: the share of each model's columns whose "
                                                "drift decision is uncertain (the score's error bound straddles the "
                                                "threshold). They do not count toward the dataset's drift unless "
                                                "the model's uncertain_columns is count, and do not alert.",
                         "percentunit", Query(m(drift.UNCERTAIN_SHARE, whole), "{{model}}"), min=0, max=1,
                         thresholds=[(0.25, "orange")]),
    ])
    measure = model + ',metric=~"$metric"'
    overall = whole + ',class="",metric=~"$metric"'  # the model's figures, not one class's
    model_quality = Row("Model quality", [
        timeseries_panel("Model quality: realized and estimated",
                         "Realized quality over the labelled outputs of each model's quality window (accuracy, "
                         "macro precision, recall and F1, ROC AUC and log loss; for regression MAE, RMSE, MAPE, R2 "
                         "and mean error), and for classifiers with a confidence the quality estimated over all "
                         "its outputs before their labels arrive (CBPE), with its band. The measure is chosen "
                         "at the top.", "none",
                         Query(m(drift.QUALITY, overall), "{{model}} {{metric}} realized"),
                         Query(m(drift.QUALITY_ESTIMATED, measure), "{{model}} {{metric}} estimated"),
                         Query(m(drift.QUALITY_ESTIMATED_BOUND, measure), "{{model}} {{metric}} estimated {{bound}}"),
                         width=24),
        timeseries_panel("Estimated error (DLE)", "A regression model's MAE and RMSE over all outputs of its quality "
                                                  "window, estimated before their labels arrive (DLE) with its band, "
                                                  "the range above which it alerts, and the realized value once "
                                                  "labels arrive.", "none",
                         Query(m(drift.QUALITY_ESTIMATED, model + ',metric=~"mae|rmse"'), "{{model}} {{metric}} "
                                                                                          "estimated"),
                         Query(m(drift.QUALITY_ESTIMATED_BOUND, model + ',metric=~"mae|rmse"'),
                               "{{model}} {{metric}} estimated {{bound}}"),
                         Query(m(drift.QUALITY_ESTIMATED_THRESHOLD, model + ',metric=~"mae|rmse",bound="upper"'),
                               "{{model}} {{metric}} alert threshold"),
                         Query(m(drift.QUALITY, whole + ',class="",metric=~"mae|rmse"'), "{{model}} {{metric}} "
                                                                                       "realized"), width=24),
        timeseries_panel("Label coverage", "Share of the outputs of each model's quality window (and of each "
                                           "segment) that have ground truth: how much the realized figures rest "
                                           "on.", "percentunit",
                         Query(m(drift.LABEL_COVERAGE, model), "{{model}} {{segment}}"), min=0, max=1),
        timeseries_panel("Label delay", "Time from an output to its ground truth, median and 90th percentile of "
                                        "the labels joined in each interval.", "s",
                         Query(f"histogram_quantile(0.5, sum by (model, le) "
                               f"(rate({m(drift.LABEL_DELAY, model, suffix='_bucket')}[{RATE}])))", "{{model}} p50"),
                         Query(f"histogram_quantile(0.9, sum by (model, le) "
                               f"(rate({m(drift.LABEL_DELAY, model, suffix='_bucket')}[{RATE}])))", "{{model}} p90")),
        timeseries_panel("Labels by outcome", "Labels received per second: joined to a stored output, sent "
                                              "pre-joined, or not joined (unknown request id, beyond the horizon, "
                                              "a duplicate).", "cps",
                         Query(f"sum by (model, outcome) (rate({m(drift.LABELS, model)}[{RATE}]))",
                               "{{model}} {{outcome}}")),
        timeseries_panel("Quality by segment and class", "The chosen measure's realized value in each segment "
                                                         "of the model, and each class's precision, recall and "
                                                         "F1.", "none",
                         Query(m(drift.QUALITY, segments + ',class="",metric=~"$metric"'),
                               "{{model}} {{segment}} {{metric}}"),
                         Query(m(drift.QUALITY, whole + ',class!=""'), "{{model}} {{class}} {{metric}}")),
        table_panel("Confusion by actual class", "Labelled outputs of the quality window by actual and predicted "
                                                 "class.", "none",
                    Query(f"max by (model, actual, predicted) ({m(drift.CONFUSION, model)})", "rows"),
                    columns=["model", "actual", "predicted"], width=24),
    ])
    ingest = Row("Ingest and evaluation", [
        timeseries_panel("Rows accepted per second", "Output rows the drift service stored (for models fed "
                                                     "profiles, the rows their profiles summarize).", "rowsps",
                         Query(f"sum by (model) (rate({m(drift.ROWS_ACCEPTED, model)}[{RATE}]))", "{{model}}")),
        timeseries_panel("Requests rejected per second", "Requests the drift service refused, by reason "
                                                         "(schema, not_finite, too_large, unauthorized, ...).",
                         "reqps", Query(f"sum by (model, reason) (rate({m(drift.BATCHES_REJECTED, model)}[{RATE}]))",
                                        "{{model}} {{reason}}")),
        timeseries_panel("Rows in the windows", "Rows compared by the latest evaluation, current and reference.",
                         "none", Query(m(drift.WINDOW_ROWS, whole), "{{model}} {{window}}")),
        timeseries_panel("Evaluation duration", "Time the latest evaluation of each model took.", "s",
                         Query(m(drift.EVALUATION_DURATION, model), "{{model}}")),
    ])
    variables = [datasource_variable(),
                 label_variable("cluster", "Cluster", drift.SHARE.name, service),
                 label_variable("model", "Model", drift.ROWS_ACCEPTED.name,
                                matchers(service, 'cluster=~"$cluster"')),
                 label_variable("column", "Column", drift.DETECTED.name, model),
                 label_variable("metric", "Quality measure", drift.QUALITY.name, model, one=True),
                 builders.TextBoxVariable("drift_service").label("Drift service URL (for reports)")
                 .default_value("http://fleetscope-drift:9840")
                 .current(models.VariableOption(selected=True, text="http://fleetscope-drift:9840",
                                                value="http://fleetscope-drift:9840"))]
    return dashboard(UIDS["drift"], TITLES["drift"],
                     "Model drift from the fleetscope drift service: drift share per model and segment, each "
                     "column's score against its threshold over time, ingest and rejections, and links to the "
                     "service's Evidently reports; model quality against ground truth, realized and estimated.",
                     variables, [verdict, columns, together, quality, model_quality, ingest],
                     links_except("drift"))

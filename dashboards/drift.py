"""Model drift: per model the share of drifted columns, per column the score against its
threshold over time, data quality per column, what the drift service ingests and rejects, and
links to its reports."""

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as models

from fleetscope.alerts.config import AlertsConfig
from fleetscope.alerts.rule import matchers
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

MODEL_FILTERS = 'cluster=~"$cluster",model=~"$model"'
VERDICT_COLUMNS = "model, column, method"
REPORT = "${drift_service}/v1/models/${model}/report"


def build(config: AlertsConfig | None = None) -> dict:
    service = (config or AlertsConfig()).selectors.drift_service
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
                                                  "wasserstein, jensenshannon, psi (drift at or above it).", "none",
                         Query(m(drift.SCORE, by_column), "{{model}} {{column}} ({{method}})"),
                         links=[("Drift report for $model", REPORT)]),
        timeseries_panel("Score over threshold", "Score divided by its threshold: above 1 is drift for distances, "
                                                 "below 1 is drift for p-values.", "none",
                         Query(f"{m(drift.SCORE, by_column)} / {m(drift.THRESHOLD, by_column)}",
                               "{{model}} {{column}} ({{method}})")),
        table_panel("Latest verdict per column", "Each column's latest method, score, threshold and verdict "
                                                 "(1 drifted).", "none",
                    Query(f"max by ({VERDICT_COLUMNS}) ({m(drift.SCORE, by_column)})", "score"),
                    Query(f"max by ({VERDICT_COLUMNS}) ({m(drift.THRESHOLD, by_column)})", "threshold"),
                    Query(f"max by (model, column) ({m(drift.DETECTED, by_column)})", "drifted"),
                    columns=VERDICT_COLUMNS.split(", "), mappings={"drifted": {"0": "no", "1": "drifted"}},
                    width=24, links=[("Drift report", REPORT)]),
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
                         Query(m(drift.SCORE_ERROR_BOUND, by_column), "{{model}} {{column}} ({{method}})"),
                         width=24),
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
                 label_variable("model", "Model", drift.SHARE.name, matchers(service, 'cluster=~"$cluster"')),
                 label_variable("column", "Column", drift.DETECTED.name, model),
                 builders.TextBoxVariable("drift_service").label("Drift service URL (for reports)")
                 .default_value("http://fleetscope-drift:9840")
                 .current(models.VariableOption(selected=True, text="http://fleetscope-drift:9840",
                                                value="http://fleetscope-drift:9840"))]
    return dashboard(UIDS["drift"], TITLES["drift"],
                     "Model drift from the fleetscope drift service: drift share per model and segment, each "
                     "column's score against its threshold over time, ingest and rejections, and links to the "
                     "service's Evidently reports.", variables, [verdict, columns, quality, ingest],
                     links_except("drift"))

"""Alerts on model drift and on the drift service that measures it."""

from __future__ import annotations

from fleetscope.alerts.rule import Alert, group, seconds
from fleetscope.drift import catalog as drift
from fleetscope.mixin.config import ESTIMATED, LOWER_IS_BETTER, MonitoringConfig
from fleetscope.mixin.matchers import matchers

_BY_MODEL = "cluster, job, instance, model"
_MODEL = "Model {{ $labels.model }}{{ with $labels.segment }} (segment {{ . }}){{ end }}"


def drift_alerts(config: MonitoringConfig) -> list[Alert]:
    d, s, m = config.drift, config.selectors.drift_service, config.selectors.model_servers
    rejected = f"sum by ({_BY_MODEL}) (rate({drift.ROWS_REJECTED.select(s)}[{d.rejected_for}]))"
    accepted = f"sum by ({_BY_MODEL}) (rate({drift.ROWS_ACCEPTED.select(s)}[{d.rejected_for}]))"
    return [
        Alert("FleetscopeModelDriftDetected",
              f"{drift.SHARE.select(s)}\nand\n({drift.DATASET_DETECTED.select(s)} == 1)", "ticket",
              for_=d.detected_for,
              summary="{{ $labels.model }} has drifted from its reference",
              description=f"{_MODEL} has drifted for {d.detected_for}: {{{{ $value | humanizePercentage }}}} of its "
                          "columns differ from the reference window, past the model's drift share. The drift report "
                          "shows which columns and how."),
        # A column whose decision is uncertain (a model fed profiles, its score's error bound straddling the
        # threshold) does not alert; `unless` keeps the alert for a service too old to say.
        Alert("FleetscopeModelColumnDrift",
              f"{drift.SCORE.select(s)}\nand on (cluster, job, instance, model, column, segment)\n"
              f"({drift.DETECTED.select(s)} == 1)\nunless on (cluster, job, instance, model, column, segment)\n"
              f"({drift.DECISION_CERTAIN.select(s)} == 0)", "info", for_=d.column_detected_for,
              summary="Column {{ $labels.column }} of {{ $labels.model }} has drifted",
              description=f"{_MODEL}: column {{{{ $labels.column }}}} has differed from the reference for "
                          f"{d.column_detected_for} ({{{{ $labels.method }}}} score "
                          f"{{{{ $value | printf \"%.3g\" }}}})."),
        # NannyML's alert: the columns taken together (PCA reconstruction error, domain classifier ROC AUC) left
        # their band, where each column alone may not have drifted.
        Alert("FleetscopeModelMultivariateDrift",
              f"{drift.MULTIVARIATE_DETECTED.select(s)} == 1", "ticket", for_=d.detected_for,
              summary="{{ $labels.model }}'s columns have drifted together ({{ $labels.method }})",
              description=f"{_MODEL}: its columns taken together have left the reference's band for "
                          f"{d.detected_for} ({{{{ $labels.method }}}}: the PCA reconstruction error, or the ROC AUC "
                          "of a classifier telling the window from the reference). Their relations changed, which "
                          "per-column drift can miss."),
        Alert("FleetscopeDriftEvaluationStale",
              f"time() - {drift.LAST_EVALUATION.select(s)} > {seconds(d.evaluation_stale_after)}", "ticket",
              summary="Drift of {{ $labels.model }} has not been evaluated for {{ $value | humanizeDuration }}",
              description="The drift service on {{ $labels.instance }} last evaluated model {{ $labels.model }} "
                          "successfully {{ $value | humanizeDuration }} ago. fleetscope_drift_evaluations_total "
                          "by outcome says why: no_data when no outputs arrive, error otherwise."),
        Alert("FleetscopeDriftRowsRejected",
              f"{rejected}\n/\n({rejected} + ({accepted} or {rejected} * 0))\n> {d.rejected_ratio:g}", "ticket",
              for_=d.rejected_for,
              summary="The drift service rejects {{ $value | humanizePercentage }} of {{ $labels.model }}'s rows",
              description="The drift service on {{ $labels.instance }} has rejected {{ $value | humanizePercentage }} "
                          f"of the rows sent for model {{{{ $labels.model }}}} over {d.rejected_for}: the model's "
                          "outputs no longer match its schema, and drift is measured on what is left."),
        *quality_alerts(config),
        *model_quality_alerts(config),
        Alert("FleetscopeDriftServiceDown", f"up{{{s}}} == 0", "ticket", for_=d.service_down_for,
              summary="The drift service on {{ $labels.instance }} cannot be scraped",
              description=f"Prometheus has failed to scrape the drift service on {{{{ $labels.instance }}}} for "
                          f"{d.service_down_for}: no model's drift is measured."),
        Alert("FleetscopeDriftClientDroppingRows",
              f"sum by ({_BY_MODEL}, reason) (rate({drift.CLIENT_ROWS_DROPPED.select(m)}[5m])) > 0", "ticket",
              for_=d.client_dropping_for,
              summary="{{ $labels.instance }} drops {{ $labels.model }}'s rows before the drift service",
              description="The drift client in {{ $labels.instance }} drops {{ $value | humanize }} rows a second "
                          f"of model {{{{ $labels.model }}}} ({{{{ $labels.reason }}}}), for {d.client_dropping_for}."),
    ]


def quality_alerts(config: MonitoringConfig) -> list[Alert]:
    """A column's data quality in the current window, against the reference: one alert per measure."""
    d, s = config.drift, config.selectors.drift_service
    column = "Column {{ $labels.column }} of {{ $labels.model }}"
    measures = [
        ("FleetscopeDriftColumnValuesMissing", drift.MISSING, d.missing_ratio,
         f"{column} is missing {{{{ $value | humanizePercentage }}}} of its values",
         "of its rows have no value (null or NaN)"),
        ("FleetscopeDriftNewCategories", drift.NEW_CATEGORIES, d.new_category_ratio,
         f"{column} holds categories its reference never had", "of its values are categories the reference never held"),
        ("FleetscopeDriftValuesOutOfRange", drift.OUT_OF_RANGE, d.out_of_range_ratio,
         f"{column} holds values outside its reference's range",
         "of its values lie below the reference's minimum or above its maximum"),
    ]
    return [Alert(name, f"{spec.select(s)} > {threshold:g}", "ticket", for_=d.quality_for, summary=summary,
                  description=f"{column}: in the current window {{{{ $value | humanizePercentage }}}} {what}, above "
                              f"{threshold:.0%} for {d.quality_for}. Drift is scored on the values present; this is "
                              "the data itself going wrong.")
            for name, spec, threshold, summary, what in measures]


def model_quality_alerts(config: MonitoringConfig) -> list[Alert]:
    """Realized quality against each objective, the estimate's band wholly below it before labels arrive, and the
    ground truth itself: too little of it, or none arriving."""
    d, s = config.drift, config.selectors.drift_service
    alerts = []
    coverage = drift.LABEL_COVERAGE.select(s, 'segment=""')
    overall = ('class=""', 'segment=""')  # the model as a whole: no per-class or per-segment series
    for objective in d.quality_objectives:
        selector = matchers(s, objective.selector, f'metric="{objective.metric}"')
        worse, side = (">", "above its maximum") if objective.metric in LOWER_IS_BETTER else ("<", "below")
        alerts.append(Alert(
            "FleetscopeModelQualityBelowObjective",
            f"{drift.QUALITY.select(selector, *overall)} {worse} {objective.objective:g}\n"
            f"and on (cluster, job, instance, model)\n{coverage} >= {d.min_label_coverage:g}", "ticket",
            for_=d.quality_objective_for,
            summary=f"{{{{ $labels.model }}}}'s {objective.metric} is {side} objective",
            description=f"Model {{{{ $labels.model }}}}: its realized {objective.metric} over the labelled outputs of "
                        f"its quality window is {{{{ $value | printf \"%.3g\" }}}}, {side} the objective "
                        f"{objective.objective:g}, for {d.quality_objective_for}. The model got worse on the "
                        "traffic it serves, measured against ground truth."))
        if objective.metric in ESTIMATED:
            upper = drift.QUALITY_ESTIMATED_BOUND.select(selector, 'bound="upper"')
            alerts.append(Alert(
                "FleetscopeModelEstimatedQualityBelowObjective", f"{upper} < {objective.objective:g}", "ticket",
                for_=d.quality_objective_for,
                summary=f"{{{{ $labels.model }}}}'s estimated {objective.metric} is below objective",
                description=f"Model {{{{ $labels.model }}}}: the {objective.metric} estimated from its calibrated "
                            f"confidence (CBPE) is below {objective.objective:g} even at the top of its band "
                            f"({{{{ $value | printf \"%.3g\" }}}}), for {d.quality_objective_for}, before the "
                            "window's labels are in."))
    errors = "|".join(drift.ESTIMATED_ERRORS)
    estimated = drift.QUALITY_ESTIMATED.select(s, f'metric=~"{errors}"')
    usual = drift.QUALITY_ESTIMATED_THRESHOLD.select(s, 'bound="upper"')
    alerts.append(Alert(
        "FleetscopeModelEstimatedErrorHigh", f"{estimated}\n> ignoring (bound)\n{usual}",
        "ticket", for_=d.quality_objective_for,
        summary="{{ $labels.model }}'s estimated {{ $labels.metric }} is above its usual range",
        description=f"Model {{{{ $labels.model }}}}: the {{{{ $labels.metric }}}} estimated for its current outputs "
                    f"(DLE, before their labels arrive) is {{{{ $value | printf \"%.3g\" }}}}, above the range its "
                    f"realized error kept over the labelled outputs before them, for {d.quality_objective_for}."))
    alerts.append(Alert(
        "FleetscopeModelLabelCoverageLow", f"{coverage} < {d.min_label_coverage:g}", "ticket",
        for_=d.label_coverage_for,
        summary="{{ $labels.model }} has ground truth for {{ $value | humanizePercentage }} of its outputs",
        description=f"Model {{{{ $labels.model }}}}: {{{{ $value | humanizePercentage }}}} of the outputs of its "
                    f"quality window have a label, under {d.min_label_coverage:.0%} for {d.label_coverage_for}: its "
                    "realized quality is not judged, and rests on too few rows to trust."))
    accepted = f"sum by ({_BY_MODEL}) (rate({drift.ROWS_ACCEPTED.select(s)}[15m]))"
    alerts.append(Alert(
        "FleetscopeModelLabelsStopped",
        f"time() - {drift.LAST_LABEL.select(s)} > {seconds(d.labels_stopped_after)}\n"
        f"and on (cluster, job, instance, model)\n{accepted} > 0", "ticket",
        summary="No ground truth for {{ $labels.model }} for {{ $value | humanizeDuration }}",
        description="The drift service on {{ $labels.instance }} last stored a label of model {{ $labels.model }} "
                    "{{ $value | humanizeDuration }} ago while its outputs keep arriving: the labelling pipeline "
                    "has stopped, and realized quality will go stale."))
    return alerts


def rule_groups(config: MonitoringConfig) -> dict:
    return {"groups": [group("fleetscope-drift", config.team("drift"), config, drift_alerts(config), "drift")]}

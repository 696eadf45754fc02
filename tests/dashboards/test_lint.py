"""Every generated dashboard, linted in the spirit of grafana/dashboard-linter, and its
queries parsed by promtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from fleetscope.alerts import collectives as collectives_records
from fleetscope.alerts import fleet as fleet_records
from fleetscope.alerts import generate as alerts_generate
from fleetscope.dashboards import fleet as fleet_dashboard
from fleetscope.dashboards import generate, queries
from fleetscope.dashboards.common import UIDS
from fleetscope.drift import catalog as drift_catalog
from fleetscope.exporters import catalog as exporter_catalog
from fleetscope.mixin.config import MonitoringConfig, from_mapping
from fleetscope.self_metrics import BUILD_INFO

BOARDS = queries.load()
METRIC = re.compile(r"\bfleetscope_[a-z0-9_]+")
RECORDED = re.compile(r"\bfleetscope:[a-z0-9_:]+")
WINDOW_FUNCTIONS = ("rate", "irate", "increase")
FILTERS = {"fleet": {"cluster"}, "gpu": {"cluster", "hostname", "gpu"},
           "collectives": {"cluster", "hostname"}, "inference": {"cluster", "model", "engine"},
           "drift": {"cluster", "model"}, "self": {"cluster", "job", "instance"},
           "training": {"cluster", "training_job"}, "ray": {"cluster", "instance"}}


def _specs() -> dict[str, str]:
    """Every series name a catalog produces, with its type (histograms by their series)."""
    names = {}
    for spec in exporter_catalog.ALL + drift_catalog.ALL:
        if spec.type == "histogram":
            names.update({spec.name + suffix: "counter" for suffix in ("_bucket", "_count", "_sum")})
        else:
            names[spec.name] = spec.type
    return names


SPECS = _specs()


def test_committed_files_are_what_the_generator_writes():
    for name, text in generate.files().items():
        assert (generate.DIRECTORY / name).read_text() == text, f"{name}: run python -m fleetscope.dashboards.generate"
    assert len(BOARDS) == len(UIDS) == 8


@pytest.mark.parametrize("key", UIDS)
def test_uid_title_tags_and_filters(key):
    board = next(board for board in BOARDS if board["uid"] == UIDS[key])
    assert len(board["uid"]) <= 40 and board["title"] and "fleetscope" in board["tags"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert FILTERS[key] <= set(variables)
    for name in FILTERS[key] - ({"hostname"} if key in ("gpu", "collectives") else set()):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    assert {link["url"] for link in board["links"]} == {f"/d/{uid}" for other, uid in UIDS.items() if other != key}


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_panels_have_ids_descriptions_units_datasources_and_no_overlap(board):
    seen_ids, cells = set(), set()
    for panel in board["panels"]:
        assert panel["id"] not in seen_ids, f"panel id {panel['id']} twice"
        seen_ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                   for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not covered & cells, f"panel {panel['title']!r} overlaps another"
        cells |= covered
    for panel in queries.panels(board):
        where = f"{board['uid']}: {panel['title']}"
        assert panel.get("description"), f"{where}: no description"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert panel["targets"], f"{where}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", where


def _enclosing_function(expr: str, position: int) -> str:
    depth = 0
    for index in range(position - 1, -1, -1):
        if expr[index] == ")":
            depth += 1
        elif expr[index] == "(":
            if depth == 0:
                return re.search(r"(\w*)\s*$", expr[:index]).group(1)
            depth -= 1
    return ""


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_queries_read_cataloged_metrics_counters_under_rate_and_rate_interval(board):
    for panel in queries.panel_queries(board):
        for expr in panel.exprs:
            where = f"{board['uid']}: {panel.title}: {expr}"
            for match in METRIC.finditer(expr):
                name = match.group(0)
                assert name in SPECS, f"{where}: {name} is in no catalog"
                if SPECS[name] == "counter":
                    assert _enclosing_function(expr, match.start()) in WINDOW_FUNCTIONS, \
                        f"{where}: counter {name} outside rate()/increase()"
            for function, window in re.findall(r"\b(i?rate)\([^\[]*\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", f"{where}: {function}() over {window}, not $__rate_interval"


def _recorded() -> set[str]:
    rules = Path(alerts_generate.__file__).parent / "rules"
    return {rule["record"] for name in alerts_generate.RULE_FILES
            for group in yaml.safe_load((rules / name).read_text())["groups"] for rule in group["rules"]
            if "record" in rule}


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_every_recorded_series_a_dashboard_reads_is_recorded_by_a_committed_rule(board):
    recorded = _recorded()
    texts = [expr for panel in queries.panel_queries(board) for expr in panel.exprs]
    texts += [variable.get("query", "") if isinstance(variable.get("query"), str)
              else variable.get("query", {}).get("query", "")
              for variable in board.get("templating", {}).get("list", [])]
    for text in texts:
        # A regex over names (__name__=~"fleetscope:inference_(a|b):rate5m") names each alternative.
        for prefix, names, suffix in re.findall(r'"(fleetscope:[a-z_]+)\(([a-z_|:0-9]+)\)([a-z0-9_:]*)"', text):
            for name in names.split("|"):
                assert prefix + name + suffix in recorded, f"{board['uid']}: {prefix + name + suffix}"
        for name in RECORDED.findall(text):
            if not name.endswith("_"):
                assert name in recorded, f"{board['uid']}: {name} is recorded by no rule"


def test_the_linter_catches_what_it_is_meant_to():
    expr = 'sum(fleetscope_gpu_energy_joules_total) + rate(fleetscope_gpu_energy_joules_total[5m])'
    assert _enclosing_function(expr, expr.index("fleetscope")) == "sum"
    assert re.findall(r"\b(i?rate)\([^\[]*\[([^\]]+)\]", expr) == [("rate", "5m")]


def test_every_query_parses_with_promtool(tmp_path):
    rules = []
    for board in BOARDS:
        values = queries.defaults(board)
        for panel in queries.panel_queries(board):
            for index, expr in enumerate(panel.exprs):
                rules.append({"record": f"dashboard:{board['uid'].replace('-', '_')}:{panel.panel_id}_{index}",
                              "expr": queries.concrete(expr, values, "1m")})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(rules) > 50


def test_provisioning_and_configmaps():
    files = generate.files()
    provider = yaml.safe_load(files["provisioning/dashboards.yaml"])["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == generate.MOUNT
    datasource = yaml.safe_load(files["provisioning/datasources.yaml"])["datasources"][0]
    assert datasource["type"] == "prometheus"
    configmaps = generate.configmaps(generate.dashboards())
    assert [document["metadata"]["labels"]["grafana_dashboard"] for document in configmaps] == ["1"] * len(UIDS)
    assert {name for document in configmaps for name in document["data"]} == {f"{uid}.json" for uid in UIDS.values()}


def test_the_fleets_unhealthy_count_ignores_application_xids(tmp_path):
    """Evaluated by promtool over the committed rules: an XID 13 (the application's) leaves a GPU healthy, an
    XID 48 does not, and neither does a recovery action the driver asks for. The panel reads that record."""
    [unhealthy] = [panel.exprs[0] for board in BOARDS for panel in queries.panel_queries(board)
                   if panel.title == "Unhealthy"]
    assert fleet_records.CLUSTER_UNHEALTHY in unhealthy
    labels = 'job="fleetscope-exporter",cluster="c",instance="n:9835",hostname="n",gpu="{gpu}",uuid="GPU-{gpu}"'
    tests = {"rule_files": [str(Path(alerts_generate.__file__).parent / "rules" / "gpu.yaml")],
             "evaluation_interval": "1m", "tests": [{
                 "interval": "1m",
                 "input_series": [
                     {"series": f"fleetscope_gpu_up{{{labels.format(gpu=gpu)}}}", "values": "1x30"} for gpu in range(4)
                 ] + [
                     {"series": f'fleetscope_gpu_xid_errors_total{{{labels.format(gpu=0)},xid="13"}}',
                      "values": "0 5x29"},
                     {"series": f'fleetscope_gpu_xid_errors_total{{{labels.format(gpu=1)},xid="48"}}',
                      "values": "0 1x29"},
                     {"series": f'fleetscope_gpu_recovery_action_state{{{labels.format(gpu=2)},action="gpu_reset"}}',
                      "values": "1x30"},
                     {"series": f'fleetscope_gpu_recovery_action_state{{{labels.format(gpu=3)},action="none"}}',
                      "values": "1x30"},
                 ],
                 "promql_expr_test": [
                     {"expr": fleet_records.CLUSTER_UNHEALTHY, "eval_time": "10m",
                      "exp_samples": [{"labels": f'{fleet_records.CLUSTER_UNHEALTHY}{{cluster="c"}}', "value": 2}]},
                     {"expr": fleet_records.CLUSTER_GPUS, "eval_time": "10m",
                      "exp_samples": [{"labels": f'{fleet_records.CLUSTER_GPUS}{{cluster="c"}}', "value": 4}]},
                 ],
             }]}
    path = tmp_path / "unhealthy.test.yaml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("key", ["fleet", "collectives"])
def test_the_fleet_level_dashboards_read_records_not_every_gpu_rank_or_port(key):
    """Their cost follows clusters and jobs, not nodes: every panel reads records, or raw series of the one node
    chosen; per-node panels read each cluster's (or job's) extremes records, ten series a cluster, not a line per
    node; per-GPU records hold only the GPUs that need someone (`> 0`)."""
    board = next(board for board in BOARDS if board["uid"] == UIDS[key])
    gpu_records = {rule["record"]: rule["expr"] for group in fleet_records.rule_groups(MonitoringConfig())
                   for rule in group["rules"] if rule["record"].startswith("fleetscope:gpu_")}
    raw_for_one_node = 0
    for panel in queries.panel_queries(board):
        for expr in panel.exprs:
            for name, selector in _selectors(expr):
                assert 'hostname=~"$hostname"' in selector, f"{panel.title}: reads every node's {name}"
                raw_for_one_node += 1
            assert not re.search(r"\bfleetscope_[a-z0-9_]+(?!\{)\b", expr), f"{panel.title}: an unfiltered raw read"
            for node_record in re.findall(r"fleetscope:node_[a-z0-9_]+:[a-z0-9_]+", expr):
                assert re.search(r"[:_](top|bottom)10$", node_record), f"{panel.title}: every node's {node_record}"
            for gpu_record in re.findall(r"fleetscope:gpu_[a-z0-9_]+:[a-z0-9_]+", expr):
                assert gpu_records[gpu_record].endswith(" > 0"), f"{panel.title}: every GPU's {gpu_record}"
    assert (raw_for_one_node > 0) == (key == "collectives")  # its last row: one node's ranks and ports


def _selectors(expr: str) -> list[tuple[str, str]]:
    return re.findall(r"\b(fleetscope_[a-z0-9_]+)\{([^}]*)\}", expr)


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_every_raw_series_is_scoped_to_its_producers_job_as_the_alerts_are(board):
    """A second scrape of the same exporters (a duplicate ServiceMonitor, a federation job) doubles nothing:
    the dashboards select the job the alerts select."""
    selectors = MonitoringConfig().selectors
    drift_names = {spec.name for spec in drift_catalog.ALL}
    texts = [expr for panel in queries.panel_queries(board) for expr in panel.exprs]
    texts += [variable["query"] for variable in board["templating"]["list"] if variable["type"] == "query"]
    checked = 0
    for text in texts:
        for name, matchers in _selectors(text):
            if name == BUILD_INFO.name:  # every fleetscope process serves it: the self dashboard picks jobs by it
                continue
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            job = selectors.drift_service if base in drift_names else selectors.exporter
            assert (matchers + ",").startswith(job + ","), f"{board['uid']}: {name}{{{matchers}}} not scoped to {job}"
            checked += 1
    # The inference and training dashboards and the fleet overview read only recorded series, which carry no job;
    # the Ray dashboard reads Ray's own (tests/alerts/test_ray_metric_names.py holds them to selectors.ray).
    assert checked or board["uid"] in {UIDS["inference"], UIDS["fleet"], UIDS["training"], UIDS["ray"]}


def test_the_alerts_config_reaches_the_dashboards():
    config = from_mapping({"selectors": {"exporter": 'job="gpu-nodes"', "drift_service": 'job="drift"'},
                           "inference": {"slos": [{"latency": "request_duration", "threshold": 5.0,
                                                   "objective": 0.995}]}})
    boards = {board["uid"]: board for board in generate.dashboards(config)}
    node_text = json.dumps(boards[UIDS["gpu"]])
    assert 'fleetscope_gpu_up{job=\\"gpu-nodes\\",' in node_text and "fleetscope-exporter" not in node_text
    assert 'job=\\"drift\\"' in json.dumps(boards[UIDS["drift"]])
    assert queries.defaults(boards[UIDS["inference"]])["slo_threshold"] == "5"
    assert queries.defaults(boards[UIDS["inference"]])["slo_target"] == "0.995"


def test_the_inference_dashboard_reads_the_normalized_schema_at_the_alerts_objective():
    """Every engine's models appear (the panels read only what the normalization rules record), and the SLO
    variables open on the objective the burn-rate alerts page on, not another."""
    [board] = [board for board in BOARDS if board["uid"] == UIDS["inference"]]
    for panel in queries.panel_queries(board):
        for expr in panel.exprs:
            assert not METRIC.search(expr), f"{panel.title}: reads a raw series: {expr}"
            assert RECORDED.search(expr), f"{panel.title}: reads no recorded series"
    slo = MonitoringConfig().inference.slos[0]
    values = queries.defaults(board)
    assert (float(values["slo_threshold"]), float(values["slo_target"])) == (slo.threshold, slo.objective)


def test_an_empty_or_all_cluster_variable_selects_series_without_a_cluster_label(tmp_path):
    """In a cluster's own Prometheus, `cluster` is an external label only: the series have none and the
    variable has no values. Grafana then sends an empty value (or .*, for All); both must select them."""
    [gpus] = [panel.exprs[0] for board in BOARDS for panel in queries.panel_queries(board)
              if board["uid"] == UIDS["fleet"] and panel.title == "GPUs"]
    cases = []
    for cluster in ("", ".*"):
        expr = queries.concrete(gpus, {"cluster": cluster, "hostname": ".*"}, "1m")
        cases.append({"expr": expr, "eval_time": "3m", "exp_samples": [{"labels": "{}", "value": 2}]})
    series = [{"series": f'fleetscope_gpu_up{{job="fleetscope-exporter",instance="n:9835",hostname="n",gpu="{gpu}"}}',
               "values": "1x5"} for gpu in range(2)]
    # A duplicate scrape of the same exporter under another job is not counted.
    series.append({"series": 'fleetscope_gpu_up{job="federate",instance="n:9835",hostname="n",gpu="0"}',
                   "values": "1x5"})
    path = tmp_path / "cluster.test.yaml"
    rules = str(Path(alerts_generate.__file__).parent / "rules" / "gpu.yaml")  # the panel reads the fleet's records
    path.write_text(yaml.safe_dump({"rule_files": [rules], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": series, "promql_expr_test": cases}]}))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _panel(uid_key: str, title: str) -> dict:
    board = next(board for board in BOARDS if board["uid"] == UIDS[uid_key])
    return next(panel for panel in queries.panels(board) if panel["title"] == title)


def test_the_node_dashboard_opens_on_one_node():
    board = next(board for board in BOARDS if board["uid"] == UIDS["gpu"])
    hostname = next(variable for variable in board["templating"]["list"] if variable["name"] == "hostname")
    assert not hostname["includeAll"] and not hostname["multi"] and "current" not in hostname


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_time_series_have_no_fixed_windows_drawn_thresholds_and_table_legends(board):
    """dashboard-linter's rule: a time series' windows follow its zoom ($__rate_interval, or $__interval for
    counts of events as bars); a threshold set on a time series is drawn (Grafana hides it by default);
    legends are tables with their figures."""
    for panel in queries.panels(board):
        if panel["type"] != "timeseries":
            continue
        where = f"{board['uid']}: {panel['title']}"
        for target in panel["targets"]:
            for window in re.findall(r"\[([^\]]+)\]", target["expr"]):
                assert window in ("$__rate_interval", "$__interval"), f"{where}: a fixed window [{window}]"
            if "$__interval" in target["expr"]:
                assert panel["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars", where
                assert panel["interval"], f"{where}: increase() over a $__interval shorter than the scrapes"
        defaults = panel["fieldConfig"]["defaults"]
        if len(defaults["thresholds"]["steps"]) > 1:
            assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", f"{where}: thresholds never drawn"
        legend = panel["options"]["legend"]
        assert legend["displayMode"] == "table" and legend["calcs"], where


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_counts_of_events_are_whole_numbers(board):
    """increase() extrapolates: one XID reads 1.008 unless rounded (where it is shown, not only compared)."""
    for panel in queries.panels(board):
        for target in panel["targets"]:
            shown = re.sub(r"increase\([^\[]*\[[^\]]*\]\) > 0", "", target["expr"])
            if "increase(" in shown and panel["fieldConfig"]["defaults"]["unit"] == "none":
                where = f"{board['uid']}: {panel['title']}"
                assert shown.count("increase(") == shown.count("round(increase("), where
                assert panel["fieldConfig"]["defaults"].get("decimals") == 0, where


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_tables_show_named_columns_sorted_and_no_raw_labels(board):
    for panel in queries.panels(board):
        if panel["type"] != "table":
            continue
        steps = [step["id"] for step in panel["transformations"]]
        assert steps[-3:-1] == ["filterFieldsByName", "organize"] or steps[-4:-2] == ["filterFieldsByName",
                                                                                       "organize"], steps
        assert steps[-1] == "sortBy" and ("merge" in steps) == (len(panel["targets"]) > 1)
        kept = next(step for step in panel["transformations"] if step["id"] == "filterFieldsByName")
        names = kept["options"]["include"]["names"]
        assert not {"__name__", "job", "instance", "Time", "uuid", "pci_bus_id"} & set(names), panel["title"]
        renamed = next(step for step in panel["transformations"] if step["id"] == "organize")
        assert set(renamed["options"]["renameByName"].values()) == {t["legendFormat"] for t in panel["targets"]}


def _result(metric: dict, value: float) -> dict:
    return {"metric": metric, "value": [0, str(value)]}


def test_a_table_previews_as_grafana_shows_it():
    """Only GPUs with something to attend to, worst first, the XID code named; every other label hidden."""
    from fleetscope.dashboards import preview

    panel = _panel("fleet", fleet_dashboard.ATTENTION)
    gpu = {"__name__": "x", "job": "fleetscope-exporter", "cluster": "c", "hostname": "n"}
    results = [
        [_result(gpu | {"gpu": "0"}, 0), _result(gpu | {"gpu": "1"}, 3), _result(gpu | {"gpu": "2"}, 1)],  # XIDs
        [_result(gpu | {"gpu": "0"}, 13), _result(gpu | {"gpu": "1"}, 79), _result(gpu | {"gpu": "2"}, 48)],
        [_result(gpu | {"gpu": "0"}, 0), _result(gpu | {"gpu": "1"}, 0), _result(gpu | {"gpu": "2"}, 2)],  # ECC
        [_result(gpu | {"gpu": "0"}, 0), _result(gpu | {"gpu": "1"}, 0), _result(gpu | {"gpu": "2"}, 1)],  # remap
    ]
    header, rows = preview.table(panel, results)
    assert header == ["cluster", "hostname", "gpu", "XID events, 24h", "latest XID", "double-bit ECC, 24h",
                      "row remap pending + failed"]
    assert rows == [["c", "n", "1", "3", "79: GPU has fallen off the bus", "0", "0"],
                    ["c", "n", "2", "1", "48: Double Bit ECC Error", "2", "1"]]


def test_port_utilization_is_the_busier_direction(tmp_path):
    """It read rate(tx) or rate(rx), whose label sets are equal: always transmit (rx 64 B/s over a 256 B/s link
    reads 0.25). The node's record of its busiest port, which the fleet-wide panel reads, agrees."""
    [expr] = [queries.concrete(target["expr"], {"cluster": ".*", "hostname": "n"}, "2m")
              for target in _panel("collectives", "Port utilization")["targets"]]
    port = 'job="fleetscope-exporter",hostname="n",device="mlx5_0",port="1"'
    quiet_port = 'job="fleetscope-exporter",hostname="n",device="mlx5_1",port="1"'
    tests = {"rule_files": [str(Path(alerts_generate.__file__).parent / "rules" / "collectives.yaml")],
             "evaluation_interval": "1m", "tests": [{"interval": "1m", "input_series": [
                 {"series": f"fleetscope_fabric_port_transmit_bytes_total{{{port}}}", "values": "0+1280x10"},
                 {"series": f"fleetscope_fabric_port_receive_bytes_total{{{port}}}", "values": "0+3840x10"},
                 {"series": f"fleetscope_fabric_port_rate_bytes_per_second{{{port}}}", "values": "256x10"},
                 {"series": f"fleetscope_fabric_port_transmit_bytes_total{{{quiet_port}}}", "values": "0+60x10"},
                 {"series": f"fleetscope_fabric_port_receive_bytes_total{{{quiet_port}}}", "values": "0+60x10"},
                 {"series": f"fleetscope_fabric_port_rate_bytes_per_second{{{quiet_port}}}", "values": "256x10"},
             ], "promql_expr_test": [
                 {"expr": expr, "eval_time": "5m", "exp_samples": [
                     {"labels": '{device="mlx5_0",port="1"}', "value": 0.25},
                     {"labels": '{device="mlx5_1",port="1"}', "value": 0.00390625}]},
                 {"expr": collectives_records.NODE_FABRIC_UTILIZATION, "eval_time": "5m", "exp_samples": [
                     {"labels": f'{collectives_records.NODE_FABRIC_UTILIZATION}{{job="fleetscope-exporter",'
                                'hostname="n"}', "value": 0.25}]},
             ]}]}
    path = tmp_path / "port.test.yaml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alerts_dashboard_link_sets_variables_its_dashboard_has():
    from fleetscope.mixin import links as dashboard_links

    rules = [rule for name in alerts_generate.RULE_FILES for group in yaml.safe_load(
        (Path(alerts_generate.__file__).parent / "rules" / name).read_text())["groups"] for rule in group["rules"]
        if "alert" in rule]
    boards = {board["uid"]: board for board in BOARDS}
    for rule in rules:
        url = rule["annotations"]["dashboard_url"]
        uid = re.search(r"/d/([\w-]+)\?", url).group(1)
        names = {variable["name"] for variable in boards[uid]["templating"]["list"]}
        assert set(re.findall(r"&var-(\w+)=", url)) <= names, rule["alert"]
    # A GPU alert opens the node dashboard on its host and GPU; a model's on its model.
    gpu_down = dashboard_links.alert_dashboard_url("https://grafana.example.com/", "gpu")
    assert gpu_down.startswith("https://grafana.example.com/d/fleetscope-node-gpu-detail?orgId=1")
    assert "{{ with $labels.gpu }}&var-gpu={{ . | urlquery }}{{ end }}" in gpu_down


KUBE_PROMETHEUS_STACK_RETENTION_DAYS = 10


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_no_panel_needs_more_history_than_kube_prometheus_stack_keeps(board):
    """A 30-day error budget read from 30 days of samples is empty where Prometheus keeps 10 (the
    chart's default): windows, and the windows of the recorded series read, stay within it."""
    for panel in queries.panel_queries(board):
        for expr in panel.exprs:
            windows = re.findall(r"\[(\d+)([smhdw])[\]:]", expr) + re.findall(r":\w+_rate(\d+)([smhdw])\b", expr)
            for amount, unit in windows:
                days = int(amount) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit] / 86400
                assert days <= KUBE_PROMETHEUS_STACK_RETENTION_DAYS, f"{board['uid']}: {panel.title}: {expr}"



def test_a_one_value_variable_previews_on_its_first_value_and_a_refusal_leaves_it(monkeypatch):
    """As Grafana opens the node dashboard: on the first host, sorted, from the hosts of the clusters chosen. A
    selector the store refuses (a value before it that breaks it) leaves the variable as it was rather than
    ending the preview; the panels' own queries then say what failed."""
    from fleetscope import prometheus_api as prometheus
    from fleetscope.dashboards import preview

    board = next(board for board in BOARDS if board["uid"] == UIDS["gpu"])
    asked = []

    def label_values(url: str, path: str, timeout: float, **params: str) -> list[str]:
        asked.append((path, params["match[]"]))
        return ["node-b", "node-a"]

    monkeypatch.setattr(prometheus, "api", label_values)
    values = preview._chosen(board, "http://prometheus", queries.defaults(board), "1m")
    assert values["hostname"] == "node-a"
    assert asked == [("label/hostname/values", 'fleetscope_gpu_up{job="fleetscope-exporter",cluster=~".*"}')]

    def refusing(url: str, path: str, timeout: float, **params: str) -> list[str]:
        raise prometheus.QueryError("1:60: parse error: unexpected identifier")

    monkeypatch.setattr(prometheus, "api", refusing)
    values = preview._chosen(board, "http://prometheus", {**queries.defaults(board), "cluster": 'a"b'}, "1m")
    assert values["hostname"] == queries.defaults(board)["hostname"]

"""Ray's own metrics, end to end: a real Ray head with its dashboard (so that it writes its discovery file) runs a
workload and a Serve application; a real Prometheus runs the committed bare-metal config's `ray` job, its file
pointed at this head's session; the Ray dashboard's every panel and the Ray alerts' every selector are answered by
what Prometheus scraped, and every name mixin/ray.py declares is there with its labels."""

from __future__ import annotations

import re
import time

import pytest
import yaml

from fleetscope.alerts import generate as alerts_generate
from fleetscope.cli import main
from fleetscope.dashboards import queries
from fleetscope.dashboards.common import UIDS
from fleetscope.deploy import generate as deploy_generate
from fleetscope.localstack.process import free_port
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.localstack.ray import RayHead
from fleetscope.mixin import ray
from fleetscope.prometheus_api import QueryError
from tests.ray.workload import SPILL_EVERYTHING, Workload

pytestmark = pytest.mark.integration
RATE_INTERVAL = "15s"
RULES = alerts_generate.DIRECTORY / "rules" / "ray.yaml"
SELECTOR = re.compile(r"\b((?:ray|autoscaler)_[A-Za-z0-9_]+|up)\{([^}]*)\}")


def _committed_ray_job(discovery_file: str) -> dict:
    """The `ray` job of the committed deploy/prometheus/prometheus.yml, reading this head's file, every second."""
    config = yaml.safe_load((deploy_generate.DIRECTORY / "prometheus" / "prometheus.yml").read_text())
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == ray.DISCOVERY_JOB]
    [sd] = job["file_sd_configs"]
    assert sd["files"] == [f"{ray.DEFAULT_TEMP_DIR}/{ray.DISCOVERY_FILE}"]
    return {**job, "scrape_interval": "1s", "file_sd_configs": [{**sd, "files": [discovery_file]}]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(Prometheus, the head, the workload) once Prometheus holds samples enough for the dashboards' rates."""
    workdir = tmp_path_factory.mktemp("ray")
    with pytest.MonkeyPatch.context() as environment:
        # The head's autoscaler and dashboard serve their metrics on fixed default ports (44217, 44227): free ones
        # here, so that another head on this machine cannot take them.
        environment.setenv("AUTOSCALER_METRIC_PORT", str(free_port()))
        environment.setenv("DASHBOARD_METRIC_PORT", str(free_port()))
        for name, value in SPILL_EVERYTHING.items():
            environment.setenv(name, value)
        head = RayHead(workdir / "head", num_cpus=2, dashboard=True).start(timeout=120)
    workload = Workload(head, workdir / "driver.log")
    server = None
    try:
        workload.wait_ready()
        workload.requests(5)
        discovery = head.session_dir / ray.DISCOVERY_FILE
        server = Prometheus(workdir / "prometheus", [_committed_ray_job(str(discovery))], scrape_interval="1s",
                            rule_files=[RULES]).start()
        server.wait_for(f'count(up{{job="{ray.DISCOVERY_JOB}"}} == 1) == 3', timeout=60)
        server.wait_for(ray.SERVE_HTTP_REQUESTS.select(f'job="{ray.DISCOVERY_JOB}"'), timeout=60)
        workload.requests(5)
        time.sleep(6)  # rate() over the 15s windows needs two samples that differ
        yield server, head
    finally:
        if server is not None:
            server.stop()
        workload.stop()
        head.stop()


def test_prometheus_scrapes_what_rays_discovery_file_lists(cluster):
    server, head = cluster
    listed = yaml.safe_load((head.session_dir / ray.DISCOVERY_FILE).read_text())
    targets = {target["labels"]["instance"]: target for target in server.active_targets()}
    assert set(targets) == set(listed[0]["targets"]) and len(targets) == 3
    assert {target["labels"]["job"] for target in targets.values()} == {ray.DISCOVERY_JOB}
    assert f"127.0.0.1:{head.metrics_port}" in targets and all(t["health"] == "up" for t in targets.values())


def test_every_panel_of_the_ray_dashboard_returns_data_and_its_preview_renders(cluster, tmp_path):
    server, _ = cluster
    [board] = [board for board in queries.load() if board["uid"] == UIDS["ray"]]
    values = queries.defaults(board)
    empty, errors, ran = [], [], 0
    for panel in queries.panel_queries(board):
        results = []
        for expr in panel.exprs:
            concrete = queries.concrete(expr, values, RATE_INTERVAL)
            try:
                results.append(server.query(concrete))
                ran += 1
            except QueryError as error:
                errors.append(f"{panel.title}: {concrete}: {error}")
        if not any(results):
            empty.append(panel.title)
    assert errors == []
    assert empty == [], f"panels with no data: {empty}"
    assert ran >= 20
    for variable in ("cluster", "instance"):  # the filters' queries find the head
        query = next(v["query"] for v in board["templating"]["list"] if v["name"] == variable)
        selector = re.match(r"label_values\((.+), \w+\)$", queries.concrete(query, values, RATE_INTERVAL)).group(1)
        assert server.query(selector), variable

    assert main(["dashboards", "preview", f"--prometheus.url={server.url}", f"--output={tmp_path}", "--range=60s",
                 f"--rate-interval={RATE_INTERVAL}", f"--dashboard={UIDS['ray']}"]) == 0
    [image] = tmp_path.glob("*.png")
    assert image.stem == UIDS["ray"] and image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_selector_the_ray_alerts_read_is_answered(cluster):
    server, _ = cluster
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    asked = set()
    for rule in rules:
        selectors = {f"{name}{{{matchers}}}" for name, matchers in SELECTOR.findall(rule["expr"])}
        assert selectors, rule["alert"]
        for selector in selectors:
            assert server.query(selector), f"{rule['alert']}: nothing answers {selector}"
        asked |= selectors
        server.query(rule["expr"])  # and the whole expression runs
    assert len(rules) == 4 and len(asked) >= 6


def test_every_declared_name_is_scraped_with_its_labels_and_the_workload_shows(cluster):
    server, _ = cluster
    job = f'job="{ray.DISCOVERY_JOB}"'
    for metric in ray.ALL:
        series = server.query(metric.select(job, suffix="_count" if metric.type == "histogram" else ""))
        assert series, metric.name
        for result in series:
            assert set(metric.labels) <= set(result["metric"]), f"{metric.name}: {result['metric']}"
    # What the driver did is what Ray reports: an infeasible task waiting, objects spilled, the Serve app running.
    waiting = ray.TASKS.select(job, f'State="{ray.WAITING_FOR_A_NODE}"')
    spilled = ray.SPILL_MANAGER_OBJECTS_BYTES.select(job, 'State="Spilled"')
    assert float(server.query(f"sum({waiting})")[0]["value"][1]) >= 1
    assert float(server.query(f"sum({spilled})")[0]["value"][1]) > 0
    [application] = server.query(ray.SERVE_APPLICATION_STATUS.select(job, 'application="echo"'))
    assert ray.SERVE_APPLICATION_STATES[int(float(application["value"][1]))] == "RUNNING"

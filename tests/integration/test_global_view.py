"""The fleet path, on real components: two clusters of simulated nodes, each scraped by its own
Prometheus (one in agent mode, one a full server keeping local rules) with its `cluster` as an external
label, both remote-writing to one VictoriaMetrics; vmalert evaluates the generated rules there and
notifies a real Alertmanager with the generated routing. An XID on a node of the second cluster pages
with `cluster` set; the dashboards read every cluster from VictoriaMetrics; a recording rule evaluated
in the global ruler agrees with the cluster's own Prometheus."""

from __future__ import annotations

import time

import pytest
import yaml

from fleetscope.alerts import generate
from fleetscope.alerts.routing import local_receivers
from fleetscope.dashboards import fleet as fleet_dashboard
from fleetscope.dashboards import queries
from fleetscope.dashboards.common import UIDS
from fleetscope.deploy import baremetal, fleet
from fleetscope.localstack.alertmanager import Alertmanager
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.localstack.receiver import NotificationReceiver
from fleetscope.localstack.victoriametrics import VictoriaMetrics, VmAlert
from fleetscope.mixin.config import MonitoringConfig, from_mapping
from fleetscope.simulation.fleet import Fault, SimulatedFleet

pytestmark = pytest.mark.integration

EXPORTER_FED = ("fleet", "gpu", "collectives")  # the dashboards the simulated nodes feed
FAULTY = "b/b-node-0001:10:xid:3:79"


def _page(notification, cluster: str) -> bool:
    return (notification.path == "/webhook" and isinstance(notification.body, dict)
            and any(alert["status"] == "firing" and alert["labels"].get("alertname") == "FleetscopeGPUXidError"
                    and alert["labels"].get("cluster") == cluster for alert in notification.body["alerts"]))


def test_two_clusters_into_victoriametrics_with_vmalert_as_the_global_ruler(tmp_path):
    receiver = NotificationReceiver().start()
    config = from_mapping({"gpu": {"attention_interval": "1s"}, "routing": {
        "group_wait": "1s", "group_interval": "2s",
        **local_receivers(receiver.url, tmp_path / "secrets", set(MonitoringConfig().teams.values()))}})
    texts = generate.files(config)
    for name, text in texts.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    rules = [tmp_path / "rules" / name for name in generate.RULE_FILES]
    stack: list = []
    try:
        # Random XIDs off: one on cluster a would page, where the test asserts only cluster b does.
        simulated = SimulatedFleet(["a", "b"], 2, refresh_interval=1.0, faults=[Fault.parse(FAULTY)],
                                   random_xids=False).start()
        stack.append(simulated)
        simulated.write_targets(tmp_path / "targets")
        store = VictoriaMetrics(tmp_path / "vm").start()
        stack.append(store)
        alertmanager = Alertmanager(tmp_path / "alertmanager",
                                    yaml.safe_load(texts["alertmanager/alertmanager.yml"])).start()
        stack.append(alertmanager)
        clusters = {}
        for cluster, agent in (("a", True), ("b", False)):
            scrape = baremetal.scrape_config("fleetscope-exporter", [str(tmp_path / "targets" / f"{cluster}.json")])
            clusters[cluster] = Prometheus(
                tmp_path / f"prometheus-{cluster}", [scrape], scrape_interval="1s", agent=agent,
                rule_files=() if agent else rules, external_labels={"cluster": cluster},
                remote_write=[fleet.remote_write(store.write_url, drop="" if agent else fleet.LOCAL_ONLY,
                                                 batch_send_deadline="1s")]).start()
            stack.append(clusters[cluster])
        ruler = VmAlert(tmp_path / "vmalert", store, rules, [alertmanager.address], evaluation_interval="1s").start()
        stack.append(ruler)

        # Both clusters' raw series arrive, each with its cluster; no recorded series is forwarded.
        store.wait_for('count by (cluster) (fleetscope_gpu_up{job="fleetscope-exporter"}) == 16',
                       lambda result: len(result) == 2, timeout=60)

        # The XID on cluster b pages from the global ruler, with its cluster.
        page = receiver.wait_for(lambda n: _page(n, "b"), timeout=90)
        [alert] = [a for a in page.body["alerts"] if a["labels"].get("cluster") == "b"
                   and a["labels"]["alertname"] == "FleetscopeGPUXidError"]
        assert alert["labels"]["hostname"] == "b-node-0001" and alert["labels"]["xid"] == "79"
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["instance"] == "b-node-0001:9835"
        assert not [n for n in receiver.notifications if _page(n, "a")]

        # A recording rule: the global ruler's value for cluster b equals cluster b's own Prometheus'.
        count = "fleetscope:node_gpus:count"
        local = _by_host(clusters["b"].wait_for(count, lambda result: len(result) == 2, timeout=30))
        assert local == {"b-node-0000": "8", "b-node-0001": "8"}
        # The store shows a scrape's samples as they arrive (-search.latencyOffset is 1s here, 30s by default), so
        # one evaluation may count part of a node's GPUs (3 of 8 was seen once); the next one counts them all.
        store.wait_for(f'{count}{{cluster="b"}}', lambda result: _by_host(result) == local, timeout=60)

        # Every panel of the exporter-fed dashboards returns data for each cluster from the store. Asked again,
        # bounded, while some are empty: on a loaded machine a node's latest samples can be a few seconds late
        # (once, every GPU gauge of one node of the agent's cluster was).
        time.sleep(5)  # a few samples for rate(), over windows that see a simulated training step (one per 5 s)
        panels = {}
        for board in queries.load():
            if board["uid"] not in {UIDS[key] for key in EXPORTER_FED}:
                continue
            for cluster in ("a", "b"):
                values = queries.defaults(board) | {"cluster": cluster, "hostname": f"{cluster}-node-0000"}
                for panel in queries.panel_queries(board):
                    panels[f"{board['uid']}: {panel.title} ({cluster})"] = [
                        queries.concrete(expr, values, "5s") for expr in panel.exprs]
        # Nothing of cluster a needs someone (its simulated GPUs raise no XIDs): its attention table is empty.
        quiet = panels.pop(f"{UIDS['fleet']}: {fleet_dashboard.ATTENTION} (a)")
        assert not any(store.query(expr) for expr in quiet)
        deadline = time.monotonic() + 45
        while True:
            empty = [name for name, exprs in panels.items() if not any(store.query(expr) for expr in exprs)]
            if not empty or time.monotonic() > deadline:
                break
            panels = {name: panels[name] for name in empty}
            time.sleep(2)
        assert empty == []
    finally:
        for component in reversed(stack):
            component.stop() if hasattr(component, "stop") else component.close()
        receiver.stop()


def _by_host(result: list[dict]) -> dict[str, str]:
    return {series["metric"]["hostname"]: series["value"][1] for series in result}

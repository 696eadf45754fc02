"""What the monitoring stack costs as the fleet grows, with Prometheus and with VictoriaMetrics as the store.

For each fleet size it runs the fleet simulator (`fleetscope simulate-fleet`, eight GPUs a node), then,
one store after the other:
  - prometheus:       one Prometheus scraping every node every 15 s and evaluating the generated rules;
  - victoriametrics:  a Prometheus in agent mode scraping and remote-writing to VictoriaMetrics, and
                      vmalert evaluating the generated rules against it (the fleet topology of deploy/fleet);
  - victoriametrics-fleet-only:  the same, the agent forwarding only what a rule or a fleet-level dashboard
                      reads (deploy/fleet/prometheus-agent-fleet-only.yml): what the keep-list saves;
lets it run for --warmup seconds and on until the store's series stop growing, then measures over --window
seconds: active series and samples per second per node, the store's resident memory and CPU (from /proc,
each process apart), each rule group's evaluation time, and every panel of the fleet-level dashboards
(fleet overview, collectives) and of the node dashboard on one node: its query time, p50 and p99 over
--repeat runs, at the dashboard's default range (6 hours, step 30 s; stats and tables as instant queries),
against that store, in two phases:
  - live:   while the store ingests and its ruler evaluates, as a dashboard is read in production;
  - quiet:  the same queries, ending at the moment ingestion stopped, after the store's scrapes and rules have
            been stopped (Prometheus reloaded without them, the agent and vmalert stopped) and the simulator
            paused: what the queries themselves cost, without the queueing of a 2-core machine that a 500-node
            fleet saturates.
VictoriaMetrics' rollup result cache is reset before each run of a panel, so every run computes its result, as
a dashboard opened for the first time does (Prometheus has no such cache).

    .venv/bin/python benchmarks/fleet_cost.py                          # 10, 100 and 500 nodes
    .venv/bin/python benchmarks/fleet_cost.py --nodes 10 --warmup 40 --window 20 --repeat 3   # a smoke run
    .venv/bin/python benchmarks/fleet_cost.py --plot docs/fleet-cost.png --json fleet-cost.json
    mkdir -p /tmp/before && git archive 2b7f2ad^ dashboards/json | tar -x -C /tmp/before
    .venv/bin/python benchmarks/fleet_cost.py --before /tmp/before/dashboards/json  # + the raw-series dashboards
    .venv/bin/python benchmarks/fleet_cost.py --phases quiet   # only the quiet phase's queries
    .venv/bin/python benchmarks/fleet_cost.py --report a.json,b.json --plot cost.png   # earlier runs' rows, together

The simulator refreshes each node's readings every 15 s up to 100 nodes and every 60 s beyond (on 2 cores
it could not collect 500 nodes every 15 s and leave the store any CPU); scrapes still come every 15 s, so
the store ingests the same samples either way. Everything shares one machine: on 2 cores the figures at
the largest size include the contention of the simulator beside the store.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fleetscope.alerts import generate as alerts_generate  # noqa: E402
from fleetscope.dashboards import queries  # noqa: E402
from fleetscope.dashboards.common import UIDS  # noqa: E402
from fleetscope.deploy import baremetal, fleet  # noqa: E402
from fleetscope.localstack.alertmanager import Alertmanager  # noqa: E402
from fleetscope.localstack.process import ManagedProcess, free_port, port_open  # noqa: E402
from fleetscope.localstack.prometheus import Prometheus  # noqa: E402
from fleetscope.localstack.victoriametrics import VictoriaMetrics, VmAlert  # noqa: E402
from fleetscope.prometheus_api import QueryApi, QueryError, api  # noqa: E402

CLUSTER = "bench"
GPUS_PER_NODE = 8
SCRAPE_INTERVAL = "15s"
RANGE_SECONDS, STEP = 6 * 3600, "30s"  # the dashboards open on 6 hours
DASHBOARDS = ("fleet", "collectives", "gpu")
FLEET_LEVEL = ("fleet", "collectives")
PHASES = {"live": "", "quiet": "_quiet"}  # a phase's suffix in a row's keys
QUIET_SETTLE = 5.0  # seconds for the last scrapes, evaluations and writes in flight to land before the quiet queries
QUERY_TIMEOUT = 60.0  # the gpu (node) dashboard is read for one node
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="10,100,500", help="fleet sizes, comma-separated")
    parser.add_argument("--stores", default="prometheus,victoriametrics")
    parser.add_argument("--warmup", type=float, default=150.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which rates are measured")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each panel query")
    parser.add_argument("--dashboards", type=Path, default=queries.JSON_DIRECTORY,
                        help="the dashboards' JSON to query (another version's, to compare)")
    parser.add_argument("--before", type=Path,
                        help="also query the fleet overview and collectives dashboards of this JSON directory (from "
                             "before the fleet records), reported apart as fleet_before and collectives_before")
    parser.add_argument("--phases", default="live,quiet", help="when to query the panels: live, quiet or both")
    parser.add_argument("--json", type=Path, help="write every row, panels included, here")
    parser.add_argument("--plot", type=Path, help="draw cost against nodes to this PNG")
    parser.add_argument("--report", help="run nothing: the table (and --plot) of the rows in these --json files")
    args = parser.parse_args()
    if args.report:
        rows = [row for name in args.report.split(",") for row in json.loads(Path(name).read_text())]
        print(_table(rows))
        print()
        print(_flatness(rows, args.dashboards))
        if args.plot:
            _plot(rows, args.plot)
        return
    args.phases = args.phases.split(",")
    if not args.phases or set(args.phases) - set(PHASES):
        parser.error(f"--phases: choose from {', '.join(PHASES)}")
    rows = []
    for nodes in (int(n) for n in args.nodes.split(",")):
        with tempfile.TemporaryDirectory(prefix="fleet-cost-") as directory:
            work = Path(directory)
            simulator = _simulator(work, nodes)
            try:
                for store in args.stores.split(","):
                    rows.append(_measure(store, nodes, work / store, simulator, args))
                    print(_line(rows[-1]), flush=True)
                    if args.json:  # as each configuration ends: a later one failing loses nothing
                        args.json.write_text(json.dumps(rows, indent=1))
            finally:
                # Closing a node waits up to its XID thread's 5 s; hundreds close together, but past the default
                # 10 s the simulator would be killed and leave every node's sysfs and NCCL directories behind.
                simulator.stop(timeout=30 + nodes * 0.2)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(_table(rows))
    if args.plot:
        _plot(rows, args.plot)


def _simulator(work: Path, nodes: int) -> ManagedProcess:
    port = free_port()
    refresh = "15s" if nodes <= 100 else "60s"
    process = ManagedProcess(
        [sys.executable, "-m", "fleetscope", "simulate-fleet", f"--clusters={CLUSTER}", f"--nodes={nodes}",
         f"--refresh-interval={refresh}", f"--targets-dir={work / 'targets'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        work / "simulator.log", lambda: port_open(port) and (work / "targets" / f"{CLUSTER}.json").exists())
    process.start(timeout=60 + nodes * 0.5)
    return process


def _measure(store: str, nodes: int, work: Path, simulator: ManagedProcess, args: argparse.Namespace) -> dict:
    rules = [work.parent / "rules" / name for name in alerts_generate.RULE_FILES]
    if not rules[0].exists():
        for name, text in alerts_generate.files().items():
            (work.parent / name).parent.mkdir(parents=True, exist_ok=True)
            (work.parent / name).write_text(text)
    scrape = [baremetal.scrape_config("fleetscope-exporter", [str(work.parent / "targets" / f"{CLUSTER}.json")])]
    components: list = []
    try:
        if store == "prometheus":
            server = Prometheus(work / "prometheus", scrape, scrape_interval=SCRAPE_INTERVAL, rule_files=rules,
                                evaluation_interval=SCRAPE_INTERVAL, external_labels={"cluster": CLUSTER}).start(60)
            components.append(server)
            database: QueryApi = server
            measured = {"store": server}
        else:
            vm = VictoriaMetrics(work / "vm").start()
            components.append(vm)
            # victoriametrics-fleet-only: the agent forwards only what a rule or a fleet-level dashboard reads
            drop = _fleet_only_drop() if store.endswith("-fleet-only") else ""
            agent = Prometheus(work / "agent", scrape, scrape_interval=SCRAPE_INTERVAL, agent=True,
                               external_labels={"cluster": CLUSTER},
                               remote_write=[fleet.remote_write(vm.write_url, drop=drop)])
            components.append(agent.start(60))
            # vmalert will not start without somewhere to send alerts: an Alertmanager that notifies nobody.
            silent = Alertmanager(work / "alertmanager", {"route": {"receiver": "none"},
                                                          "receivers": [{"name": "none"}]})
            components.append(silent.start())
            ruler = VmAlert(work / "vmalert", vm, rules, [silent.address], evaluation_interval=SCRAPE_INTERVAL).start()
            components.append(ruler)
            database = vm
            measured = {"store": vm, "agent": agent, "ruler": ruler}
        time.sleep(args.warmup)
        settled = _settle(store, database)
        cpu_before, samples_before = {name: _cpu_seconds(c) for name, c in measured.items()}, _samples(store, database)
        rounds_before = _rule_rounds(store, measured)
        time.sleep(args.window)
        cpu_after, samples_after = {name: _cpu_seconds(c) for name, c in measured.items()}, _samples(store, database)
        rounds_after = _rule_rounds(store, measured)
        series = _active_series(store, database)
        samples = samples_after - samples_before
        row = {
            "store": store, "nodes": nodes, "gpus": nodes * GPUS_PER_NODE, "settle_seconds": settled,
            "series_per_node": series / nodes,
            "samples_per_second_per_node": samples / args.window / nodes,
            "rss_mib": {name: _rss(component) / 2**20 for name, component in measured.items()},
            "cpu_cores": {name: (cpu_after[name] - cpu_before[name]) / args.window for name in measured},
            "rule_groups_seconds": _rule_groups(store, measured),
            "rule_rounds_missed_ratio": _missed_ratio(rounds_before, rounds_after),
        }
        if "live" in args.phases:
            _query_phase(row, "", database, args)
        if "quiet" in args.phases:
            stopped_at = time.time()
            if store == "prometheus":
                server.reload(scrape_configs=[], rule_files=None)
            else:
                agent.stop()
                ruler.stop()
            os.kill(_pid(simulator), signal.SIGSTOP)
            try:
                time.sleep(QUIET_SETTLE)
                _query_phase(row, "_quiet", database, args, at=stopped_at)
            finally:
                os.kill(_pid(simulator), signal.SIGCONT)
    finally:
        for component in reversed(components):
            component.stop()
    row["store_rss_mib_per_1000_gpus"] = row["rss_mib"]["store"] / row["gpus"] * 1000
    return row


def _query_phase(row: dict, phase: str, database: QueryApi, args: argparse.Namespace, at: float | None = None) -> None:
    """Every panel's timings into row["panels<phase>"] (and the raw-series dashboards' into
    row["panels_before<phase>"]), and each dashboard's p50 and p99, summed over its panels."""
    row["panels" + phase] = _panels(database, args.dashboards, DASHBOARDS, args.repeat, at)
    row["panels_before" + phase] = _panels(database, args.before, FLEET_LEVEL, args.repeat, at) if args.before else []
    for key, version in [(key, phase) for key in DASHBOARDS] + [(key, "_before" + phase) for key in FLEET_LEVEL]:
        mine = [panel for panel in row["panels" + version] if panel["dashboard"] == UIDS[key]]
        if mine:
            row[f"{key}{version}_p50_seconds"] = sum(panel["p50"] for panel in mine)
            row[f"{key}{version}_p99_seconds"] = sum(panel["p99"] for panel in mine)
    for version in (phase, "_before" + phase):  # the fleet-level dashboards together, today's and (measured) before
        for q in ("p50", "p99"):
            parts = [row.get(f"{key}{version}_{q}_seconds") for key in FLEET_LEVEL]
            if None not in parts:
                row[f"fleet_panels{version}_{q}_seconds"] = sum(parts)


def _fleet_only_drop() -> str:
    """The series the deployed fleet-only agent config (deploy/fleet/prometheus-agent-fleet-only.yml) drops."""
    config = yaml.safe_load((ROOT / "deploy" / "fleet" / "prometheus-agent-fleet-only.yml").read_text())
    [relabel] = config["remote_write"][0]["write_relabel_configs"]
    return relabel["regex"]


def _pid(component) -> int:
    return component._process.pid


def _cpu_seconds(component) -> float:
    fields = Path(f"/proc/{_pid(component)}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _rss(component) -> int:
    return int(Path(f"/proc/{_pid(component)}/statm").read_text().split()[1]) * PAGE_SIZE


def _own_metrics(url: str) -> dict[str, float]:
    """A component's /metrics page as {series: value}."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def _samples(store: str, database: QueryApi) -> float:
    """Samples the store has taken in so far."""
    own = _own_metrics(database.url)
    if store == "prometheus":
        return _total(own, "prometheus_tsdb_head_samples_appended_total")
    return _total(own, "vm_rows_inserted_total")


def _total(own: dict[str, float], name: str) -> float:
    """A metric of a component's own page summed over its series, labelled or not."""
    return sum(value for series, value in own.items() if series == name or series.startswith(name + "{"))


def _active_series(store: str, database: QueryApi) -> float:
    """Series in the store's head (Prometheus) or seen this hour (VictoriaMetrics), from its own metrics: a
    count() over a million series outlasts any query timeout. VictoriaMetrics empties its per-hour set as an
    hour begins, so there the series it has created (its TSID cache), whichever is larger."""
    own = _own_metrics(database.url)
    if store == "prometheus":
        return own["prometheus_tsdb_head_series"]

    def cache(kind: str) -> float:
        return sum(value for name, value in own.items() if name.startswith("vm_cache_entries{")
                   and f'type="{kind}"' in name)
    return max(cache("storage/hour_metric_ids"), cache("storage/tsid"))


def _rule_groups(store: str, measured: dict) -> dict[str, float]:
    """Each rule group's evaluation time: Prometheus' last one, vmalert's mean."""
    if store == "prometheus":
        own = _own_metrics(measured["store"].url)
        return {_label(name, "rule_group").rsplit(";", 1)[-1]: value for name, value in own.items()
                if name.startswith("prometheus_rule_group_last_duration_seconds{")}
    own = _own_metrics(measured["ruler"].url)
    sums = {_label(name, "group"): value for name, value in own.items()
            if name.startswith("vmalert_iteration_duration_seconds_sum{")}
    counts = {_label(name, "group"): value for name, value in own.items()
              if name.startswith("vmalert_iteration_duration_seconds_count{")}
    return {group: sums[group] / counts[group] for group in sums if counts.get(group)}


def _settle(store: str, database: QueryApi, timeout: float = 900.0) -> float:
    """Seconds past the warmup until the store holds every series: at 500 nodes on 2 cores VictoriaMetrics
    registers a million new series over minutes, and measuring before then measures half a fleet."""
    started = time.monotonic()
    series = _active_series(store, database)
    while time.monotonic() - started < timeout:
        time.sleep(15)
        series, before = _active_series(store, database), series
        if series <= before * 1.005:
            break
    return time.monotonic() - started


def _rule_rounds(store: str, measured: dict) -> tuple[float, float] | None:
    """Prometheus' rule group rounds so far: (scheduled, missed because the one before was still running)."""
    if store != "prometheus":
        return None  # vmalert 1.79 does not count the rounds it skips
    own = _own_metrics(measured["store"].url)
    return (_total(own, "prometheus_rule_group_iterations_total"),
            _total(own, "prometheus_rule_group_iterations_missed_total"))


def _missed_ratio(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    if before is None or after is None or after[0] == before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


def _label(series: str, label: str) -> str:
    start = series.index(f'{label}="') + len(label) + 2
    return series[start:series.index('"', start)]


def _panels(database: QueryApi, directory: Path, dashboards: tuple[str, ...], repeat: int,
            at: float | None = None) -> list[dict]:
    results = []
    for board in queries.load(directory):
        if board["uid"] not in {UIDS[key] for key in dashboards}:
            continue
        values = queries.defaults(board) | {"cluster": CLUSTER}
        one_host = any(variable["name"] == "hostname" and not variable.get("includeAll")
                       for variable in board["templating"]["list"])
        if one_host:  # the node dashboard, and the collectives dashboard's last row, show one node
            values["hostname"] = f"{CLUSTER}-node-0000"
        for panel in queries.panels(board):
            instant = panel["type"] in ("stat", "table")
            exprs = [queries.concrete(target["expr"], values, "1m") for target in panel["targets"]]
            timings: list[float] = []
            series, refused = None, ""
            try:
                while len(timings) < repeat and (not timings or timings[-1] < QUERY_TIMEOUT):  # past it: not rerun
                    seconds, series = _timed(database, exprs, instant, at)
                    timings.append(seconds)
            except QueryError as error:  # the store refused (too many series, ...): counted at the timeout
                timings, refused = [QUERY_TIMEOUT], str(error)
            results.append({"dashboard": board["uid"], "panel": panel["title"], "p50": statistics.median(timings),
                            "p99": max(timings) if repeat < 100 else statistics.quantiles(timings, n=100)[98],
                            "series": series, "refused": refused})
    return results


def _timed(database: QueryApi, exprs: list[str], instant: bool, at: float | None = None) -> tuple[float, int | None]:
    """Seconds to run a panel's queries, one after the other, as Grafana sends them, ending at `at` (now if
    None), and the series they answered (so that a phase whose queries found nothing shows); a query past the
    client's timeout counts as QUERY_TIMEOUT seconds and None (the store may still be working on it).
    VictoriaMetrics' result cache is emptied first, so that the run computes what it answers."""
    if isinstance(database, VictoriaMetrics):
        with urllib.request.urlopen(f"{database.url}/internal/resetRollupResultCache", timeout=30):
            pass
    end = time.time() if at is None else at
    started, series = time.perf_counter(), 0
    for expr in exprs:
        try:
            if instant:
                answer = api(database.url, "query", QUERY_TIMEOUT, query=expr, time=str(end))
            else:
                answer = api(database.url, "query_range", QUERY_TIMEOUT, query=expr, start=str(end - RANGE_SECONDS),
                             end=str(end), step=STEP)
        except TimeoutError:
            return QUERY_TIMEOUT, None
        series += len(answer["result"]) if isinstance(answer["result"], list) else 1
    return time.perf_counter() - started, series


SUMMARIES = {"fleet_panels": "Fleet overview + collectives on records", "fleet_panels_before":
             "Fleet overview + collectives on raw series (before)", "gpu": "Node dashboard"}


def _line(row: dict) -> str:
    panels = ", ".join(f"fleet panels {phase} p50 {_timings(row, 'fleet_panels' + suffix)}"
                       for phase, suffix in PHASES.items() if f"fleet_panels{suffix}_p50_seconds" in row)
    return (f"{row['store']:16} {row['nodes']:5} nodes: {row['series_per_node']:7.0f} series/node, "
            f"{row['samples_per_second_per_node']:6.1f} samples/s/node, store {row['rss_mib']['store']:7.0f} MiB "
            f"({row['store_rss_mib_per_1000_gpus']:6.0f} MiB per 1000 GPUs), "
            f"{row['cpu_cores']['store'] * 1000 / row['nodes']:5.1f} millicores/node, {panels}")


def _table(rows: list[dict]) -> str:
    phases = [(phase, suffix) for phase, suffix in PHASES.items() if any("panels" + suffix in row for row in rows)]
    columns = [(f"{label}, {phase}, p50 / p99", key + suffix) for key, label in SUMMARIES.items()
               for phase, suffix in phases]
    lines = ["| Store | Nodes (GPUs) | Series per node | Samples/s per node | Store memory | per 1,000 GPUs | "
             "Store CPU per node | Rule evaluation, all groups (rounds missed) | "
             + " | ".join(title for title, _ in columns) + " |",
             "|---" * (7 + 1 + len(columns)) + "|"]
    for row in rows:
        extra = "".join(f" + {name} {row['rss_mib'][name]:.0f} MiB" for name in row["rss_mib"] if name != "store")
        missed = row.get("rule_rounds_missed_ratio")
        lines.append(
            f"| {row['store']} | {row['nodes']} ({row['gpus']}) | {row['series_per_node']:.0f} | "
            f"{row['samples_per_second_per_node']:.0f} | {row['rss_mib']['store']:.0f} MiB{extra} | "
            f"{row['store_rss_mib_per_1000_gpus']:.0f} MiB | {row['cpu_cores']['store'] * 1000 / row['nodes']:.1f} "
            f"millicores | {sum(row['rule_groups_seconds'].values()) * 1000:.0f} ms"
            + ("" if missed is None else f" ({missed:.0%})") + " | "
            + " | ".join(_timings(row, key) for _, key in columns) + " |")
    return "\n".join(lines)


def _flatness(rows: list[dict], dashboards: Path) -> str:
    """The fleet-level dashboards' panels summed apart: those that read the whole fleet's records, and those
    that read the raw series of the one node chosen (the collectives dashboard's last row), with the largest
    fleet's time over the smallest's, per store and phase."""
    fleet_level = {UIDS[key] for key in FLEET_LEVEL}
    of_one_node = {(board["uid"], panel.title) for board in queries.load(dashboards) if board["uid"] in fleet_level
                   for panel in queries.panel_queries(board) if any("$hostname" in expr for expr in panel.exprs)}
    lines = ["| Store | Phase | Nodes | Fleet-wide panels, p50 | Largest over smallest fleet | "
             "Panels of the node chosen, p50 |", "|---" * 6 + "|"]
    for store in dict.fromkeys(row["store"] for row in rows):
        mine = sorted((row for row in rows if row["store"] == store), key=lambda row: row["nodes"])
        for phase, suffix in PHASES.items():
            measured = [row for row in mine if row.get("panels" + suffix)]
            if not measured:
                continue
            wide, chosen = [], []
            for row in measured:
                panels = [panel for panel in row["panels" + suffix] if panel["dashboard"] in fleet_level]
                wide.append(sum(p["p50"] for p in panels if (p["dashboard"], p["panel"]) not in of_one_node))
                chosen.append(sum(p["p50"] for p in panels if (p["dashboard"], p["panel"]) in of_one_node))
            lines.append(f"| {store} | {phase} | {' / '.join(str(row['nodes']) for row in measured)} | "
                         f"{' / '.join(f'{t * 1000:.0f}' for t in wide)} ms | {wide[-1] / wide[0]:.1f}x | "
                         f"{' / '.join(f'{t * 1000:.0f}' for t in chosen)} ms |")
    return "\n".join(lines)


def _timings(row: dict, key: str) -> str:
    """A dashboard's (or the fleet-level pair's) p50 / p99 in ms, or "not measured"."""
    if f"{key}_p50_seconds" not in row:
        return "not measured"
    return " / ".join(f"{row[f'{key}_{q}_seconds'] * 1000:.0f}" for q in ("p50", "p99")) + " ms"


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, panels) = plt.subplots(1, 2, figsize=(11, 4))
    for store in dict.fromkeys(row["store"] for row in rows):
        mine = [row for row in rows if row["store"] == store]
        nodes = [row["nodes"] for row in mine]
        memory.plot(nodes, [row["rss_mib"]["store"] for row in mine], marker="o", label=store)
        for phase, suffix in PHASES.items():
            for version, marker, line, what in (("", "o", "-", "on records"), ("_before", "x", "--", "raw series")):
                key = f"fleet_panels{version}{suffix}_p50_seconds"
                if all(key in row for row in mine):
                    panels.plot(nodes, [row[key] * 1000 for row in mine], marker=marker, linestyle=line,
                                label=f"{store}, {what}, {phase}")
    for axes, title, unit in ((memory, "Store resident memory", "MiB"),
                              (panels, "Fleet overview + collectives: all panels' queries, p50", "ms")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("nodes (8 GPUs each)")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


if __name__ == "__main__":
    main()

"""--compat.dcgm: the GPU collector's readings rendered again in dcgm-exporter's vocabulary.

No second NVML pass: every DCGM series is computed from the native series of the same
collection (catalog/dcgm.py says which, and how units change). A GPU that is down serves
no native values and so no DCGM ones; its XID gauge stays, as its XID counters do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client.metrics_core import Metric

from fleetscope.exporters.catalog import dcgm, xids
from fleetscope.exporters.catalog import gpu as m
from fleetscope.exporters.verbatim import VerbatimFamily

# Labels that say which job holds the GPU, kept as they are (dcgm-exporter uses the same names).
_PASSED_THROUGH = m.JOB_LABELS
_NVLINK_BYTES = (m.NVLINK_TRANSMIT.name, m.NVLINK_RECEIVE.name)


def identity(labels: Mapping[str, str], driver_version: str) -> dict[str, str]:
    """dcgm-exporter's labels for the GPU (or MIG instance) a native series describes."""
    out = {"gpu": labels["gpu"], "UUID": labels["uuid"], "pci_bus_id": labels["pci_bus_id"],
           "device": f"nvidia{labels['gpu']}", "modelName": labels["model_name"]}
    if "gpu_instance_id" in labels:
        out["GPU_I_PROFILE"] = labels.get("mig_profile", "")
        out["GPU_I_ID"] = labels["gpu_instance_id"]
    out["Hostname"] = labels["hostname"]
    out["DCGM_FI_DRIVER_VERSION"] = driver_version
    out.update((name, labels[name]) for name in _PASSED_THROUGH if name in labels)
    return out


def xid_message(code: int) -> str:
    if code == 0:
        return dcgm.NO_XID_MESSAGE
    known = xids.CATALOG.get(code)
    return known.name if known else dcgm.UNKNOWN_XID_MESSAGE


class DcgmRenderer:
    """Keeps the previous NVLink byte totals, from which DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL's rate comes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._nvlink: dict[str, tuple[float, float]] = {}  # UUID -> (bytes both ways on every link, when)

    def render(self, metrics: Iterable[Metric]) -> list[Metric]:
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for metric in metrics:
            for sample in metric.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        driver = next((labels.get("driver_version", "") for labels, _ in samples.get(m.DRIVER_INFO.name, ())), "")
        families: list[Metric] = []
        for field in dcgm.FIELDS:
            family = self._field(field, samples.get(field.source.name, ()), driver)
            if family is not None:
                families.append(family)
        families.append(self._xids(samples, driver))
        bandwidth = self._nvlink_bandwidth(samples, driver)
        if bandwidth is not None:
            families.append(bandwidth)
        return families

    @staticmethod
    def _field(field: dcgm.DcgmField, series: Iterable[tuple[dict[str, str], float]],
               driver: str) -> VerbatimFamily | None:
        values: dict[tuple[tuple[str, str], ...], float] = {}
        for labels, value in series:
            if not field.matches(labels):
                continue
            key = tuple(identity(labels, driver).items())
            if "link" in labels:  # per-link counters add up to the GPU's total, as DCGM's *_TOTAL fields do
                values[key] = values.get(key, 0.0) + value * field.scale
            else:
                values.setdefault(key, value * field.scale)
        if not values:
            return None
        family = VerbatimFamily(field.name, field.help, field.type)
        for key, value in values.items():
            family.add(dict(key), value)
        return family

    @staticmethod
    def _xids(samples: Mapping[str, list[tuple[dict[str, str], float]]], driver: str) -> VerbatimFamily:
        """The last XID of each GPU, 0 ("No Error") until it has one, as DCGM reports it."""
        last = {labels["uuid"]: int(value) for labels, value in samples.get(m.LAST_XID.name, ())}
        family = VerbatimFamily(dcgm.XID_ERRORS.name, dcgm.XID_ERRORS.help, dcgm.XID_ERRORS.type)
        for labels, _ in samples.get(m.XID_EVENTS.name, ()):
            code = last.get(labels["uuid"], 0)
            family.add({**identity(labels, driver), "err_code": str(code), "err_msg": xid_message(code)}, code)
        return family

    def _nvlink_bandwidth(self, samples: Mapping[str, list[tuple[dict[str, str], float]]],
                          driver: str) -> VerbatimFamily | None:
        now = self._clock()
        totals: dict[str, tuple[dict[str, str], float]] = {}
        for name in _NVLINK_BYTES:
            for labels, value in samples.get(name, ()):
                known = totals.get(labels["uuid"])
                totals[labels["uuid"]] = (labels, value + (known[1] if known else 0.0))
        family = VerbatimFamily(dcgm.NVLINK_BANDWIDTH.name, dcgm.NVLINK_BANDWIDTH.help, dcgm.NVLINK_BANDWIDTH.type)
        for uuid, (labels, total) in totals.items():
            previous = self._nvlink.get(uuid)
            self._nvlink[uuid] = (total, now)
            if previous is not None and now > previous[1] and total >= previous[0]:
                # DCGM's integer: KiB per second over 1000, truncated (its (long long) cast).
                rate = (total - previous[0]) / (now - previous[1]) / dcgm.NVLINK_BANDWIDTH_BYTES_PER_UNIT
                family.add(identity(labels, driver), float(int(rate)))
        for uuid in set(self._nvlink) - set(totals):
            del self._nvlink[uuid]  # a GPU that is down or gone starts afresh when it returns
        return family if family.samples else None

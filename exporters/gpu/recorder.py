"""Records what NVML answers on a real GPU node, in the format FakeNvml replays.

Run it on a node with NVIDIA GPUs; it runs the GPU collector twice (GPM needs two samples)
through a proxy that writes down every call's answer, errors by name:

    python -m fleetscope.exporters.gpu.recorder recording.json

Copy the file into simulation/recordings/ to make it the simulation's and the tests' source.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import socket
import sys
import time
from typing import Any

import pynvml

from fleetscope import __version__
from fleetscope.exporters.gpu import nvml
from fleetscope.exporters.gpu.recording import FIELD_NAMES, GPM_METRIC_NAMES, recording_key

# Calls whose answers are not values of a device: session plumbing, sampling, events.
_NOT_RECORDED = {"nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount", "nvmlGpmSampleAlloc", "nvmlGpmSampleFree",
                 "nvmlEventSetCreate", "nvmlEventSetFree", "nvmlEventSetWait_v2"}


class RecordingNvml:
    """Passes every call to `library` and notes its answer."""

    def __init__(self, library: Any):
        self._library = library
        self.system: dict[str, Any] = {}
        self.devices: list[dict] = []
        self._owners: dict[int, dict] = {}
        self._samples: dict[int, dict] = {}
        self._mig_slots: dict[tuple[int, int], dict] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._library, name)
        if not (callable(target) and name.startswith("nvml")):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = target(*args, **kwargs)
            except nvml.NVMLError as error:
                self._note(name, args, None, {"error": nvml.error_name(error)})
                raise
            self._note(name, args, result, None)
            return result

        return call

    def recording(self) -> dict:
        return {"source": f"Recorded by fleetscope {__version__} on {socket.gethostname()} at "
                          f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
                "system": self.system, "devices": self.devices}

    def _note(self, name: str, args: tuple, result: Any, error: dict | None) -> None:
        if name in _NOT_RECORDED:
            return
        if name.startswith("nvmlSystem"):
            self.system[name] = error or _plain(result)
        elif name == "nvmlDeviceGetHandleByIndex":
            if result is not None:
                index = args[0]
                while len(self.devices) <= index:
                    self.devices.append({"values": {}, "fields": {}, "mig": []})
                self._owners[nvml.handle_key(result)] = self.devices[index]
        elif name == "nvmlDeviceGetMigDeviceHandleByIndex":
            if result is not None:
                # Every poll walks the slots again; an instance is recorded once per slot.
                parent, slot = self._owners[nvml.handle_key(args[0])], args[1]
                instance = self._mig_slots.setdefault((id(parent), slot), {"values": {}, "fields": {}})
                if instance not in parent["mig"]:
                    parent["mig"].append(instance)
                self._owners[nvml.handle_key(result)] = instance
        elif name == "nvmlGpmSampleGet":
            self._samples[nvml.handle_key(args[1])] = self._owners[nvml.handle_key(args[0])]
        elif name == "nvmlGpmMigSampleGet":
            # The sample of a GPU instance: its metrics belong to the MIG instance recorded with that id.
            parent, gpu_instance = self._owners[nvml.handle_key(args[0])], args[1]
            for instance in parent["mig"]:
                if instance["values"].get("nvmlDeviceGetGpuInstanceId") == gpu_instance:
                    self._samples[nvml.handle_key(args[2])] = instance
        elif name == "nvmlGpmMetricsGet":
            self._note_gpm(args[0], error)
        elif name == "nvmlDeviceGetFieldValues":
            self._note_fields(args, result, error)
        elif name == "nvmlDeviceGetProcessUtilization":
            # Its argument is a time, not a choice of value: one key whatever time was asked.
            if error is None or error["error"] != "NVML_ERROR_NOT_FOUND":
                self._owners[nvml.handle_key(args[0])]["values"][name] = error or _plain(result)
        elif args and nvml.handle_key(args[0]) in self._owners:
            self._owners[nvml.handle_key(args[0])]["values"][recording_key(name, args[1:])] = error or _plain(result)

    def _note_fields(self, args: tuple, result: Any, error: dict | None) -> None:
        fields = self._owners[nvml.handle_key(args[0])]["fields"]
        if error is not None:
            return  # the whole call failed: nothing about any one field was learnt
        for slot in result:
            name = FIELD_NAMES.get(slot.fieldId, [str(slot.fieldId)])[0]  # the fake reads any of a field's names
            key = name + (f"/{slot.scopeId}" if slot.scopeId else "")
            if slot.nvmlReturn != pynvml.NVML_SUCCESS:
                fields[key] = {"error": nvml.error_name(pynvml.NVMLError(slot.nvmlReturn))}
            elif slot.valueType == pynvml.NVML_VALUE_TYPE_DOUBLE:
                fields[key] = float(nvml.field_value(slot))
            else:
                fields[key] = int(nvml.field_value(slot))

    def _note_gpm(self, request: Any, error: dict | None) -> None:
        owner = self._samples.get(nvml.handle_key(request.sample2))
        if owner is None or error is not None:
            return
        for slot in request.metrics[: request.numMetrics]:
            key = f"nvmlGpmMetricsGet/{GPM_METRIC_NAMES.get(slot.metricId, slot.metricId)}"
            if slot.nvmlReturn == pynvml.NVML_SUCCESS:
                owner["values"][key] = float(slot.value)


def _plain(value: Any) -> Any:
    """A JSON-able copy of what pynvml returned: structs as mappings, bytes as text."""
    if isinstance(value, bytes):
        return nvml.text(value)
    if isinstance(value, ctypes.Structure):
        return {field[0]: _plain(getattr(value, field[0])) for field in value._fields_}
    if isinstance(value, ctypes.Array):
        return [_plain(item) for item in value]
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dict__"):  # pynvml's friendly objects (processes)
        return {key: _plain(item) for key, item in vars(value).items() if not key.startswith("_")}
    return str(value)


def record(library: Any, polls: int = 2, interval: float = 1.0) -> dict:
    """Runs the GPU collector `polls` times through a recorder; returns the recording."""
    from fleetscope.exporters.gpu.collector import GpuCollector

    recorder = RecordingNvml(library)
    collector = GpuCollector(recorder, socket.gethostname(), xid_events=True)
    try:
        for poll in range(polls):
            if poll:
                time.sleep(interval)
            collector.collect()
    finally:
        collector.close()
    return recorder.recording()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record NVML's answers on this node for FakeNvml.")
    parser.add_argument("output", help="file to write the recording to ('-' for standard output)")
    args = parser.parse_args(argv)
    recording = json.dumps(record(pynvml), indent=1)
    if args.output == "-":
        sys.stdout.write(recording + "\n")
    else:
        with open(args.output, "w") as out:
            out.write(recording + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

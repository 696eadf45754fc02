"""--simulate: a node of H100s whose values start from the recording and move over time.

Each GPU alternates between training steps and idle gaps; power, temperature, clocks,
energy and byte counters follow its utilization; now and then a GPU is power-capped or
thermally throttled, and XIDs arrive through the event API like real ones. Everything is
drawn from a seeded generator per GPU, so a seed gives the same story every run.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from dataclasses import dataclass

import pynvml

from fleetscope.simulation.nvml import FakeDevice, FakeNvml, load_recording

MiB = 1024 * 1024
# (XID, weight, what it does to the memory error counters); see NVIDIA's XID catalog.
XIDS = ((13, 30, None), (31, 30, None), (43, 20, None), (45, 10, None), (63, 5, "remap"), (94, 5, "contained"))
# Raised only when asked (--simulate.xid): 79, the GPU falls off the bus and stays off, as a real one does
# until the node is power-cycled; 154, the driver asks for a GPU reset, until one (never, here).
FALLEN_OFF_THE_BUS = 79
RECOVERY_ACTION_CHANGED = 154
_EFFECTS = {code: effect for code, _, effect in XIDS} | {FALLEN_OFF_THE_BUS: "lost", RECOVERY_ACTION_CHANGED: "reset"}
_RECOVERY_FIELD = "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION"
THROTTLES = (("sw_power_cap", pynvml.nvmlClocksEventReasonSwPowerCap, 0.8),
             ("hw_thermal_slowdown", pynvml.nvmlClocksEventReasonHwThermalSlowdown, 0.2))
_DURATION_FIELDS = {"sw_power_cap": "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP",
                    "hw_thermal_slowdown": "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN"}


def scaled_recording(gpus: int, recording: dict | None = None, node: int = 0) -> dict:
    """The recording with `gpus` devices, recorded ones reused with new identities past the end. A `node`
    other than 0 gives every GPU a UUID of that node's own, as GPUs of different machines have."""
    recording = copy.deepcopy(recording or load_recording())
    recorded = recording["devices"]
    devices = []
    for index in range(gpus):
        device = copy.deepcopy(recorded[index % len(recorded)])
        if node:
            device["values"]["nvmlDeviceGetUUID"] = f"GPU-{node:08x}-{index:04x}-4b7e-9a2c-0d3f6e8b{index:04x}"
        if index >= len(recorded):
            values = device["values"]
            if not node:
                values["nvmlDeviceGetUUID"] = f"GPU-5e1f0c3a-{index:04x}-4b7e-9a2c-0d3f6e8b{index:04x}"
            # A PCI domain of their own, so no bus id repeats a recorded GPU's.
            values["nvmlDeviceGetPciInfo"] = {"busId": f"{index // 256 + 1:08X}:{index % 256:02X}:00.0"}
        devices.append(device)
    recording["devices"] = devices
    return recording


@dataclass(frozen=True)
class ScheduledXid:
    """An XID the simulation raises on one GPU a fixed time after it starts (--simulate.xid)."""
    after: float  # seconds
    gpu: int
    code: int


class Simulation:
    def __init__(self, seed: int = 1, xid_mean_interval: float = 4800.0, throttle_mean_interval: float = 600.0,
                 scheduled_xids: Iterable[ScheduledXid] = ()):
        """Mean intervals are per GPU, in seconds."""
        self.seed = seed
        self.xid_mean_interval = xid_mean_interval
        self.throttle_mean_interval = throttle_mean_interval
        self.fake: FakeNvml | None = None
        self._scheduled = sorted(scheduled_xids, key=lambda xid: xid.after)
        self._started: float | None = None

    def animate(self, device: FakeDevice, now: float) -> None:
        state = device.state
        if not state:
            self._begin(device, now)
            return
        dt = max(0.0, now - state["at"])
        state["at"] = now
        rng: random.Random = state["rng"]
        if now >= state["phase_until"]:
            state["busy"] = rng.random() < 0.8
            state["phase_until"] = now + (rng.uniform(60, 600) if state["busy"] else rng.uniform(20, 120))
        target = rng.uniform(0.91, 0.99) if state["busy"] else rng.uniform(0.0, 0.03)
        state["util"] += (target - state["util"]) * min(1.0, dt / 5)
        self._throttle(device, rng, now, dt)
        self._write(device, dt, rng)
        if rng.random() < dt / self.xid_mean_interval:
            code, _, effect = rng.choices(XIDS, weights=[x[1] for x in XIDS])[0]
            self._xid(device, code, effect)
        self._raise_scheduled(device, now)

    def _raise_scheduled(self, device: FakeDevice, now: float) -> None:
        started = now if self._started is None else self._started
        for xid in [x for x in self._scheduled if x.gpu == device.index and now - started >= x.after]:
            self._scheduled.remove(xid)
            self._xid(device, xid.code, _EFFECTS.get(xid.code))

    def _begin(self, device: FakeDevice, now: float) -> None:
        if self._started is None:
            self._started = now
        rng = random.Random(self.seed * 100_003 + device.index)
        device.fields.setdefault(_RECOVERY_FIELD, pynvml.NVML_GPU_RECOVERY_ACTION_NONE)
        device.state.update(rng=rng, at=now, busy=True, phase_until=now + rng.uniform(30, 300), util=0.95,
                            temp=float(device.values["nvmlDeviceGetTemperature/NVML_TEMPERATURE_GPU"]),
                            throttle=None, throttle_until=0.0)

    def _throttle(self, device: FakeDevice, rng: random.Random, now: float, dt: float) -> None:
        state = device.state
        if state["throttle"] and now >= state["throttle_until"]:
            state["throttle"] = None
        if not state["throttle"] and state["busy"] and rng.random() < dt / self.throttle_mean_interval:
            names = [t[0] for t in THROTTLES]
            state["throttle"] = rng.choices(names, weights=[t[2] for t in THROTTLES])[0]
            state["throttle_until"] = now + rng.uniform(15, 90)
        if state["throttle"]:
            key = _DURATION_FIELDS[state["throttle"]]
            device.fields[key] = device.fields.get(key, 0) + int(dt * 1e9)

    def _write(self, device: FakeDevice, dt: float, rng: random.Random) -> None:
        state, values, fields = device.state, device.values, device.fields
        util, throttle = state["util"], state["throttle"]
        power = 72 + 600 * util + rng.gauss(0, 6)
        if throttle == "sw_power_cap":
            power = rng.uniform(690, 700)
        target_temp = 31 + 40 * util + (18 if throttle == "hw_thermal_slowdown" else 0)
        state["temp"] += (target_temp - state["temp"]) * min(1.0, dt / 30)
        clock = 1980 if util > 0.1 else 345
        if throttle:
            clock = rng.choice((1410, 1530, 1620, 1755))
        values["nvmlDeviceGetUtilizationRates"] = {"gpu": round(util * 100), "memory": round(util * 45)}
        values["nvmlDeviceGetPowerUsage"] = int(power * 1000)
        values["nvmlDeviceGetTemperature/NVML_TEMPERATURE_GPU"] = round(state["temp"])
        values["nvmlDeviceGetClockInfo/NVML_CLOCK_SM"] = clock
        fields["NVML_FI_DEV_MEMORY_TEMP"] = round(state["temp"] + 8)
        fields["NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] += int(power * dt * 1000)

        memory = values["nvmlDeviceGetMemoryInfo"]
        used = int((61440 + rng.uniform(-256, 256)) * MiB) if state["busy"] else 512 * MiB
        memory.update(used=used, free=memory["total"] - memory["reserved"] - used)
        pid = 41230 + device.index
        values["nvmlDeviceGetComputeRunningProcesses"] = (
            [{"pid": pid, "usedGpuMemory": used - 512 * MiB, "gpuInstanceId": 0xFFFFFFFF,
              "computeInstanceId": 0xFFFFFFFF}] if state["busy"] else [])
        values["nvmlDeviceGetProcessUtilization"] = (
            [{"pid": pid, "timeStamp": int(state["at"] * 1e6), "smUtil": round(util * 100),
              "memUtil": round(util * 45), "encUtil": 0, "decUtil": 0}] if state["busy"] else [])

        reasons = 0 if util > 0.1 else pynvml.nvmlClocksEventReasonGpuIdle
        for name, bit, _ in THROTTLES:
            if throttle == name:
                reasons |= bit
        values["nvmlDeviceGetCurrentClocksEventReasons"] = reasons

        tx_rate, rx_rate = 2e9 * util, 8e9 * util
        fields["NVML_FI_DEV_PCIE_COUNT_TX_BYTES"] += int(tx_rate * dt)
        fields["NVML_FI_DEV_PCIE_COUNT_RX_BYTES"] += int(rx_rate * dt)
        values["nvmlDeviceGetPcieThroughput/NVML_PCIE_UTIL_TX_BYTES"] = int(tx_rate / 1024)
        values["nvmlDeviceGetPcieThroughput/NVML_PCIE_UTIL_RX_BYTES"] = int(rx_rate / 1024)
        nvlink_kib = int(20e9 * util * dt / 1024)
        for key in fields:
            if key.startswith(("NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX/", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX/")):
                fields[key] += nvlink_kib
        for metric, share in (("GRAPHICS_UTIL", 1.0), ("SM_UTIL", 0.91), ("SM_OCCUPANCY", 0.43),
                              ("ANY_TENSOR_UTIL", 0.6), ("DRAM_BW_UTIL", 0.46), ("FP32_UTIL", 0.13),
                              ("FP16_UTIL", 0.03), ("FP64_UTIL", 0.0)):
            values[f"nvmlGpmMetricsGet/NVML_GPM_METRIC_{metric}"] = round(util * share * 100, 2)

    def _xid(self, device: FakeDevice, code: int, effect: str | None) -> None:
        if effect == "remap":
            device.fields["NVML_FI_DEV_REMAPPED_COR"] += 1
        elif effect == "reset":
            device.fields[_RECOVERY_FIELD] = pynvml.NVML_GPU_RECOVERY_ACTION_GPU_RESET
        elif effect == "contained":
            device.fields["NVML_FI_DEV_ECC_DBE_VOL_TOTAL"] += 1
            device.fields["NVML_FI_DEV_ECC_DBE_AGG_TOTAL"] += 1
            device.fields["NVML_FI_DEV_REMAPPED_UNC"] += 1
        if self.fake is not None:
            self.fake.inject_xid(device.index, code)
            if effect == "lost":
                self.fake.lose_gpu(device.index)


def simulated_nvml(gpus: int = 8, seed: int = 1, scheduled_xids: Iterable[ScheduledXid] = (), node: int = 0,
                   **rates: float) -> FakeNvml:
    simulation = Simulation(seed, scheduled_xids=scheduled_xids, **rates)
    fake = FakeNvml(scaled_recording(gpus, node=node), animate=simulation.animate)
    simulation.fake = fake
    return fake

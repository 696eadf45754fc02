"""A process's Kubernetes pod UID, from its cgroup path.

The kubelet names a pod's cgroup after its UID, under either cgroup driver:
`/kubepods/burstable/pod1f2e...-...` (cgroupfs) or
`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e..._...slice` (systemd, with
underscores for dashes). The pod-resources API gives no UID, and a GPU shared by time-slicing or
MPS has several pods; the UID read from each process says whose it is, and joins
kube-state-metrics' kube_pod_info{uid} for the pod's name.
"""

from __future__ import annotations

import re

_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


def pod_uid_in(cgroup: str) -> str | None:
    """The pod UID in a process's cgroup text (attribution.cgroup_of); None outside a pod."""
    match = _POD_UID.search(cgroup)
    return match.group(1).replace("_", "-") if match else None

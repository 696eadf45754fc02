"""The Kubernetes backend against a fake API server on loopback: the requests it sends are checked against
Kubernetes' own Node schema (as tests/deploy checks the manifests), and what they do to the node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from fleetscope.remediation.config import KubernetesSettings, Taint
from fleetscope.remediation.kube_api import KubeApi, locate
from fleetscope.remediation.kubernetes import REASON_ANNOTATION, KubernetesBackend
from fleetscope.remediation.nodes import BackendError
from tests.remediation.fake_kube import FakeKubeApi, node

K8S_VERSION = "1.33.0"  # the release tests/deploy validates the manifests against
OTHER_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _without_nulls(value: Any) -> Any:
    """A merge patch as the object it describes: null means 'remove', which the schema has no word for."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    return value


def _valid_node(document: dict) -> None:
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


@pytest.fixture
def api(tmp_path: Path):
    with FakeKubeApi([node("gpu-a", taints=[OTHER_TAINT]), node("gpu-b"), node("gpu-c"),
                      node("gpu-d", unschedulable=True)]) as fake:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(fake.kubeconfig())
        settings = KubernetesSettings(kubeconfig=kubeconfig, taint=Taint("fleetscope.io/remediation", "xid-79",
                                                                          "NoSchedule"))
        yield fake, KubernetesBackend(settings, KubeApi(locate(settings), timeout=5))


def test_drain_cordons_and_taints_with_a_patch_the_node_schema_accepts(api):
    fake, backend = api
    view = backend.inspect("gpu-a")
    assert view.exists and not view.drained and not view.ours
    assert view.groups[0].nodes == {"gpu-a", "gpu-b", "gpu-c", "gpu-d"} and view.groups[0].drained == {"gpu-d"}

    backend.drain("gpu-a", "fleetscope: GpuXid79")
    (patch,) = fake.patches()
    assert patch.path == "/api/v1/nodes/gpu-a"
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.headers["Authorization"] == f"Bearer {fake.token}"
    _valid_node(_without_nulls(patch.body))
    assert patch.body["metadata"]["resourceVersion"] == "1"  # the version the change was computed from

    patched = fake.nodes["gpu-a"]
    _valid_node(patched)
    assert patched["spec"]["unschedulable"] is True
    assert patched["spec"]["taints"] == [OTHER_TAINT, {"key": "fleetscope.io/remediation", "value": "xid-79",
                                                       "effect": "NoSchedule"}]  # another's taint is kept
    assert patched["metadata"]["annotations"][REASON_ANNOTATION] == "fleetscope: GpuXid79"
    view = backend.inspect("gpu-a")
    assert view.drained and view.ours


@pytest.mark.parametrize("wrong", [{"spec": {"unschedulable": "yes"}}, {"spec": {"taint": []}},
                                   {"spec": {"taints": [{"key": "k", "effect": "NoSchedule", "colour": "red"}]}}])
def test_the_schema_check_refuses_a_patch_the_api_server_would(wrong):
    with pytest.raises(kubernetes_validate.ValidationError):
        _valid_node({"apiVersion": "v1", "kind": "Node", **wrong})


def test_resume_removes_only_what_the_drain_added(api):
    fake, backend = api
    backend.drain("gpu-a", "fleetscope: GpuXid79")
    backend.resume("gpu-a")
    resume = fake.patches()[-1]
    _valid_node(_without_nulls(resume.body))
    assert resume.body["metadata"]["annotations"] == {REASON_ANNOTATION: None}
    patched = fake.nodes["gpu-a"]
    _valid_node(patched)
    assert patched["spec"]["unschedulable"] is False and patched["spec"]["taints"] == [OTHER_TAINT]
    assert REASON_ANNOTATION not in patched["metadata"].get("annotations", {})
    assert not backend.inspect("gpu-a").ours


def test_a_node_cordoned_by_someone_else_is_drained_but_not_ours(api):
    _fake, backend = api
    view = backend.inspect("gpu-d")
    assert view.drained and not view.ours
    assert not backend.inspect("gpu-zz").exists


def test_a_node_changed_in_between_is_refused_not_overwritten(api, monkeypatch):
    fake, backend = api
    stale = dict(fake.nodes["gpu-b"])
    fake.nodes["gpu-b"] = {**stale, "metadata": {**stale["metadata"], "resourceVersion": "7"}}
    monkeypatch.setattr(backend, "_get", lambda name: stale)  # as if the node changed after it was read
    with pytest.raises(BackendError, match="409"):
        backend.drain("gpu-b", "fleetscope: x")
    assert fake.nodes["gpu-b"]["spec"] == {}


def test_a_wrong_token_is_a_backend_error_naming_the_status(tmp_path):
    with FakeKubeApi([node("gpu-a")]) as fake:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(fake.kubeconfig().replace(fake.token, "wrong-token-0123456789"))
        settings = KubernetesSettings(kubeconfig=kubeconfig)
        with pytest.raises(BackendError, match="401"):
            KubernetesBackend(settings, KubeApi(locate(settings), timeout=5)).inspect("gpu-a")


@pytest.mark.parametrize("name, valid", [("gpu-a", True), ("node-1.example.com", True), ("GPU", False),
                                         ("a/b", False), ("../nodes", False), ("", False)])
def test_node_names_are_dns_subdomains(api, name, valid):
    assert api[1].valid_name(name) is valid

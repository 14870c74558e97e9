"""The Kubernetes backend against a FAKE Kubernetes API server (no cluster can run here).

The fake is a small HTTP server on loopback that implements only what the
backend calls through the official `kubernetes` client: GET and PATCH of
`/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`. It keeps each
Deployment's replicas and records every request, so the test checks what the
real client sends on the wire, not what a mock was told.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from scheduler.scaling.actuators.base import WorkerTarget
from scheduler.scaling.actuators.kubernetes import KubernetesDeployments
from scheduler.scaling.placement import Compute

pytestmark = pytest.mark.integration

SCALE_PATH = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale$")
DEPLOYMENT_PATH = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)$")


@dataclass
class FakeCluster:
    replicas: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: list[tuple[str, str, str, Any]] = field(default_factory=list)
    fail_patch: set[str] = field(default_factory=set)
    # The worker container's resources per Deployment, as JSON Patches left them.
    resources: dict[tuple[str, str], Any] = field(default_factory=dict)


def make_handler(cluster: FakeCluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # keep pytest's output clean
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _scale(self, namespace: str, name: str) -> dict[str, Any]:
            replicas = cluster.replicas[(namespace, name)]
            return {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": replicas},
                "status": {"replicas": replicas, "selector": f"app={name}"},
            }

        def _not_found(self, name: str) -> None:
            self._reply(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f'deployments.apps "{name}" not found',
                    "reason": "NotFound",
                    "code": 404,
                },
            )

        def _route(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            cluster.requests.append((method, self.path, self.headers.get("Content-Type", ""), body))
            whole = DEPLOYMENT_PATH.match(self.path)
            if whole is not None and method == "PATCH":
                namespace, name = whole.groups()
                if (namespace, name) not in cluster.replicas:
                    self._not_found(name)
                    return
                for op in body:
                    assert op["op"] == "add", op
                    assert op["path"] == "/spec/template/spec/containers/0/resources", op
                    cluster.resources[(namespace, name)] = op["value"]
                self._reply(200, {"kind": "Deployment", "metadata": {"name": name}})
                return
            match = SCALE_PATH.match(self.path)
            if match is None:
                self._reply(404, {"kind": "Status", "code": 404, "message": "no such path"})
                return
            namespace, name = match.groups()
            if (namespace, name) not in cluster.replicas:
                self._not_found(name)
                return
            if method == "PATCH":
                if name in cluster.fail_patch:
                    self._reply(500, {"kind": "Status", "code": 500, "message": "etcd is sad"})
                    return
                cluster.replicas[(namespace, name)] = int(body["spec"]["replicas"])
            self._reply(200, self._scale(namespace, name))

        def do_GET(self) -> None:
            self._route("GET")

        def do_PATCH(self) -> None:
            self._route("PATCH")

    return Handler


@pytest.fixture
def cluster() -> Iterator[tuple[FakeCluster, Any]]:
    fake = FakeCluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration()
    config.host = f"http://127.0.0.1:{server.server_address[1]}"
    api_client = client.ApiClient(config)
    try:
        yield fake, client.AppsV1Api(api_client)
    finally:
        api_client.close()
        server.shutdown()
        server.server_close()


def target(variant: str, count: int) -> WorkerTarget:
    return WorkerTarget(endpoint="churn", variant=variant, accelerator="gpu", count=count)


def test_replicas_follow_the_scaler_through_the_scale_subresource(
    cluster: tuple[FakeCluster, Any], caplog: pytest.LogCaptureFixture
) -> None:
    fake, apps = cluster
    fake.replicas[("ml", "sluiceway-worker-churn-a")] = 0
    fake.replicas[("ml", "sluiceway-worker-churn-b")] = 3
    backend = KubernetesDeployments(
        apps_api=apps, namespace="ml", deployment="sluiceway-worker-{endpoint}-{variant}"
    )

    counts = backend.apply([target("a", 2), target("b", 3), target("c", 1)])
    assert fake.replicas[("ml", "sluiceway-worker-churn-a")] == 2
    assert fake.replicas[("ml", "sluiceway-worker-churn-b")] == 3
    assert counts == {"churn/a": 0, "churn/b": 3, "churn/c": 0}
    patches = [r for r in fake.requests if r[0] == "PATCH"]
    assert len(patches) == 1, "b already had its replicas: no PATCH for it"
    _method, path, content_type, body = patches[0]
    assert path == "/apis/apps/v1/namespaces/ml/deployments/sluiceway-worker-churn-a/scale"
    assert "merge-patch+json" in content_type
    assert body == {"spec": {"replicas": 2}}
    assert "no Deployment ml/sluiceway-worker-churn-c" in caplog.text

    # The endpoint's variant a is deleted: its Deployment goes to zero.
    caplog.clear()
    backend.apply([target("b", 1), target("c", 1)])
    assert fake.replicas[("ml", "sluiceway-worker-churn-a")] == 0
    assert fake.replicas[("ml", "sluiceway-worker-churn-b")] == 1
    assert "churn-c" not in caplog.text, "a missing Deployment is reported once"


def test_an_api_error_is_logged_and_the_other_variants_still_scale(
    cluster: tuple[FakeCluster, Any], caplog: pytest.LogCaptureFixture
) -> None:
    fake, apps = cluster
    fake.replicas[("default", "w-churn-a")] = 1
    fake.replicas[("default", "w-churn-b")] = 1
    fake.fail_patch.add("w-churn-a")
    backend = KubernetesDeployments(
        apps_api=apps, namespace="default", deployment="w-{endpoint}-{variant}"
    )
    backend.apply([target("a", 4), target("b", 2)])
    assert fake.replicas[("default", "w-churn-a")] == 1
    assert fake.replicas[("default", "w-churn-b")] == 2
    assert "scaling Deployment default/w-churn-a failed: 500" in caplog.text


def test_component_copies_set_resource_requests_limits_and_gpus_then_replicas(
    cluster: tuple[FakeCluster, Any],
) -> None:
    """The cluster places component copies: the backend declares their compute on the
    Deployment (once per change) and sets their replicas."""
    fake, apps = cluster
    fake.replicas[("ml", "w-churn-ic.small")] = 0
    fake.replicas[("ml", "w-churn-ic.gpu")] = 0
    backend = KubernetesDeployments(
        apps_api=apps, namespace="ml", deployment="w-{endpoint}-{variant}"
    )
    small = Compute(cpu_cores=0.5, memory_mb=512)
    gpu = Compute(cpu_cores=2, memory_mb=8192, gpus=1)

    def copies(variant: str, compute: Compute, count: int) -> WorkerTarget:
        return WorkerTarget("churn", variant, "cpu", count, compute=compute)

    backend.apply([copies("ic.small", small, 2), copies("ic.gpu", gpu, 1)])
    assert fake.resources[("ml", "w-churn-ic.small")] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert fake.resources[("ml", "w-churn-ic.gpu")]["limits"] == {
        "cpu": "2000m",
        "memory": "8192Mi",
        "nvidia.com/gpu": "1",
    }
    assert fake.replicas[("ml", "w-churn-ic.small")] == 2
    patches = [r for r in fake.requests if r[0] == "PATCH" and r[1].endswith("ic.small")]
    assert "json-patch+json" in patches[0][2]

    # Same compute again: no second resources patch. New compute: one more.
    backend.apply([copies("ic.small", small, 2), copies("ic.gpu", gpu, 1)])
    backend.apply([copies("ic.small", Compute(cpu_cores=1, memory_mb=512), 2)])
    resource_patches = [
        r
        for r in fake.requests
        if r[0] == "PATCH" and r[1].endswith("deployments/w-churn-ic.small")
    ]
    assert len(resource_patches) == 2
    assert fake.resources[("ml", "w-churn-ic.small")]["requests"]["cpu"] == "1000m"
    assert fake.replicas[("ml", "w-churn-ic.gpu")] == 0, "a deleted component goes to zero"

"""Kubernetes backend: one worker Deployment per endpoint variant, its replicas set by the scaler.

Each variant's workers are a Deployment named from `kubernetes_deployment`
(default `sluiceway-worker-{endpoint}-{variant}`) in `kubernetes_namespace`,
whose pods run `sluice worker --variant ENDPOINT/VARIANT`. Creating those
Deployments (image, GPU requests, `terminationGracePeriodSeconds` long enough
for a warm shutdown) is the operator's job; this backend only reads and patches
their `apps/v1` scale subresource through the official `kubernetes` client, and
leaves placement and the GPU budget to the cluster. Kubernetes stops a pod with
SIGTERM, which the worker treats as a warm shutdown, as in the local backend.

A missing Deployment is reported once and skipped; a variant that disappears
(endpoint deleted) has its Deployment scaled to zero.

An inference component's copies are a Deployment too (its variant label is
`ic.<name>`: `sluiceway-worker-churn-ic.small`), and there the cluster's own
scheduler does the placing: the backend sets the worker container's resource
requests and limits to the component's compute (`cpu`, `memory`, and
`nvidia.com/gpu` for GPUs) with one JSON Patch whenever they differ from what
it last set, then its replicas. A copy with only `gpu_memory_mb` asks for one
`nvidia.com/gpu`: sharing a device between pods is the device plugin's
(time-slicing or MIG), not ours.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from scheduler.scaling.actuators.base import WorkerTarget
from scheduler.scaling.placement import Compute

logger = logging.getLogger(__name__)


# A Deployment's name must be a lowercase DNS subdomain; Sluiceway's names are
# case-sensitive (SageMaker's rule: `AllTraffic`).
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def kubernetes_name(name: str) -> str:
    """`name` if Kubernetes takes it, else lowercased plus a short hash of the original.

    `sluiceway-worker-churn-AllTraffic` → `sluiceway-worker-churn-alltraffic-3f0a9c1e`, so
    `AllTraffic` and `alltraffic` (two variants to Sluiceway) never share a Deployment.
    """
    if _DNS_NAME.match(name):
        return name
    return f"{name.lower()}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def load_apps_api() -> Any:
    """An `AppsV1Api` from the in-cluster service account, else from ~/.kube/config."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.AppsV1Api()


def container_resources(compute: Compute) -> dict[str, dict[str, str]]:
    """Requests and limits for one copy: 0.5 cores, 512 MB, 1 GPU →
    `{"requests": {"cpu": "500m", "memory": "512Mi", "nvidia.com/gpu": "1"}, "limits": same}`.

    Requests equal limits (Guaranteed QoS): a copy gets what it declared, and never more.
    """
    wanted = {"cpu": f"{round(compute.cpu_cores * 1000)}m", "memory": f"{compute.memory_mb}Mi"}
    gpus = compute.gpus or (1 if compute.gpu_memory_mb > 0 else 0)
    if gpus:
        wanted["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(wanted), "limits": dict(wanted)}


class KubernetesDeployments:
    def __init__(
        self, *, apps_api: Any, namespace: str, deployment: str, container_index: int = 0
    ) -> None:
        self.api = apps_api
        self.namespace = namespace
        self.deployment = deployment
        self.container_index = container_index  # the worker container in the pod template
        self._known: dict[str, WorkerTarget] = {}
        self._missing: set[str] = set()
        self._resources: dict[str, dict[str, dict[str, str]]] = {}  # last set, per Deployment

    def name_of(self, target: WorkerTarget) -> str:
        # A deployment's new variant is keyed `a~2`; `~` is not allowed in a Kubernetes name.
        variant = target.variant.replace("~", "-c")
        return kubernetes_name(self.deployment.format(endpoint=target.endpoint, variant=variant))

    def apply(self, targets: list[WorkerTarget]) -> dict[str, int]:
        from kubernetes.client.exceptions import ApiException

        gone = [
            WorkerTarget(t.endpoint, t.variant, t.accelerator, 0)
            for key, t in self._known.items()
            if key not in {target.key for target in targets}
        ]
        counts: dict[str, int] = {}
        for target in [*targets, *gone]:
            name = self.name_of(target)
            try:
                if target.compute is not None:
                    self._set_resources(name, container_resources(target.compute))
                counts[target.key] = self._scale(name, target.count)
            except ApiException as exc:
                if exc.status == 404:
                    if name not in self._missing:
                        logger.warning(
                            "no Deployment %s/%s for %s; create it to run its workers",
                            self.namespace,
                            name,
                            target.key,
                        )
                        self._missing.add(name)
                else:
                    logger.warning(
                        "scaling Deployment %s/%s failed: %s %s",
                        self.namespace,
                        name,
                        exc.status,
                        exc.reason,
                    )
                continue
            self._missing.discard(name)
        self._known = {t.key: t for t in targets}
        return {t.key: counts.get(t.key, 0) for t in targets}

    def _set_resources(self, name: str, resources: dict[str, dict[str, str]]) -> None:
        """Patch the worker container's requests and limits, when they changed."""
        if self._resources.get(name) == resources:
            return
        path = f"/spec/template/spec/containers/{self.container_index}/resources"
        # JSON Patch `add` replaces the member: the rest of the pod template is untouched.
        self.api.patch_namespaced_deployment(
            name, self.namespace, [{"op": "add", "path": path, "value": resources}]
        )
        logger.info("Deployment %s/%s: resources %s", self.namespace, name, resources)
        self._resources[name] = resources

    def _scale(self, name: str, replicas: int) -> int:
        """Set the Deployment's replicas if they differ; its ready replicas now."""
        scale = self.api.read_namespaced_deployment_scale(name, self.namespace)
        if (scale.spec.replicas or 0) != replicas:
            logger.info(
                "Deployment %s/%s: replicas %s → %d",
                self.namespace,
                name,
                scale.spec.replicas,
                replicas,
            )
            self.api.patch_namespaced_deployment_scale(
                name, self.namespace, {"spec": {"replicas": replicas}}
            )
        return int(scale.status.replicas or 0) if scale.status else 0

    def placement_view(self) -> None:
        """The cluster's scheduler places pods by their resource requests."""
        return None

    def close(self) -> None:
        """Leave the replicas as they are: the workers outlive a scheduler restart."""

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
"""

from __future__ import annotations

import logging
from typing import Any

from scheduler.scaling.actuators.base import WorkerTarget

logger = logging.getLogger(__name__)


def load_apps_api() -> Any:
    """An `AppsV1Api` from the in-cluster service account, else from ~/.kube/config."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.AppsV1Api()


class KubernetesDeployments:
    def __init__(self, *, apps_api: Any, namespace: str, deployment: str) -> None:
        self.api = apps_api
        self.namespace = namespace
        self.deployment = deployment
        self._known: dict[str, WorkerTarget] = {}
        self._missing: set[str] = set()

    def name_of(self, target: WorkerTarget) -> str:
        # A deployment's new variant is keyed `a~2`; `~` is not allowed in a Kubernetes name.
        variant = target.variant.replace("~", "-c")
        return self.deployment.format(endpoint=target.endpoint, variant=variant)

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

    def close(self) -> None:
        """Leave the replicas as they are: the workers outlive a scheduler restart."""

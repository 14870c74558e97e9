"""What every actuator is given and answers: worker counts per endpoint variant.

The scaler decides; an actuator makes the world match (local processes,
Kubernetes Deployments) and reports how many workers it has running per
variant. `apply` is called once per scheduler tick and must not block for long:
stopping workers is started in one tick and finished in later ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from scheduler.scaling.placement import Compute, Host, Placement


@dataclass(frozen=True, slots=True)
class WorkerTarget:
    """How many workers one endpoint variant should have, and on what kind of device."""

    endpoint: str
    variant: str
    accelerator: str  # "cpu" or "gpu"
    count: int
    framework: str = ""  # the model's: torch, xgboost or python ("" when unknown)
    waiting: int = 0  # messages queued or reserved: slots go to variants with work first
    # An inference component's copies: what one needs, and where each runs (the
    # scaler's placement; `count` is their number). None for a variant.
    compute: Compute | None = None
    placements: tuple[Placement, ...] = ()

    @property
    def key(self) -> str:
        """`ENDPOINT/VARIANT`, as `sluice worker --variant` takes it."""
        return f"{self.endpoint}/{self.variant}"


@dataclass(frozen=True, slots=True)
class PlacementView:
    """What a backend that places copies itself reports: its hosts' capacity for component
    copies (less what its variant workers hold), the copies running per component key
    (oldest first) and those still stopping."""

    hosts: list[Host]
    running: dict[str, list[Placement]] = field(default_factory=dict)
    draining: list[Placement] = field(default_factory=list)


class Actuator(Protocol):
    def apply(self, targets: list[WorkerTarget]) -> dict[str, int]:
        """Move towards `targets` (variants not listed get none); workers per `key` now."""
        ...

    def placement_view(self) -> PlacementView | None:
        """Hosts and copies for the scaler's placement; None where the backend's own scheduler
        places copies (Kubernetes) or nothing runs copies."""
        ...

    def close(self) -> None:
        """Stop managing: the local backend stops its processes, Kubernetes leaves replicas."""
        ...

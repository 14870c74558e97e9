"""Every status a row can be in, as one enum per table.

StrEnums: each member *is* its string ("queued"), so it compares equal to what
the database and the API's JSON hold, and is stored as that string. Code says
`JobStatus.QUEUED`, never the bare literal, so a typo is a NameError at import
and a search finds every place a state is set or tested.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """An async job (`jobs`): queued → running → succeeded | failed."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# A job in one of these may still run; a worker's or the reconciler's UPDATE
# only touches a row still in them, so a job is finished exactly once.
JOB_UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
JOB_FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class TransformStatus(StrEnum):
    """A batch transform job: queued → running → succeeded | failed, or stopping → stopped."""

    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TRANSFORM_ACTIVE = (TransformStatus.QUEUED, TransformStatus.RUNNING, TransformStatus.STOPPING)
TRANSFORM_FINAL = (TransformStatus.SUCCEEDED, TransformStatus.FAILED, TransformStatus.STOPPED)


class ObjectStatus(StrEnum):
    """One input object of a transform: listed → planned (cut into chunks) → assembled."""

    LISTED = "listed"
    PLANNED = "planned"
    ASSEMBLED = "assembled"


class ChunkStatus(StrEnum):
    """One chunk of a transform: pending → done, or failed (its job then fails)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    """One webhook delivery: pending (with retries) → delivered | dead."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class ComponentStatus(StrEnum):
    """An inference component: in_service, or deleting while its queue drains (then gone)."""

    IN_SERVICE = "in_service"
    DELETING = "deleting"


class EndpointStatus(StrEnum):
    """An endpoint's lifecycle (see docs/api.md)."""

    CREATING = "creating"
    IN_SERVICE = "in_service"
    UPDATING = "updating"
    ROLLING_BACK = "rolling_back"
    FAILED = "failed"
    DELETING = "deleting"


class DeploymentState(StrEnum):
    """A blue/green deployment: in_progress (provisioning, then steps) → baking →
    succeeded | rolled_back | stopped | failed (docs/deployments.md)."""

    IN_PROGRESS = "in_progress"
    BAKING = "baking"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    STOPPED = "stopped"
    FAILED = "failed"


DEPLOYMENT_ACTIVE = (DeploymentState.IN_PROGRESS, DeploymentState.BAKING)


class BaselineStatus(StrEnum):
    """A monitoring baseline: pending → running → completed | failed (computed by the scheduler)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ExecutionStatus(StrEnum):
    """One monitoring run: pending → running → completed | completed_with_violations | failed."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_VIOLATIONS = "completed_with_violations"
    FAILED = "failed"


EXECUTION_UNFINISHED = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)

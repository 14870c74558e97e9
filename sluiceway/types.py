"""Typed results of the SDK: pydantic models of what the API answers (docs/api.md).

Every model keeps fields it does not know (`extra="allow"`), so a newer server's
additions are readable (`endpoint.model_extra`) and survive `model_dump()`,
instead of failing an older client.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

JOB_FINAL = frozenset({"succeeded", "failed"})
TRANSFORM_FINAL = frozenset({"succeeded", "failed", "stopped"})
# An endpoint in one of these is on its way somewhere; `wait=True` waits it out.
ENDPOINT_MOVING = frozenset({"creating", "updating", "rolling_back", "deleting"})


class Result(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON object as the API sent it: its own names (`async`), unknown fields kept,
        fields it did not send left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class LoadedModel(Result):
    """One model under a multi-model variant's prefix, and where it is loaded."""

    model: str
    variant: str
    size_bytes: int
    memory_bytes: int | None = None
    loaded_on: list[str] = Field(default_factory=list)
    last_used_at: dt.datetime | None = None
    invocations: int = 0


class PipelineStep(Result):
    """A pipeline step as registered: the exact model version it runs."""

    name: str
    model: str
    version: int
    framework: str
    artifact_uri: str


class ModelVersion(Result):
    name: str
    version: int
    framework: str
    artifact_uri: str
    size_bytes: int | None = None
    sha256: str | None = None
    created_at: dt.datetime
    steps: list[PipelineStep] | None = None  # a pipeline's, in order


class Model(Result):
    name: str
    latest_version: int
    framework: str
    created_at: dt.datetime
    versions: list[ModelVersion] = Field(default_factory=list)
    steps: list[PipelineStep] | None = None  # the latest version's, for a pipeline


class Batching(Result):
    max_batch_size: int
    max_delay_ms: float


class Workers(Result):
    current: int
    desired: int


class Variant(Result):
    name: str
    model: str | None = None
    model_version: int | None = None
    weight: float = 1.0
    backlog: int = 0
    workers: Workers = Field(default_factory=lambda: Workers(current=0, desired=0))
    batching: Batching | None = None
    min_workers: int | None = None
    max_workers: int | None = None


class AsyncConfig(Result):
    output_prefix: str | None = None
    success_topic: str | None = None
    error_topic: str | None = None


class Endpoint(Result):
    name: str
    status: str
    failure_reason: str | None = None  # while `failed`: the variants that had no worker
    variants: list[Variant] = Field(default_factory=list)
    async_: AsyncConfig | None = Field(default=None, alias="async")
    config_version: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class JobInfo(Result):
    """An async job's state (GET /v1/jobs/{id})."""

    job_id: str
    status: str
    endpoint: str | None = None
    variant: str | None = None
    output_location: str | None = None
    error: Any = None
    attempts: int | None = None
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in JOB_FINAL


class TransformJobInfo(Result):
    """A batch transform's state and progress (GET /v1/transform-jobs/{id})."""

    job_id: str
    name: str | None = None
    status: str
    total_records: int | None = None
    processed_records: int = 0
    failed_records: int = 0
    input_objects: int | None = None
    completed_objects: int = 0
    output_prefix: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TRANSFORM_FINAL


@dataclass(frozen=True, slots=True)
class Invoked:
    """An answer as it came: the raw body (JSON or CSV), its content type, and the
    variant and job the API named in `X-Invoked-Variant` and `X-Job-Id`."""

    body: bytes
    content_type: str
    variant: str | None = None
    job_id: str | None = None
    model: str | None = None  # a multi-model variant's model that answered (X-Invoked-Model)

    def data(self) -> Any:
        """The body decoded as JSON."""
        return orjson.loads(self.body)

"""A serial inference pipeline's definition: its steps, as the API records and workers load them.

A pipeline model version (`framework: "pipeline"`) is 2 to 15 steps, each a
registered model version of another framework (SageMaker's `PipelineModel`:
containers in order, each one's output the next one's input). The API resolves
the steps once at registration — `{"name": "xgb", "model": "churn-xgb"}`
becomes version 3 of churn-xgb, an `xgboost` model at `s3://.../model.json` —
and stores that resolved list both in SQL (shown by `GET /v1/models/{name}`)
and as the version's artifact, `pipeline.json`, which is all a worker needs to
load every step. A later version of a step's model does not change a
registered pipeline; registering the pipeline again does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from core.errors import InvalidInput, NotFound

MIN_STEPS = 2
MAX_STEPS = 15  # SageMaker's limit of containers in one inference pipeline
PIPELINE = "pipeline"
TARGET_CONTAINER_HEADER = "X-Target-Container"
TARGET_CONTAINER = "target_container"  # its key in an invocation's `extra`


@dataclass(frozen=True, slots=True)
class PipelineStep:
    """One step: its name in the pipeline and the model version it runs."""

    name: str
    model: str
    version: int
    framework: str
    artifact_uri: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_steps(steps: Sequence[PipelineStep]) -> None:
    """The rules every pipeline keeps; InvalidInput naming the broken one.

    2 to 15 steps, distinct step names, and no step that is itself a pipeline
    (a pipeline of pipelines would hide its steps from direct mode and metrics).
    """
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise InvalidInput(
            f"a pipeline has {MIN_STEPS} to {MAX_STEPS} steps, this one has {len(steps)}"
        )
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            raise InvalidInput(f"two steps are named {step.name!r}; step names must differ")
        seen.add(step.name)
        if step.framework == PIPELINE:
            raise InvalidInput(
                f"step {step.name!r} is model {step.model!r} version {step.version}, "
                "itself a pipeline; a step must be an xgboost, torch or python model"
            )


def dumps(steps: Sequence[PipelineStep]) -> bytes:
    """The `pipeline.json` artifact of a pipeline version."""
    return orjson.dumps({"steps": [step.to_dict() for step in steps]})


def loads(data: bytes) -> list[PipelineStep]:
    """Steps from a `pipeline.json` artifact; InvalidInput if it is not one."""
    try:
        raw = orjson.loads(data)
        steps = [PipelineStep(**step) for step in raw["steps"]]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidInput(f"not a pipeline definition: {exc}") from exc
    check_steps(steps)
    return steps


def from_rows(rows: Sequence[dict[str, Any]] | None) -> list[PipelineStep]:
    """Steps as stored in SQL (`model_versions.steps`); empty for a model that is no pipeline."""
    return [PipelineStep(**row) for row in rows or ()]


def target_step(step_names: Sequence[str], target: str, *, model: str) -> int:
    """The index of the step `X-Target-Container` names; NotFound (404) naming the steps.

    E.g. steps ("prep", "xgb", "post") and target "xgb" → 1; target "scale" →
    404 `model 'churn' has no step 'scale'; its steps are ['prep', 'xgb', 'post']`.
    """
    if not step_names:
        raise NotFound(
            f"{TARGET_CONTAINER_HEADER} {target!r}: model {model!r} is not a pipeline, "
            "it has no steps to target"
        )
    try:
        return list(step_names).index(target)
    except ValueError:
        raise NotFound(
            f"model {model!r} has no step {target!r}; its steps are {list(step_names)}"
        ) from None

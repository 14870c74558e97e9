"""Registering serial inference pipelines: resolve the steps, check the chain, store it.

A pipeline registration names registered models; each becomes the exact
version it resolves to now (the latest unless `model_version` is given), so a
pipeline version never changes under its endpoints. What is checked here, each
a 422 naming the step: 2 to 15 steps, distinct names, every step a registered
model version, no step that is itself a pipeline, and the chain's types —
values flow between steps (core/pipeline.py) and one batch's answers are
split back per request, so a step must answer one value per instance: a
`python` step declaring `whole_payload_output` cannot be a step. The definition is stored as the
version's artifact (`pipeline.json`, content-addressed like every artifact)
and its steps in SQL.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tarfile
import tempfile

from sqlalchemy.orm import Session

from api.schemas import ModelVersionPublic, PipelineCreate
from api.services.registry import add_version, resolve_version
from core import pipeline
from core.config import get_settings
from core.errors import InvalidInput, NotFound
from core.pipeline import PipelineStep
from core.storage import S3Location, get_store

logger = logging.getLogger(__name__)


def register_pipeline(session: Session, spec: PipelineCreate) -> ModelVersionPublic:
    """Record `spec` as the next version of the pipeline model `spec.name`."""
    steps = [
        resolve_step(session, step.name, step.model, step.model_version) for step in spec.steps
    ]
    pipeline.check_steps(steps)
    if any(step.model == spec.name for step in steps):
        raise InvalidInput(f"pipeline {spec.name!r} cannot be one of its own steps")
    check_chain(steps)
    definition = pipeline.dumps(steps)
    digest = hashlib.sha256(definition).hexdigest()
    location = S3Location(get_settings().s3_bucket, f"models/{spec.name}/{digest}/pipeline.json")
    get_store().put_bytes(location, definition, "application/json")
    return add_version(
        session,
        name=spec.name,
        framework=pipeline.PIPELINE,
        artifact_uri=str(location),
        size=len(definition),
        sha256=digest,
        steps=[step.to_dict() for step in steps],
    )


def resolve_step(session: Session, name: str, model: str, version: int | None) -> PipelineStep:
    """The registered model version a step names; InvalidInput naming the step if none."""
    try:
        row = resolve_version(session, model, version)
    except (InvalidInput, NotFound) as exc:
        raise InvalidInput(f"step {name!r}: {exc.detail}") from exc
    return PipelineStep(
        name=name,
        model=model,
        version=row.version,
        framework=row.framework,
        artifact_uri=row.artifact_uri,
    )


def check_chain(steps: list[PipelineStep]) -> None:
    """Every step must answer one value per instance (the next step's input, or one
    request's share of the batch's answer).

    Only a python handler can answer otherwise (`whole_payload_output = True`);
    its bundle is read here for that declaration, not imported.
    """
    for step in steps:
        if step.framework == "python" and _declares_whole_payload(step):
            raise InvalidInput(
                f"step {step.name!r} ({step.model} version {step.version}) declares "
                "whole_payload_output: its answer is not one value per instance, and a "
                "pipeline's steps pass one value per instance on"
            )


WHOLE_PAYLOAD = re.compile(rb"^whole_payload_output\s*=\s*True", re.MULTILINE)
HANDLER_FILES = ("handler.py", "inference.py", "code/inference.py")


def _declares_whole_payload(step: PipelineStep) -> bool:
    """Whether the step's handler module sets `whole_payload_output = True` (read as text)."""
    with tempfile.TemporaryFile() as local:
        for chunk in get_store().iter_chunks(S3Location.parse_object(step.artifact_uri)):
            local.write(chunk)
        local.seek(0)
        try:
            with tarfile.open(fileobj=local, mode="r:gz") as bundle:
                for member in HANDLER_FILES:
                    try:
                        extracted = bundle.extractfile(member)
                    except KeyError:
                        continue
                    if extracted is not None:
                        return WHOLE_PAYLOAD.search(extracted.read()) is not None
        except (tarfile.TarError, OSError, EOFError) as exc:
            logger.warning("step %s: cannot read its bundle: %s", step.name, exc)
    return False

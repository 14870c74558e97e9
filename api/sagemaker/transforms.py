"""SageMaker transform jobs over native ones: one job per name (AWS's ResourceInUse),
a missing one is ResourceNotFound as on AWS."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.sagemaker import fields, mapping, store
from api.sagemaker.call import Call, spec_error
from api.sagemaker.errors import AwsError, validation
from api.sagemaker.models import find_model
from api.schemas import TransformJobCreate
from api.services import transforms as transform_service
from core.errors import Conflict, NotFound, SluicewayError

# --- transform jobs ---------------------------------------------------------------------


def _missing_job(name: str) -> AwsError:
    return AwsError("ResourceNotFound", f"Could not find requested job with name {name}")


def create_transform_job(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    fields.require(request, "TransformJobName", "ModelName", "TransformInput", "TransformOutput")
    fields.check_fields("CreateTransformJob", request)
    name = request["TransformJobName"]
    model = find_model(session, call, request["ModelName"])
    try:
        spec = TransformJobCreate.model_validate(mapping.transform_spec(request, model.body))
    except ValidationError as exc:
        raise spec_error(exc, "CreateTransformJob") from None
    in_use = AwsError(
        "ResourceInUse",
        f"Job name must be unique within an AWS account and region, and a job with this "
        f"name already exists ({call.arn('transform-job', name)})",
    )
    try:
        transform_service.get(session, name)
    except NotFound:
        pass
    else:
        raise in_use
    if not store.add(session, store.TRANSFORM_JOB, name, dict(request)):
        raise in_use
    try:
        transform_service.submit(session, spec)
    except SluicewayError:
        store.remove(session, store.TRANSFORM_JOB, name)
        raise
    return {"TransformJobArn": call.arn("transform-job", name)}


def describe_transform_job(session: Session, call: Call) -> dict[str, Any]:
    fields.require(call.body, "TransformJobName")
    name = call.body["TransformJobName"]
    document = store.get(session, store.TRANSFORM_JOB, name)
    if document is None:
        raise _missing_job(name)
    try:
        job = transform_service.get(session, name)
    except NotFound:
        raise _missing_job(name) from None
    answer = {k: v for k, v in document.body.items() if k not in ("Tags",)}
    answer.update(
        {
            "TransformJobArn": call.arn("transform-job", name),
            "TransformJobStatus": mapping.TRANSFORM_STATUS[job.status],
            "CreationTime": mapping.epoch(job.created_at),
        }
    )
    if job.error:
        answer["FailureReason"] = job.error
    if job.started_at:
        answer["TransformStartTime"] = mapping.epoch(job.started_at)
    if job.finished_at:
        answer["TransformEndTime"] = mapping.epoch(job.finished_at)
    return answer


def stop_transform_job(session: Session, call: Call) -> dict[str, Any]:
    fields.require(call.body, "TransformJobName")
    name = call.body["TransformJobName"]
    if store.get(session, store.TRANSFORM_JOB, name) is None:
        raise _missing_job(name)
    try:
        transform_service.stop(session, name)
    except NotFound:
        raise _missing_job(name) from None
    except Conflict as exc:
        raise validation(exc.detail) from None
    return {}


def list_transform_jobs(session: Session, call: Call) -> dict[str, Any]:
    names = {d.name for d in store.all_of(session, store.TRANSFORM_JOB)}
    items = []
    for job in transform_service.list_jobs(session, limit=1000):
        if job.name not in names:
            continue
        item: dict[str, Any] = {
            "TransformJobName": job.name,
            "TransformJobArn": call.arn("transform-job", job.name),
            "CreationTime": mapping.epoch(job.created_at),
            "TransformJobStatus": mapping.TRANSFORM_STATUS[job.status],
        }
        if job.finished_at:
            item["TransformEndTime"] = mapping.epoch(job.finished_at)
        if job.error:
            item["FailureReason"] = job.error
        items.append(item)
    chunk, token = mapping.page(
        items, call.body, name_key="TransformJobName", status_key="TransformJobStatus"
    )
    return {"TransformJobSummaries": chunk, **({"NextToken": token} if token else {})}

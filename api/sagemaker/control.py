"""The control plane (`boto3.client("sagemaker")`): one function per operation.

Each takes the request's JSON body and answers the operation's output, through
the native services: CreateModel registers a model version (registry),
CreateEndpoint creates a native endpoint from the stored endpoint config,
UpdateEndpointWeightsAndCapacities re-weights and re-sizes its variants,
CreateTransformJob submits a native transform job. Missing resources answer as
AWS does (`ValidationException` "Could not find ..." for models, configs and
endpoints, which boto3's `endpoint_deleted` waiter waits for; `ResourceNotFound`
for transform jobs). Blocking (SQL, S3): the caller runs it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.sagemaker import mapping, store
from api.sagemaker.errors import AwsError, unsupported, validation
from api.schemas import EndpointCreate, TransformJobCreate, VariantPatch, WeightsPatch
from api.services import endpoints as endpoint_service
from api.services import registry
from api.services import transforms as transform_service
from api.services.topics import require_topics
from core.errors import Conflict, NotFound, SluicewayError


@dataclass(frozen=True, slots=True)
class Call:
    """One control-plane request: its body and the region it was signed for (for ARNs)."""

    body: dict[str, Any]
    region: str = mapping.DEFAULT_REGION

    def arn(self, kind: str, name: str) -> str:
        return mapping.arn(kind, name, self.region)


Operation = Callable[[Session, Call], dict[str, Any]]


def _spec_error(exc: ValidationError, where: str) -> AwsError:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    return validation(f"{where}: {'; '.join(parts)}")


# --- models -----------------------------------------------------------------------------


def create_model(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    mapping.require(request, "ModelName")
    mapping.check_fields("CreateModel", request)
    name = request["ModelName"]
    if store.get(session, store.MODEL, name) is not None:
        raise validation(f'Cannot create already existing model "{call.arn("model", name)}".')
    container = mapping.primary_container(request)
    framework = mapping.framework_of(container)
    version = registry.register_uri(
        session, name=name, framework=framework, artifact_uri=container["ModelDataUrl"]
    )
    document = {**request, "NativeVersion": version.version, "Framework": framework}
    if not store.add(session, store.MODEL, name, document):
        raise validation(f'Cannot create already existing model "{call.arn("model", name)}".')
    return {"ModelArn": call.arn("model", name)}


def _model(session: Session, call: Call, name: str) -> store.Document:
    found = store.get(session, store.MODEL, name)
    if found is None:
        raise validation(f'Could not find model "{call.arn("model", name)}".')
    return found


def describe_model(session: Session, call: Call) -> dict[str, Any]:
    mapping.require(call.body, "ModelName")
    found = _model(session, call, call.body["ModelName"])
    body = {k: v for k, v in found.body.items() if k not in ("NativeVersion", "Framework")}
    body.pop("Tags", None)
    return {
        **body,
        "ModelArn": call.arn("model", found.name),
        "CreationTime": mapping.epoch(found.created_at),
    }


def delete_model(session: Session, call: Call) -> dict[str, Any]:
    """Removes the SageMaker model; its registered versions stay in the native registry
    (an endpoint may serve them still; DELETE /v1/models/{name} removes them)."""
    mapping.require(call.body, "ModelName")
    name = call.body["ModelName"]
    if not store.remove(session, store.MODEL, name):
        raise validation(f'Could not find model "{call.arn("model", name)}".')
    return {}


def list_models(session: Session, call: Call) -> dict[str, Any]:
    items = [
        {
            "ModelName": d.name,
            "ModelArn": call.arn("model", d.name),
            "CreationTime": mapping.epoch(d.created_at),
        }
        for d in store.all_of(session, store.MODEL)
    ]
    chunk, token = mapping.page(items, call.body, name_key="ModelName")
    return {"Models": chunk, **({"NextToken": token} if token else {})}


# --- endpoint configs -------------------------------------------------------------------


def create_endpoint_config(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    mapping.require(request, "EndpointConfigName", "ProductionVariants")
    mapping.check_fields("CreateEndpointConfig", request)
    name = request["EndpointConfigName"]
    models = _variant_models(session, call, request)
    # Build the native spec now, so a config that cannot serve is refused at once.
    try:
        spec = EndpointCreate.model_validate(mapping.endpoint_spec("check", request, models))
    except ValidationError as exc:
        raise _spec_error(exc, "CreateEndpointConfig") from None
    require_topics(
        session,
        {
            "SuccessTopic": spec.async_.success_topic,
            "ErrorTopic": spec.async_.error_topic,
        },
    )
    if not store.add(session, store.ENDPOINT_CONFIG, name, dict(request)):
        raise validation(
            "Cannot create already existing endpoint configuration "
            f'"{call.arn("endpoint-config", name)}".'
        )
    return {"EndpointConfigArn": call.arn("endpoint-config", name)}


def _variant_models(
    session: Session, call: Call, config: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    names = [v.get("ModelName") for v in config.get("ProductionVariants", [])]
    if None in names:
        raise validation("every ProductionVariant needs a ModelName")
    found = store.get_many(session, store.MODEL, [str(n) for n in names])
    missing = [n for n in names if n not in found]
    if missing:
        raise validation(f'Could not find model "{call.arn("model", str(missing[0]))}".')
    return {n: d.body for n, d in found.items()}


def _config(session: Session, call: Call, name: str) -> store.Document:
    found = store.get(session, store.ENDPOINT_CONFIG, name)
    if found is None:
        raise validation(
            f'Could not find endpoint configuration "{call.arn("endpoint-config", name)}".'
        )
    return found


def describe_endpoint_config(session: Session, call: Call) -> dict[str, Any]:
    mapping.require(call.body, "EndpointConfigName")
    found = _config(session, call, call.body["EndpointConfigName"])
    body = {k: v for k, v in found.body.items() if k != "Tags"}
    return {
        **body,
        "EndpointConfigArn": call.arn("endpoint-config", found.name),
        "CreationTime": mapping.epoch(found.created_at),
    }


def delete_endpoint_config(session: Session, call: Call) -> dict[str, Any]:
    mapping.require(call.body, "EndpointConfigName")
    name = call.body["EndpointConfigName"]
    if not store.remove(session, store.ENDPOINT_CONFIG, name):
        raise validation(
            f'Could not find endpoint configuration "{call.arn("endpoint-config", name)}".'
        )
    return {}


def list_endpoint_configs(session: Session, call: Call) -> dict[str, Any]:
    items = [
        {
            "EndpointConfigName": d.name,
            "EndpointConfigArn": call.arn("endpoint-config", d.name),
            "CreationTime": mapping.epoch(d.created_at),
        }
        for d in store.all_of(session, store.ENDPOINT_CONFIG)
    ]
    chunk, token = mapping.page(items, call.body, name_key="EndpointConfigName")
    return {"EndpointConfigs": chunk, **({"NextToken": token} if token else {})}


# --- endpoints --------------------------------------------------------------------------


def create_endpoint(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    mapping.require(request, "EndpointName", "EndpointConfigName")
    if "DeploymentConfig" in request:
        raise unsupported(
            [f"DeploymentConfig ({mapping.NOT_YET['DeploymentConfig']}: not yet)"],
            "CreateEndpoint",
        )
    mapping.check_fields("CreateEndpoint", request)
    name = request["EndpointName"]
    config = _config(session, call, request["EndpointConfigName"])
    models = _variant_models(session, call, config.body)
    try:
        spec = EndpointCreate.model_validate(mapping.endpoint_spec(name, config.body, models))
    except ValidationError as exc:
        raise _spec_error(exc, "CreateEndpoint") from None
    try:
        endpoint_service.create_endpoint(session, spec)
    except Conflict:
        raise validation(
            f'Cannot create already existing endpoint "{call.arn("endpoint", name)}".'
        ) from None
    images = {
        v["VariantName"]: mapping.primary_container(models[v["ModelName"]]).get("Image")
        for v in config.body.get("ProductionVariants", [])
    }
    store.put(session, store.ENDPOINT, name, {**request, "Config": config.body, "Images": images})
    return {"EndpointArn": call.arn("endpoint", name)}


def _missing_endpoint(call: Call, name: str) -> AwsError:
    return validation(f'Could not find endpoint "{call.arn("endpoint", name)}".')


def describe_endpoint(session: Session, call: Call) -> dict[str, Any]:
    mapping.require(call.body, "EndpointName")
    name = call.body["EndpointName"]
    try:
        endpoint = endpoint_service.get_endpoint(session, name)
    except NotFound:
        raise _missing_endpoint(call, name) from None
    document = store.get(session, store.ENDPOINT, name)
    config: dict[str, Any] = document.body.get("Config", {}) if document else {}
    declared = {v["VariantName"]: v for v in config.get("ProductionVariants", [])}
    variants = []
    for variant in endpoint.variants:
        sagemaker_variant = declared.get(variant.name, {})
        per = mapping.placement(sagemaker_variant.get("InstanceType")).workers_per_instance
        image = (document.body.get("Images") or {}).get(variant.name) if document else None
        variants.append(
            {
                "VariantName": variant.name,
                "DeployedImages": [
                    {"SpecifiedImage": image or f"sluiceway/{variant.framework}:{variant.model}"}
                ],
                "CurrentWeight": variant.weight,
                "DesiredWeight": variant.weight,
                "CurrentInstanceCount": mapping.instances(variant.workers.current, per),
                "DesiredInstanceCount": mapping.instances(variant.workers.desired, per),
            }
        )
    answer: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": call.arn("endpoint", name),
        "EndpointConfigName": document.body["EndpointConfigName"] if document else name,
        "ProductionVariants": variants,
        "EndpointStatus": mapping.ENDPOINT_STATUS.get(endpoint.status, "InService"),
        "CreationTime": mapping.epoch(endpoint.created_at),
        "LastModifiedTime": mapping.epoch(endpoint.updated_at),
    }
    if config.get("AsyncInferenceConfig"):
        answer["AsyncInferenceConfig"] = config["AsyncInferenceConfig"]
    if endpoint.data_capture is not None:
        capture = endpoint.data_capture
        answer["DataCaptureConfig"] = {
            "EnableCapture": capture.enabled,
            "CaptureStatus": "Started" if capture.enabled else "Stopped",
            "CurrentSamplingPercentage": int(capture.sampling_percent),
            "DestinationS3Uri": capture.destination,
        }
    return answer


def update_endpoint_weights_and_capacities(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    mapping.require(request, "EndpointName", "DesiredWeightsAndCapacities")
    mapping.check_fields("UpdateEndpointWeightsAndCapacities", request)
    name = request["EndpointName"]
    wanted = request["DesiredWeightsAndCapacities"]
    empty = [w.get("VariantName") for w in wanted if set(w) == {"VariantName"}]
    if empty:
        raise validation(f"give DesiredWeight or DesiredInstanceCount for variant(s) {empty}")
    document = store.get(session, store.ENDPOINT, name)
    config = document.body.get("Config", {}) if document else {}
    declared = {v["VariantName"]: v for v in config.get("ProductionVariants", [])}
    try:
        weights = [
            {"name": w["VariantName"], "weight": float(w["DesiredWeight"])}
            for w in wanted
            if "DesiredWeight" in w
        ]
        if weights:
            endpoint_service.set_weights(
                session, name, WeightsPatch.model_validate({"variants": weights})
            )
        for w in wanted:
            if "DesiredInstanceCount" not in w:
                continue
            instance_type = declared.get(w["VariantName"], {}).get("InstanceType")
            workers = (
                int(w["DesiredInstanceCount"])
                * mapping.placement(instance_type).workers_per_instance
            )
            current = endpoint_service.get_endpoint(session, name)
            known = {v.name: v for v in current.variants}
            high = (
                max(workers, known[w["VariantName"]].max_workers)
                if w["VariantName"] in known
                else workers
            )
            endpoint_service.update_variant(
                session,
                name,
                w["VariantName"],
                VariantPatch.model_validate({"min_workers": workers, "max_workers": high}),
            )
    except ValidationError as exc:
        raise _spec_error(exc, "UpdateEndpointWeightsAndCapacities") from None
    except NotFound as exc:
        if "no endpoint" in exc.detail:
            raise _missing_endpoint(call, name) from None
        raise validation(exc.detail) from None
    return {"EndpointArn": call.arn("endpoint", name)}


def delete_endpoint(session: Session, call: Call) -> dict[str, Any]:
    mapping.require(call.body, "EndpointName")
    name = call.body["EndpointName"]
    try:
        endpoint_service.delete_endpoint(session, name)
    except NotFound:
        raise _missing_endpoint(call, name) from None
    store.remove(session, store.ENDPOINT, name)
    return {}


def list_endpoints(session: Session, call: Call) -> dict[str, Any]:
    items = [
        {
            "EndpointName": e.name,
            "EndpointArn": call.arn("endpoint", e.name),
            "CreationTime": mapping.epoch(e.created_at),
            "LastModifiedTime": mapping.epoch(e.updated_at),
            "EndpointStatus": mapping.ENDPOINT_STATUS.get(e.status, "InService"),
        }
        for e in endpoint_service.list_endpoints(session)
    ]
    chunk, token = mapping.page(
        items, call.body, name_key="EndpointName", status_key="EndpointStatus"
    )
    return {"Endpoints": chunk, **({"NextToken": token} if token else {})}


# --- transform jobs ---------------------------------------------------------------------


def _missing_job(name: str) -> AwsError:
    return AwsError("ResourceNotFound", f"Could not find requested job with name {name}")


def create_transform_job(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    mapping.require(request, "TransformJobName", "ModelName", "TransformInput", "TransformOutput")
    mapping.check_fields("CreateTransformJob", request)
    name = request["TransformJobName"]
    model = _model(session, call, request["ModelName"])
    try:
        spec = TransformJobCreate.model_validate(mapping.transform_spec(request, model.body))
    except ValidationError as exc:
        raise _spec_error(exc, "CreateTransformJob") from None
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
    mapping.require(call.body, "TransformJobName")
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
    mapping.require(call.body, "TransformJobName")
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


OPERATIONS: dict[str, Operation] = {
    "CreateModel": create_model,
    "DescribeModel": describe_model,
    "DeleteModel": delete_model,
    "ListModels": list_models,
    "CreateEndpointConfig": create_endpoint_config,
    "DescribeEndpointConfig": describe_endpoint_config,
    "DeleteEndpointConfig": delete_endpoint_config,
    "ListEndpointConfigs": list_endpoint_configs,
    "CreateEndpoint": create_endpoint,
    "DescribeEndpoint": describe_endpoint,
    "UpdateEndpointWeightsAndCapacities": update_endpoint_weights_and_capacities,
    "DeleteEndpoint": delete_endpoint,
    "ListEndpoints": list_endpoints,
    "CreateTransformJob": create_transform_job,
    "DescribeTransformJob": describe_transform_job,
    "StopTransformJob": stop_transform_job,
    "ListTransformJobs": list_transform_jobs,
}

# Operations after which this API process re-reads the endpoint's routes at once (as the
# native routes do; other API processes within SLUICEWAY_ENDPOINT_CACHE_S).
CHANGES_ROUTES = frozenset(
    {"CreateEndpoint", "DeleteEndpoint", "UpdateEndpointWeightsAndCapacities"}
)

# Operations of the seeds' code that later issues bring (deployments, components, ...).
NOT_YET_OPERATIONS: dict[str, str] = {
    "UpdateEndpoint": "deployments (UpdateEndpoint with DeploymentConfig)",
    "CreateInferenceComponent": "inference components",
    "DescribeInferenceComponent": "inference components",
    "UpdateInferenceComponent": "inference components",
    "DeleteInferenceComponent": "inference components",
    "ListInferenceComponents": "inference components",
    "UpdateInferenceComponentRuntimeConfig": "inference components",
}


def run(session: Session, operation: str, call: Call) -> dict[str, Any]:
    """Run one operation; unknown ones are a ValidationException naming them."""
    handler = OPERATIONS.get(operation)
    if handler is None:
        later = NOT_YET_OPERATIONS.get(operation)
        reason = f"{later}: not yet" if later else "not supported"
        raise AwsError(
            "ValidationException",
            f"Sluiceway does not support the operation {operation} ({reason}); it supports "
            f"{', '.join(sorted(OPERATIONS))}",
        )
    return handler(session, call)

"""SageMaker models and endpoint configs: CreateModel registers a native model version
(an inference pipeline's containers each one, then the native pipeline over them);
an endpoint config is kept as written (Sluiceway has no such resource) and checked by
building the native endpoint spec it would make."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.sagemaker import fields, mapping, store
from api.sagemaker.call import Call, spec_error
from api.sagemaker.errors import validation
from api.schemas import EndpointCreate, PipelineCreate, PipelineStepCreate
from api.services import registry
from api.services.pipelines import register_pipeline
from api.services.topics import require_topics

# --- models -----------------------------------------------------------------------------


def create_model(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    fields.require(request, "ModelName")
    fields.check_fields("CreateModel", request)
    name = request["ModelName"]
    if store.get(session, store.MODEL, name) is not None:
        raise validation(f'Cannot create already existing model "{call.arn("model", name)}".')
    pipeline = mapping.pipeline_containers(request)
    document: dict[str, Any]
    if pipeline is not None:
        document = {**request, **_register_pipeline(session, name, pipeline)}
        if not store.add(session, store.MODEL, name, document):
            raise validation(f'Cannot create already existing model "{call.arn("model", name)}".')
        return {"ModelArn": call.arn("model", name)}
    container = mapping.primary_container(request)
    many = mapping.multi_model(container)
    if many is not None:
        # Nothing to register: the variant reads its models from the prefix on demand.
        document = {**request, "MultiModel": many, "Framework": many["framework"]}
    else:
        framework = mapping.framework_of(container)
        version = registry.register_uri(
            session, name=name, framework=framework, artifact_uri=container["ModelDataUrl"]
        )
        document = {**request, "NativeVersion": version.version, "Framework": framework}
    if not store.add(session, store.MODEL, name, document):
        raise validation(f'Cannot create already existing model "{call.arn("model", name)}".')
    return {"ModelArn": call.arn("model", name)}


def _register_pipeline(
    session: Session, name: str, pipeline: mapping.PipelineContainers
) -> dict[str, Any]:
    """Register each container as a step model (`{name}-{hostname}`, as a PrimaryContainer
    registers), then the native pipeline model `name` over those exact versions. Serial
    and Direct make the same pipeline: a Direct call names its step with
    TargetContainerHostname (the native X-Target-Container). Returns the document's
    internal fields."""
    steps = []
    for hostname, container in pipeline.containers:
        step_model = mapping.step_model_name(name, hostname)
        version = registry.register_uri(
            session,
            name=step_model,
            framework=mapping.framework_of(container),
            artifact_uri=container["ModelDataUrl"],
        )
        steps.append(
            PipelineStepCreate(name=hostname, model=step_model, model_version=version.version)
        )
    registered = register_pipeline(
        session, PipelineCreate(name=name, framework="pipeline", steps=steps)
    )
    return {
        "NativeVersion": registered.version,
        "Framework": "pipeline",
        "ExecutionMode": pipeline.mode,
    }


def find_model(session: Session, call: Call, name: str) -> store.Document:
    found = store.get(session, store.MODEL, name)
    if found is None:
        raise validation(f'Could not find model "{call.arn("model", name)}".')
    return found


def describe_model(session: Session, call: Call) -> dict[str, Any]:
    fields.require(call.body, "ModelName")
    found = find_model(session, call, call.body["ModelName"])
    internal = ("NativeVersion", "Framework", "MultiModel", "ExecutionMode")
    body = {k: v for k, v in found.body.items() if k not in internal}
    body.pop("Tags", None)
    return {
        **body,
        "ModelArn": call.arn("model", found.name),
        "CreationTime": mapping.epoch(found.created_at),
    }


def delete_model(session: Session, call: Call) -> dict[str, Any]:
    """Removes the SageMaker model; its registered versions stay in the native registry
    (an endpoint may serve them still; DELETE /v1/models/{name} removes them)."""
    fields.require(call.body, "ModelName")
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
    fields.require(request, "EndpointConfigName", "ProductionVariants")
    fields.check_fields("CreateEndpointConfig", request)
    name = request["EndpointConfigName"]
    models = variant_models(session, call, request)
    # Build the native spec now, so a config that cannot serve is refused at once.
    try:
        spec = EndpointCreate.model_validate(mapping.endpoint_spec("check", request, models))
    except ValidationError as exc:
        raise spec_error(exc, "CreateEndpointConfig") from None
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


def variant_models(
    session: Session, call: Call, config: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The stored CreateModel documents of a config's variants, by model name. A variant
    without a ModelName holds none: it is capacity for inference components."""
    declared = [*config.get("ProductionVariants", []), *config.get("ShadowProductionVariants", [])]
    names = [v["ModelName"] for v in declared if v.get("ModelName")]
    found = store.get_many(session, store.MODEL, [str(n) for n in names])
    missing = [n for n in names if n not in found]
    if missing:
        raise validation(f'Could not find model "{call.arn("model", str(missing[0]))}".')
    return {n: d.body for n, d in found.items()}


def find_config(session: Session, call: Call, name: str) -> store.Document:
    found = store.get(session, store.ENDPOINT_CONFIG, name)
    if found is None:
        raise validation(
            f'Could not find endpoint configuration "{call.arn("endpoint-config", name)}".'
        )
    return found


def describe_endpoint_config(session: Session, call: Call) -> dict[str, Any]:
    fields.require(call.body, "EndpointConfigName")
    found = find_config(session, call, call.body["EndpointConfigName"])
    body = {k: v for k, v in found.body.items() if k != "Tags"}
    return {
        **body,
        "EndpointConfigArn": call.arn("endpoint-config", found.name),
        "CreationTime": mapping.epoch(found.created_at),
    }


def delete_endpoint_config(session: Session, call: Call) -> dict[str, Any]:
    fields.require(call.body, "EndpointConfigName")
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

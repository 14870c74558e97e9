"""SageMaker inference components over native ones (docs/components.md).

`CreateInferenceComponent` adds a native component to the endpoint, named as
the SageMaker component (so the runtime's `InferenceComponentName` header is
`X-Target-Component` unchanged): `Specification.ModelName` → the model and the
version CreateModel registered, `ComputeResourceRequirements` → `compute`
(mapping.component_compute), `RuntimeConfig.CopyCount` → `copies.min` =
`copies.max` (SageMaker's copy count is fixed until a scaling policy moves it).
SageMaker names components account-wide while Sluiceway names them per
endpoint: the SageMaker document (store.py) remembers each one's endpoint and
variant; the native row holds the state, so a component drained away (or whose
endpoint was deleted) is gone here too.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.sagemaker import fields, mapping, store
from api.sagemaker.call import Call, spec_error
from api.sagemaker.errors import AwsError, unsupported, validation
from api.sagemaker.models import find_model
from api.schemas import ComponentCreate, ComponentPatch, ComponentPublic
from api.services import components as component_service
from core.errors import Conflict, NotFound


def create_inference_component(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    fields.require(
        request, "InferenceComponentName", "EndpointName", "Specification", "RuntimeConfig"
    )
    fields.check_fields("CreateInferenceComponent", request)
    name, endpoint = request["InferenceComponentName"], request["EndpointName"]
    spec_in = request["Specification"]
    if not spec_in.get("ModelName"):
        raise validation(
            "Specification.ModelName is required: Sluiceway's components serve a model "
            "made with CreateModel (Specification.Container is not supported)"
        )
    fields.require(request["RuntimeConfig"], "CopyCount")
    model = find_model(session, call, spec_in["ModelName"]).body
    mapping.single_model(model, "an inference component")
    endpoint_doc = store.get(session, store.ENDPOINT, endpoint)
    variant = mapping.component_variant(
        request.get("VariantName"), endpoint_doc.body.get("Config") if endpoint_doc else None
    )
    existing = store.get(session, store.INFERENCE_COMPONENT, name)
    if existing is not None and _native(session, existing) is not None:
        raise _exists(call, name)
    try:
        spec = ComponentCreate.model_validate(
            {
                "name": name,
                "model": model["ModelName"],
                "model_version": model["NativeVersion"],
                "compute": mapping.component_compute(
                    spec_in.get("ComputeResourceRequirements") or {}
                ),
                "copies": mapping.component_copies(request["RuntimeConfig"]["CopyCount"]),
            }
        )
    except ValidationError as exc:
        raise spec_error(exc, "CreateInferenceComponent") from None
    try:
        component_service.create_component(session, endpoint, spec)
    except NotFound:
        raise validation(f'Could not find endpoint "{call.arn("endpoint", endpoint)}".') from None
    except Conflict:
        raise _exists(call, name) from None
    store.put(session, store.INFERENCE_COMPONENT, name, {**request, "VariantName": variant})
    call.routes_changed.add(endpoint)
    return {"InferenceComponentArn": call.arn("inference-component", name)}


def _exists(call: Call, name: str) -> AwsError:
    return validation(
        "Cannot create already existing inference component "
        f'"{call.arn("inference-component", name)}".'
    )


def _missing(call: Call, name: str) -> AwsError:
    return validation(
        f'Could not find inference component "{call.arn("inference-component", name)}".'
    )


def _native(session: Session, document: store.Document) -> ComponentPublic | None:
    """The native component a SageMaker document names; None once it is gone."""
    try:
        return component_service.get_component(
            session, document.body["EndpointName"], document.name
        )
    except NotFound:
        return None


def _find(session: Session, call: Call, name: str) -> tuple[store.Document, ComponentPublic]:
    """The SageMaker document and the native component, or AWS's "Could not find"."""
    document = store.get(session, store.INFERENCE_COMPONENT, name)
    native = _native(session, document) if document is not None else None
    if document is None or native is None:
        if document is not None:  # drained away, or its endpoint was deleted
            store.remove(session, store.INFERENCE_COMPONENT, name)
        raise _missing(call, name)
    return document, native


def describe_inference_component(session: Session, call: Call) -> dict[str, Any]:
    fields.require(call.body, "InferenceComponentName")
    document, native = _find(session, call, call.body["InferenceComponentName"])
    specification = document.body.get("Specification") or {}
    given = specification.get("ComputeResourceRequirements") or {}
    described: dict[str, Any] = {
        "ModelName": specification.get("ModelName"),
        "ComputeResourceRequirements": mapping.compute_requirements(
            native.compute.model_dump(), given
        ),
    }
    for kept in ("StartupParameters", "DataCacheConfig"):
        if kept in specification:
            described[kept] = specification[kept]
    return {
        "InferenceComponentName": native.name,
        "InferenceComponentArn": call.arn("inference-component", native.name),
        "EndpointName": native.endpoint,
        "EndpointArn": call.arn("endpoint", native.endpoint),
        "VariantName": document.body["VariantName"],
        "Specification": described,
        "RuntimeConfig": {
            "DesiredCopyCount": native.copies.desired,
            "CurrentCopyCount": native.copies.current,
        },
        "CreationTime": mapping.epoch(native.created_at),
        "LastModifiedTime": mapping.epoch(native.updated_at),
        "InferenceComponentStatus": mapping.COMPONENT_STATUS.get(native.status, "InService"),
    }


def update_inference_component(session: Session, call: Call) -> dict[str, Any]:
    """`ComputeResourceRequirements` → `compute` (running copies are replaced by copies
    reserving the new figures), `RuntimeConfig.CopyCount` → `copies`; the model stays."""
    request = call.body
    fields.require(request, "InferenceComponentName")
    if "DeploymentConfig" in request:
        raise unsupported(
            [
                "DeploymentConfig (rolling updates of a component: a compute change "
                "replaces its copies at the scheduler's next tick)"
            ],
            "UpdateInferenceComponent",
        )
    fields.check_fields("UpdateInferenceComponent", request)
    name = request["InferenceComponentName"]
    document, native = _find(session, call, name)
    specification = request.get("Specification") or {}
    kept = document.body.get("Specification") or {}
    model = specification.get("ModelName")
    if model is not None and model != kept.get("ModelName"):
        raise unsupported(
            [
                f"Specification.ModelName {model!r} (a component keeps its model "
                f"{kept.get('ModelName')!r}: create a new component for another)"
            ],
            "UpdateInferenceComponent",
        )
    patch: dict[str, Any] = {}
    if "ComputeResourceRequirements" in specification:
        patch["compute"] = mapping.component_compute(specification["ComputeResourceRequirements"])
    if "RuntimeConfig" in request:
        fields.require(request["RuntimeConfig"], "CopyCount")
        patch["copies"] = mapping.component_copies(request["RuntimeConfig"]["CopyCount"])
    _patch(session, call, native, patch, "UpdateInferenceComponent")
    merged = {**kept, **specification}
    body = {**document.body, "Specification": merged}
    if "RuntimeConfig" in request:
        body["RuntimeConfig"] = request["RuntimeConfig"]
    store.put(session, store.INFERENCE_COMPONENT, name, body)
    return {"InferenceComponentArn": call.arn("inference-component", name)}


def update_inference_component_runtime_config(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    fields.require(request, "InferenceComponentName", "DesiredRuntimeConfig")
    fields.check_fields("UpdateInferenceComponentRuntimeConfig", request)
    fields.require(request["DesiredRuntimeConfig"], "CopyCount")
    name = request["InferenceComponentName"]
    document, native = _find(session, call, name)
    copies = mapping.component_copies(request["DesiredRuntimeConfig"]["CopyCount"])
    _patch(session, call, native, {"copies": copies}, "UpdateInferenceComponentRuntimeConfig")
    body = {**document.body, "RuntimeConfig": {"CopyCount": copies["max"]}}
    store.put(session, store.INFERENCE_COMPONENT, name, body)
    return {"InferenceComponentArn": call.arn("inference-component", name)}


def _patch(
    session: Session, call: Call, native: ComponentPublic, patch: dict[str, Any], where: str
) -> None:
    if not patch:
        return
    try:
        validated = ComponentPatch.model_validate(patch)
    except ValidationError as exc:
        raise spec_error(exc, where) from None
    component_service.update_component(session, native.endpoint, native.name, validated)
    call.routes_changed.add(native.endpoint)


def delete_inference_component(session: Session, call: Call) -> dict[str, Any]:
    """The native delete: `Deleting` while what is queued drains, then gone."""
    fields.require(call.body, "InferenceComponentName")
    _, native = _find(session, call, call.body["InferenceComponentName"])
    component_service.delete_component(session, native.endpoint, native.name)
    call.routes_changed.add(native.endpoint)
    return {}


def list_inference_components(session: Session, call: Call) -> dict[str, Any]:
    """The components made through this API (native-only ones are not SageMaker's)."""
    request = call.body
    documents = store.all_of(session, store.INFERENCE_COMPONENT)
    natives: dict[tuple[str, str], ComponentPublic] = {}
    for endpoint in sorted({d.body["EndpointName"] for d in documents}):
        try:
            for component in component_service.list_components(session, endpoint):
                natives[(endpoint, component.name)] = component
        except NotFound:
            continue
    items = []
    for document in documents:
        native = natives.get((document.body["EndpointName"], document.name))
        if native is None:
            continue
        items.append(
            {
                "InferenceComponentName": native.name,
                "InferenceComponentArn": call.arn("inference-component", native.name),
                "EndpointName": native.endpoint,
                "EndpointArn": call.arn("endpoint", native.endpoint),
                "VariantName": document.body["VariantName"],
                "InferenceComponentStatus": mapping.COMPONENT_STATUS.get(
                    native.status, "InService"
                ),
                "CreationTime": mapping.epoch(native.created_at),
                "LastModifiedTime": mapping.epoch(native.updated_at),
            }
        )
    equals = (("EndpointNameEquals", "EndpointName"), ("VariantNameEquals", "VariantName"))
    for key, field in equals:
        if request.get(key):
            items = [i for i in items if i[field] == request[key]]
    if request.get("LastModifiedTimeBefore") is not None:
        items = [i for i in items if i["LastModifiedTime"] < request["LastModifiedTimeBefore"]]
    if request.get("LastModifiedTimeAfter") is not None:
        items = [i for i in items if i["LastModifiedTime"] > request["LastModifiedTimeAfter"]]
    chunk, token = mapping.page(
        items,
        request,
        name_key="InferenceComponentName",
        status_key="InferenceComponentStatus",
    )
    return {"InferenceComponents": chunk, **({"NextToken": token} if token else {})}

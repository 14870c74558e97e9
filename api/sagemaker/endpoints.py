"""SageMaker endpoints over native endpoints: create from a stored config, describe with
per-variant weights and instance counts, re-weight and re-size, delete, list."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.sagemaker import fields, mapping, store
from api.sagemaker.call import Call, spec_error
from api.sagemaker.errors import AwsError, unsupported, validation
from api.sagemaker.models import find_config, variant_models
from api.schemas import EndpointCreate, EndpointUpdate, VariantPatch, WeightsPatch
from api.services import deployments as deployment_service
from api.services import endpoints as endpoint_service
from core.errors import Conflict, NotFound

# --- endpoints --------------------------------------------------------------------------


def create_endpoint(session: Session, call: Call) -> dict[str, Any]:
    request = call.body
    fields.require(request, "EndpointName", "EndpointConfigName")
    if "DeploymentConfig" in request:
        raise unsupported(
            ["DeploymentConfig (give it to each UpdateEndpoint: Sluiceway keeps none)"],
            "CreateEndpoint",
        )
    fields.check_fields("CreateEndpoint", request)
    name = request["EndpointName"]
    config = find_config(session, call, request["EndpointConfigName"])
    models = variant_models(session, call, config.body)
    try:
        spec = EndpointCreate.model_validate(mapping.endpoint_spec(name, config.body, models))
    except ValidationError as exc:
        raise spec_error(exc, "CreateEndpoint") from None
    try:
        endpoint_service.create_endpoint(session, spec)
    except Conflict:
        raise validation(
            f'Cannot create already existing endpoint "{call.arn("endpoint", name)}".'
        ) from None
    images = {
        v["VariantName"]: mapping.model_images(models[v["ModelName"]])
        for v in config.body.get("ProductionVariants", [])
        if v.get("ModelName")
    }
    store.put(session, store.ENDPOINT, name, {**request, "Config": config.body, "Images": images})
    return {"EndpointArn": call.arn("endpoint", name)}


def update_endpoint(session: Session, call: Call) -> dict[str, Any]:
    """The native `PUT /v1/endpoints/{name}` with the new config's spec: in place when
    only weights, workers or capture change, else a blue/green deployment shaped by
    DeploymentConfig (mapping.deployment_spec; all at once without one). DescribeEndpoint
    says `Updating` until it has succeeded or rolled back."""
    request = call.body
    fields.require(request, "EndpointName", "EndpointConfigName")
    fields.check_fields("UpdateEndpoint", request)
    name = request["EndpointName"]
    config = find_config(session, call, request["EndpointConfigName"])
    models = variant_models(session, call, config.body)
    spec = mapping.endpoint_spec(name, config.body, models)
    deployment = mapping.deployment_spec(request.get("DeploymentConfig"))
    if deployment is not None:
        spec["deployment"] = deployment
    try:
        update = EndpointUpdate.model_validate(spec)
    except ValidationError as exc:
        raise spec_error(exc, "UpdateEndpoint") from None
    try:
        deployment_service.update_endpoint(session, name, update)
    except NotFound:
        raise _missing_endpoint(call, name) from None
    except Conflict as exc:
        raise validation(
            f'Cannot update in-progress endpoint "{call.arn("endpoint", name)}": {exc.detail}'
        ) from None
    document = store.get(session, store.ENDPOINT, name)
    images = {
        v["VariantName"]: mapping.model_images(models[v["ModelName"]])
        for v in config.body.get("ProductionVariants", [])
        if v.get("ModelName")
    }
    kept = document.body if document else {"EndpointName": name}
    store.put(
        session,
        store.ENDPOINT,
        name,
        {
            **kept,
            "EndpointConfigName": request["EndpointConfigName"],
            "Config": config.body,
            "Images": images,
        },
    )
    return {"EndpointArn": call.arn("endpoint", name)}


def _missing_endpoint(call: Call, name: str) -> AwsError:
    return validation(f'Could not find endpoint "{call.arn("endpoint", name)}".')


def describe_endpoint(session: Session, call: Call) -> dict[str, Any]:
    fields.require(call.body, "EndpointName")
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
        if variant.role != "serving":
            continue  # a deployment's new variants, or old ones draining
        sagemaker_variant = declared.get(variant.name, {})
        per = mapping.placement(sagemaker_variant.get("InstanceType")).workers_per_instance
        images = (document.body.get("Images") or {}).get(variant.name) if document else None
        # One image per container; an endpoint stored before pipelines kept one string.
        shown = [images] if isinstance(images, str) else [i for i in images or () if i]
        variants.append(
            {
                "VariantName": variant.name,
                "DeployedImages": [
                    {"SpecifiedImage": image}
                    for image in shown or [f"sluiceway/{variant.framework}:{variant.model}"]
                ],
                "CurrentWeight": variant.weight,
                "DesiredWeight": variant.weight,
                "CurrentInstanceCount": mapping.instances(variant.workers.current, per),
                "DesiredInstanceCount": mapping.instances(variant.workers.desired, per),
            }
        )
    # Variants without a model (capacity for inference components) have no native
    # variant: their weight and declared instance count are echoed, nothing is live.
    variants += [
        {
            "VariantName": declared_name,
            "CurrentWeight": float(v.get("InitialVariantWeight", 1.0)),
            "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
            "DesiredInstanceCount": int(v.get("InitialInstanceCount", 1)),
        }
        for declared_name, v in declared.items()
        if not v.get("ModelName")
    ]
    answer: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": call.arn("endpoint", name),
        "EndpointConfigName": document.body["EndpointConfigName"] if document else name,
        "ProductionVariants": variants,
        "EndpointStatus": mapping.ENDPOINT_STATUS.get(endpoint.status, "InService"),
        "CreationTime": mapping.epoch(endpoint.created_at),
        "LastModifiedTime": mapping.epoch(endpoint.updated_at),
    }
    if endpoint.failure_reason:  # boto3's endpoint_in_service waiter stops on Failed
        answer["FailureReason"] = endpoint.failure_reason
    shadows = {v["VariantName"]: v for v in config.get("ShadowProductionVariants", [])}
    if endpoint.shadow_variants:
        answer["ShadowProductionVariants"] = [
            {
                "VariantName": shadow.name,
                "CurrentWeight": float(shadows.get(shadow.name, {}).get("InitialVariantWeight", 1)),
                "DesiredWeight": float(shadows.get(shadow.name, {}).get("InitialVariantWeight", 1)),
                "CurrentInstanceCount": mapping.instances(
                    shadow.workers.current,
                    mapping.placement(
                        shadows.get(shadow.name, {}).get("InstanceType")
                    ).workers_per_instance,
                ),
            }
            for shadow in endpoint.shadow_variants
        ]
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
    """DesiredWeight → the native weight; DesiredInstanceCount → the variant's worker floor
    (count times workers per instance; `max_workers` rises to it when below). Every variant
    is checked before anything changes, as on AWS."""
    request = call.body
    fields.require(request, "EndpointName", "DesiredWeightsAndCapacities")
    fields.check_fields("UpdateEndpointWeightsAndCapacities", request)
    name = request["EndpointName"]
    wanted = request["DesiredWeightsAndCapacities"]
    empty = [w.get("VariantName") for w in wanted if set(w) == {"VariantName"}]
    if empty:
        raise validation(f"give DesiredWeight or DesiredInstanceCount for variant(s) {empty}")
    try:
        endpoint = endpoint_service.load_endpoint(session, name)
    except NotFound:
        raise _missing_endpoint(call, name) from None
    current = {v.name: v.max_workers for v in endpoint.variants}
    unknown = sorted({w["VariantName"] for w in wanted} - set(current))
    if unknown:
        raise validation(
            f"The variant(s) {unknown} is/are not present in endpoint {name!r} "
            f"(it has {sorted(current)})"
        )
    document = store.get(session, store.ENDPOINT, name)
    config = document.body.get("Config", {}) if document else {}
    declared = {v["VariantName"]: v for v in config.get("ProductionVariants", [])}
    try:
        weights = (
            WeightsPatch.model_validate(
                {
                    "variants": [
                        {"name": w["VariantName"], "weight": float(w["DesiredWeight"])}
                        for w in wanted
                        if "DesiredWeight" in w
                    ]
                }
            )
            if any("DesiredWeight" in w for w in wanted)
            else None
        )
        sizes = {}
        for w in wanted:
            if "DesiredInstanceCount" in w:
                per = mapping.placement(
                    declared.get(w["VariantName"], {}).get("InstanceType")
                ).workers_per_instance
                workers = int(w["DesiredInstanceCount"]) * per
                high = max(workers, current[w["VariantName"]])
                sizes[w["VariantName"]] = VariantPatch.model_validate(
                    {"min_workers": workers, "max_workers": high}
                )
    except ValidationError as exc:
        raise spec_error(exc, "UpdateEndpointWeightsAndCapacities") from None
    if weights is not None:
        endpoint_service.set_weights(session, name, weights)
    for variant, patch in sizes.items():
        endpoint_service.update_variant(session, name, variant, patch)
    return {"EndpointArn": call.arn("endpoint", name)}


def delete_endpoint(session: Session, call: Call) -> dict[str, Any]:
    fields.require(call.body, "EndpointName")
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

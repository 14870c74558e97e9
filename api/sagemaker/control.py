"""The control plane (`boto3.client("sagemaker")`): one function per operation.

Each takes the request's JSON body and answers the operation's output, through
the native services: CreateModel registers a model version (registry),
CreateEndpoint creates a native endpoint from the stored endpoint config,
UpdateEndpointWeightsAndCapacities re-weights and re-sizes its variants,
CreateTransformJob submits a native transform job, CreateInferenceComponent adds
a native component to the endpoint. Missing resources answer as
AWS does (`ValidationException` "Could not find ..." for models, configs and
endpoints, which boto3's `endpoint_deleted` waiter waits for; `ResourceNotFound`
for transform jobs). Blocking (SQL, S3): the caller runs it in a worker thread.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.sagemaker import components, endpoints, models, transforms
from api.sagemaker.call import Call, Operation
from api.sagemaker.errors import AwsError

OPERATIONS: dict[str, Operation] = {
    "CreateModel": models.create_model,
    "DescribeModel": models.describe_model,
    "DeleteModel": models.delete_model,
    "ListModels": models.list_models,
    "CreateEndpointConfig": models.create_endpoint_config,
    "DescribeEndpointConfig": models.describe_endpoint_config,
    "DeleteEndpointConfig": models.delete_endpoint_config,
    "ListEndpointConfigs": models.list_endpoint_configs,
    "CreateEndpoint": endpoints.create_endpoint,
    "DescribeEndpoint": endpoints.describe_endpoint,
    "UpdateEndpointWeightsAndCapacities": endpoints.update_endpoint_weights_and_capacities,
    "UpdateEndpoint": endpoints.update_endpoint,
    "DeleteEndpoint": endpoints.delete_endpoint,
    "ListEndpoints": endpoints.list_endpoints,
    "CreateInferenceComponent": components.create_inference_component,
    "DescribeInferenceComponent": components.describe_inference_component,
    "UpdateInferenceComponent": components.update_inference_component,
    "UpdateInferenceComponentRuntimeConfig": components.update_inference_component_runtime_config,
    "DeleteInferenceComponent": components.delete_inference_component,
    "ListInferenceComponents": components.list_inference_components,
    "CreateTransformJob": transforms.create_transform_job,
    "DescribeTransformJob": transforms.describe_transform_job,
    "StopTransformJob": transforms.stop_transform_job,
    "ListTransformJobs": transforms.list_transform_jobs,
}

# Operations after which this API process re-reads the endpoint's routes at once (as the
# native routes do; other API processes within SLUICEWAY_ENDPOINT_CACHE_S). The component
# operations name the endpoint they changed in `Call.routes_changed`.
CHANGES_ROUTES = frozenset(
    {"CreateEndpoint", "DeleteEndpoint", "UpdateEndpoint", "UpdateEndpointWeightsAndCapacities"}
)

# Operations of the seeds' code that later issues bring (deployments, components, ...).
NOT_YET_OPERATIONS: dict[str, str] = {}


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

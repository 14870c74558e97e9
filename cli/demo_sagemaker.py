"""The demo's SageMaker step: the demo endpoint driven by boto3, as SageMaker code would.

Only `endpoint_url` changes from code written for SageMaker hosting: the
`sagemaker` client describes the endpoint, the `sagemaker-runtime` client
invokes it, and the answer is compared with the model called directly.
With auth off (the demo's stack) any credentials sign the requests.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cli.demo_models import DemoFailure, check_predictions, rounded
from cli.demo_tour import VARIANTS

if TYPE_CHECKING:
    from cli.demo_tour import Tour

REGION = "us-east-1"
ANY_KEYS = {"aws_access_key_id": "demo", "aws_secret_access_key": "demo"}


def boto3_client(service: str, base_url: str) -> Any:
    """A boto3 client of `service` ("sagemaker", "sagemaker-runtime") aimed at `base_url`."""
    import boto3

    return boto3.client(service, endpoint_url=base_url, region_name=REGION, **ANY_KEYS)


def step_sagemaker(tour: Tour) -> str:
    """describe_endpoint, then invoke_endpoint, with the real boto3 clients."""
    base_url = str(tour.api.base_url)
    described = boto3_client("sagemaker", base_url).describe_endpoint(EndpointName=tour.endpoint)
    status = described.get("EndpointStatus")
    names = [v.get("VariantName") for v in described.get("ProductionVariants", [])]
    tour.say(f"sm.describe_endpoint({tour.endpoint!r}) → {status}, variants {names}")
    if status != "InService" or sorted(names) != sorted(VARIANTS):
        raise DemoFailure(f"describe_endpoint says {status} with variants {names}")

    rows = tour.rows(2)
    answer = boto3_client("sagemaker-runtime", base_url).invoke_endpoint(
        EndpointName=tour.endpoint,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": rows}).encode(),
    )
    variant = answer.get("InvokedProductionVariant", "")
    predictions = json.loads(answer["Body"].read())["predictions"]
    if variant not in VARIANTS:
        raise DemoFailure(f"InvokedProductionVariant is {variant!r}")
    check_predictions(predictions, tour.built().predict(VARIANTS[variant], rows), what="boto3")
    tour.say(f"runtime.invoke_endpoint → variant {variant}: {rounded(predictions)}  matches")
    return f"describe_endpoint {status}; invoke_endpoint served by {variant}, matches"

"""Sluiceway's Python SDK: `Client` and `AsyncClient` (docs/python.md).

from sluiceway import Client

client = Client("http://127.0.0.1:8000")
client.endpoint("churn").predict([[0.1, 0.2, 0.3, 0.4]])
"""

from sluiceway.aio import AsyncClient, AsyncJob, AsyncTransformJob
from sluiceway.client import Client, EndpointHandle, Job, TransformJob
from sluiceway.errors import (
    ApiError,
    ApiUnreachable,
    Conflict,
    EndpointFailed,
    InvalidInput,
    JobFailed,
    JobWaitTimeout,
    NotFound,
    NotSupported,
    SluicewayError,
)
from sluiceway.types import (
    Endpoint,
    JobInfo,
    LoadedModel,
    Model,
    ModelVersion,
    TransformJobInfo,
)

__all__ = [
    "ApiError",
    "ApiUnreachable",
    "AsyncClient",
    "AsyncJob",
    "AsyncTransformJob",
    "Client",
    "Conflict",
    "Endpoint",
    "EndpointFailed",
    "EndpointHandle",
    "InvalidInput",
    "Job",
    "JobFailed",
    "JobInfo",
    "JobWaitTimeout",
    "LoadedModel",
    "Model",
    "ModelVersion",
    "NotFound",
    "NotSupported",
    "SluicewayError",
    "TransformJob",
    "TransformJobInfo",
]

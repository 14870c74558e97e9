"""What each SageMaker operation takes, field by field (docs/sagemaker.md shows the same).

Every request is checked against `SUPPORTED` (fields that take effect) and
`NO_EFFECT` (accepted and stored, but they change nothing here: a VPC, a KMS key,
tags); any other field is a ValidationException naming it, never a silent ignore.
`NOT_YET` names the fields whose capability arrives later and says which; when
it lands, its paths move into `SUPPORTED` and mapping.py translates them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from api.sagemaker.errors import AwsError, unsupported

# --- which fields each operation takes ------------------------------------------------
# Paths name nested fields with dots and list items with `[]`. A path listed here is
# taken whole (a map such as Environment, or a list of tags) or, for a structure,
# walked into: its own fields must be listed too.

_CONTAINER = (
    "Image ModelDataUrl Environment Mode ContainerHostname ImageConfig "
    "ImageConfig.RepositoryAccessMode ImageConfig.RepositoryAuthConfig "
    "ModelDataSource ModelDataSource.S3DataSource ModelDataSource.S3DataSource.S3Uri "
    "ModelDataSource.S3DataSource.S3DataType ModelDataSource.S3DataSource.CompressionType"
)
_VARIANT = (
    "VariantName ModelName InitialInstanceCount InstanceType InitialVariantWeight "
    "ManagedInstanceScaling ManagedInstanceScaling.Status ManagedInstanceScaling.MinInstanceCount "
    "ManagedInstanceScaling.MaxInstanceCount VolumeSizeInGB ModelDataDownloadTimeoutInSeconds "
    "ContainerStartupHealthCheckTimeoutInSeconds EnableSSMAccess InferenceAmiVersion"
)


_COMPUTE = (
    "ComputeResourceRequirements ComputeResourceRequirements.NumberOfCpuCoresRequired "
    "ComputeResourceRequirements.MinMemoryRequiredInMb "
    "ComputeResourceRequirements.NumberOfAcceleratorDevicesRequired"
)
_COMPONENT_NO_EFFECT = (
    "Specification.ComputeResourceRequirements.MaxMemoryRequiredInMb "
    "Specification.StartupParameters Specification.DataCacheConfig"
)


def _paths(text: str, prefix: str = "") -> frozenset[str]:
    return frozenset(prefix + p for p in text.split())


SUPPORTED: dict[str, frozenset[str]] = {
    "CreateModel": _paths(
        "ModelName PrimaryContainer Containers InferenceExecutionConfig "
        "InferenceExecutionConfig.Mode"
    )
    | _paths(_CONTAINER, "PrimaryContainer.")
    | _paths(_CONTAINER, "Containers[]."),
    "CreateEndpointConfig": _paths(
        "EndpointConfigName ProductionVariants AsyncInferenceConfig "
        "AsyncInferenceConfig.ClientConfig "
        "AsyncInferenceConfig.ClientConfig.MaxConcurrentInvocationsPerInstance "
        "AsyncInferenceConfig.OutputConfig AsyncInferenceConfig.OutputConfig.S3OutputPath "
        "AsyncInferenceConfig.OutputConfig.S3FailurePath "
        "AsyncInferenceConfig.OutputConfig.NotificationConfig "
        "AsyncInferenceConfig.OutputConfig.NotificationConfig.SuccessTopic "
        "AsyncInferenceConfig.OutputConfig.NotificationConfig.ErrorTopic "
        "DataCaptureConfig DataCaptureConfig.EnableCapture "
        "DataCaptureConfig.InitialSamplingPercentage DataCaptureConfig.DestinationS3Uri "
        "DataCaptureConfig.CaptureOptions DataCaptureConfig.CaptureOptions[].CaptureMode "
        "ShadowProductionVariants"
    )
    | _paths(_VARIANT, "ProductionVariants[].")
    | _paths(_VARIANT, "ShadowProductionVariants[]."),
    "UpdateEndpoint": _paths(
        "EndpointName EndpointConfigName DeploymentConfig "
        "DeploymentConfig.BlueGreenUpdatePolicy "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.Type "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.WaitIntervalInSeconds "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize.Type "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize.Value "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.LinearStepSize "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.LinearStepSize.Type "
        "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.LinearStepSize.Value "
        "DeploymentConfig.BlueGreenUpdatePolicy.TerminationWaitInSeconds "
        "DeploymentConfig.AutoRollbackConfiguration "
        "DeploymentConfig.AutoRollbackConfiguration.Alarms "
        "DeploymentConfig.AutoRollbackConfiguration.Alarms[].AlarmName"
    ),
    "CreateEndpoint": _paths("EndpointName EndpointConfigName"),
    "UpdateEndpointWeightsAndCapacities": _paths(
        "EndpointName DesiredWeightsAndCapacities DesiredWeightsAndCapacities[].VariantName "
        "DesiredWeightsAndCapacities[].DesiredWeight "
        "DesiredWeightsAndCapacities[].DesiredInstanceCount"
    ),
    "CreateInferenceComponent": _paths(
        "InferenceComponentName EndpointName VariantName Specification Specification.ModelName "
        "RuntimeConfig RuntimeConfig.CopyCount"
    )
    | _paths(_COMPUTE, "Specification."),
    "UpdateInferenceComponent": _paths(
        "InferenceComponentName Specification Specification.ModelName "
        "RuntimeConfig RuntimeConfig.CopyCount"
    )
    | _paths(_COMPUTE, "Specification."),
    "UpdateInferenceComponentRuntimeConfig": _paths(
        "InferenceComponentName DesiredRuntimeConfig DesiredRuntimeConfig.CopyCount"
    ),
    "CreateTransformJob": _paths(
        "TransformJobName ModelName MaxPayloadInMB BatchStrategy TransformInput "
        "TransformInput.DataSource TransformInput.DataSource.S3DataSource "
        "TransformInput.DataSource.S3DataSource.S3DataType "
        "TransformInput.DataSource.S3DataSource.S3Uri TransformInput.ContentType "
        "TransformInput.CompressionType TransformInput.SplitType TransformOutput "
        "TransformOutput.S3OutputPath TransformOutput.Accept TransformOutput.AssembleWith "
        "TransformResources TransformResources.InstanceType DataProcessing "
        "DataProcessing.JoinSource DataProcessing.InputFilter DataProcessing.OutputFilter"
    ),
}

# Accepted and kept (Describe shows them), with no effect on Sluiceway: say so in the docs.
NO_EFFECT: dict[str, frozenset[str]] = {
    "CreateModel": _paths(
        "ExecutionRoleArn Tags VpcConfig EnableNetworkIsolation "
        "PrimaryContainer.ContainerHostname PrimaryContainer.ImageConfig"
    ),
    "CreateEndpointConfig": _paths(
        "Tags KmsKeyId ExecutionRoleArn VpcConfig EnableNetworkIsolation "
        "AsyncInferenceConfig.OutputConfig.KmsKeyId DataCaptureConfig.KmsKeyId "
        "DataCaptureConfig.CaptureContentTypeHeader ProductionVariants[].RoutingConfig"
    ),
    "CreateEndpoint": _paths("Tags"),
    "UpdateEndpointWeightsAndCapacities": frozenset(),
    "UpdateEndpoint": _paths(
        "DeploymentConfig.BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds"
    ),
    "CreateInferenceComponent": _paths("Tags " + _COMPONENT_NO_EFFECT),
    "UpdateInferenceComponent": _paths(_COMPONENT_NO_EFFECT),
    "UpdateInferenceComponentRuntimeConfig": frozenset(),
    "CreateTransformJob": _paths(
        "Tags ExperimentConfig MaxConcurrentTransforms TransformOutput.KmsKeyId "
        "TransformResources.InstanceCount TransformResources.VolumeKmsKeyId"
    ),
}

# What later issues bring; until then a ValidationException names the field and says so.
NOT_YET: dict[str, str] = {}


def check_fields(operation: str, request: Mapping[str, Any]) -> None:
    """Raise a ValidationException naming every field of `request` Sluiceway does not take."""
    known = SUPPORTED[operation] | NO_EFFECT[operation]
    extra = sorted(set(_unknown(request, known, "")))
    if extra:
        soon = [f"{path} ({NOT_YET[path]}: not yet)" for path in extra if path in NOT_YET]
        raise unsupported(soon + [p for p in extra if p not in NOT_YET], operation)


def _unknown(value: Any, known: frozenset[str], prefix: str) -> Iterable[str]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            path = f"{prefix}{key}"
            if path not in known:
                yield path
            elif isinstance(child, (Mapping, list)) and _has_children(known, path):
                yield from _unknown(child, known, path + ".")
    elif isinstance(value, list):
        for item in value:
            yield from _unknown(item, known, prefix[:-1] + "[].")


def _has_children(known: frozenset[str], path: str) -> bool:
    return any(p.startswith(path + ".") or p.startswith(path + "[].") for p in known)


def require(request: Mapping[str, Any], *fields: str) -> None:
    """A ValidationException naming the required fields `request` lacks."""
    missing = [f for f in fields if request.get(f) in (None, "", [])]
    if missing:
        raise AwsError(
            "ValidationException",
            f"{len(missing)} validation error(s) detected: "
            + "; ".join(
                f"Value null at '{f}' failed to satisfy constraint: Member must not be null"
                for f in missing
            ),
        )

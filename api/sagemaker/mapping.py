"""SageMaker fields → Sluiceway's native specs, and back: pure functions, no I/O.

Which fields each operation takes is fields.py; this module turns the taken ones
into native specs. A capability that lands later (deployments, shadow variants,
multi-model, serial pipelines, inference components) is one more entry in
fields.SUPPORTED plus its translation here (e.g. `Mode: MultiModel` →
the variant's `multi_model` block in `variant_spec`; `Containers` of 2 to 15 →
a native pipeline model in `pipeline_containers`).

Worked example: a variant `{"VariantName": "AllTraffic", "InstanceType":
"ml.g5.12xlarge", "InitialInstanceCount": 2, "InitialVariantWeight": 1}` becomes
the native variant `{"name": "AllTraffic", "accelerator": "gpu", "min_workers": 8,
"max_workers": 8, "weight": 1.0}`: an ml.g5.12xlarge has 4 GPUs, one worker each.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.sagemaker.errors import unsupported, validation
from core.config import NAME_MAX_LENGTH, NAME_PATTERN

ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"

# --- names and ARNs -------------------------------------------------------------------


def arn(kind: str, name: str, region: str = DEFAULT_REGION) -> str:
    """`arn:aws:sagemaker:us-east-1:000000000000:endpoint/churn` (names lowercased, as AWS does)."""
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{name.lower()}"


_SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]*:[0-9]*:(?P<topic>[A-Za-z0-9_-]{1,256})$")


def topic_of(value: str | None, field: str) -> str | None:
    """The Sluiceway topic an SNS topic ARN names: `arn:aws:sns:us-east-1:1234:churn-ok` →
    `churn-ok` (a bare topic name is taken as it is)."""
    if value is None:
        return None
    match = _SNS_ARN.match(value)
    if match:
        return match["topic"]
    if value.startswith("arn:"):
        raise validation(
            f"{field} {value!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
        )
    return value


def epoch(value: dt.datetime | None) -> float | None:
    """AWS JSON's timestamp: seconds since the epoch."""
    return value.timestamp() if value is not None else None


# --- containers: Image → framework ---------------------------------------------------

FRAMEWORK_ENV = "SLUICEWAY_FRAMEWORK"
FRAMEWORKS = ("xgboost", "torch", "python")


def framework_of(container: Mapping[str, Any]) -> str:
    """Which native framework serves a container (first rule that applies):

    1. `Environment["SLUICEWAY_FRAMEWORK"]` (`xgboost`, `torch` or `python`), said explicitly;
    2. `Environment["SAGEMAKER_PROGRAM"]` set → `python` (a handler bundle);
    3. the image name holds `xgboost` → `xgboost`; `pytorch` or `torch` → `torch`.
    Anything else is a ValidationException naming the image.
    """
    env = container.get("Environment") or {}
    explicit = env.get(FRAMEWORK_ENV)
    if explicit is not None:
        if explicit not in FRAMEWORKS:
            raise validation(
                f"Environment {FRAMEWORK_ENV}={explicit!r} is not one of {list(FRAMEWORKS)}"
            )
        return str(explicit)
    if env.get("SAGEMAKER_PROGRAM"):
        return "python"
    image = str(container.get("Image") or "").lower()
    if "xgboost" in image:
        return "xgboost"
    if "pytorch" in image or "torch" in image:
        return "torch"
    raise validation(
        f"cannot tell which framework serves image {container.get('Image')!r}: name an "
        f"xgboost or pytorch image, or set Environment {FRAMEWORK_ENV} to one of {list(FRAMEWORKS)}"
    )


def primary_container(request: Mapping[str, Any]) -> dict[str, Any]:
    """The one container of a CreateModel request (PrimaryContainer, or Containers of one)."""
    containers = request.get("Containers")
    if containers is not None and request.get("PrimaryContainer") is not None:
        raise validation("give PrimaryContainer or Containers, not both")
    if containers is not None:
        if len(containers) != 1:
            raise validation(
                f"Containers holds 1 to {MAX_CONTAINERS} containers, this one {len(containers)}"
            )
        container = containers[0]
    else:
        container = request.get("PrimaryContainer")
    if not container:
        raise validation("CreateModel needs PrimaryContainer (or Containers)")
    mode = container.get("Mode", "SingleModel")
    if mode not in ("SingleModel", "MultiModel"):
        raise validation(f"Mode {mode!r} is not SingleModel or MultiModel")
    container = dict(container)
    source = (container.get("ModelDataSource") or {}).get("S3DataSource")
    if source is not None:
        if container.get("ModelDataUrl"):
            raise validation("give ModelDataUrl or ModelDataSource, not both")
        kind, compression = source.get("S3DataType"), source.get("CompressionType")
        if kind != "S3Object" or compression != "None":
            raise unsupported(
                [f"ModelDataSource with S3DataType={kind}, CompressionType={compression}"],
                "CreateModel (give one uncompressed object: S3Object, None)",
            )
        container["ModelDataUrl"] = source.get("S3Uri")
    if not container.get("ModelDataUrl"):
        raise validation("the container needs a ModelDataUrl: Sluiceway serves a model artifact")
    if mode == "MultiModel" and source is not None:
        raise validation("Mode MultiModel takes ModelDataUrl, the S3 prefix of its models")
    return container


# --- inference pipelines: Containers → a native pipeline model ---------------------------

MAX_CONTAINERS = 15  # SageMaker's limit, the native pipeline's too (core/pipeline.py)
EXECUTION_MODES = ("Serial", "Direct")


@dataclass(frozen=True, slots=True)
class PipelineContainers:
    """A CreateModel of 2 to 15 containers: its InferenceExecutionConfig.Mode and each
    container (checked as a PrimaryContainer is) by its step name, in order."""

    mode: str
    containers: tuple[tuple[str, dict[str, Any]], ...]


def pipeline_containers(request: Mapping[str, Any]) -> PipelineContainers | None:
    """The inference pipeline a CreateModel request declares (None for one container).

    Each container becomes a step named by its `ContainerHostname` (`Container1`,
    `Container2`, ... when no container names one, as SageMaker does). `Mode` is
    `Serial` (the default: each container's output is the next one's input) or `Direct`
    (each call names its container with TargetContainerHostname, so every container
    needs a ContainerHostname). Raises a ValidationException for anything else: a mode
    of neither kind, more than 15 containers, hostnames given for some containers only
    or twice, a MultiModel container, InferenceExecutionConfig without a pipeline.
    """
    containers = request.get("Containers")
    execution = request.get("InferenceExecutionConfig")
    if containers is None or len(containers) < 2:
        if execution is not None:
            raise validation("InferenceExecutionConfig applies to Containers of 2 or more")
        return None
    if request.get("PrimaryContainer") is not None:
        raise validation("give PrimaryContainer or Containers, not both")
    if len(containers) > MAX_CONTAINERS:
        raise validation(
            f"an inference pipeline has 2 to {MAX_CONTAINERS} Containers, "
            f"this one has {len(containers)}"
        )
    mode = (execution or {}).get("Mode", "Serial")
    if mode not in EXECUTION_MODES:
        raise validation(f"InferenceExecutionConfig.Mode {mode!r} is not Serial or Direct")
    hostnames = [c.get("ContainerHostname") for c in containers]
    named = [h for h in hostnames if h]
    if not named:
        if mode == "Direct":
            raise validation(
                "Mode Direct calls a container by its ContainerHostname: give every container one"
            )
        hostnames = [f"Container{i}" for i in range(1, len(containers) + 1)]
    elif len(named) != len(containers):
        raise validation("give every container a ContainerHostname, or none of them")
    if len(set(hostnames)) != len(hostnames):
        raise validation(f"two containers share a ContainerHostname: {hostnames}")
    for hostname in hostnames:
        if not re.match(NAME_PATTERN, str(hostname)):
            raise validation(
                f"ContainerHostname {hostname!r} must be 1 to 63 letters, digits and hyphens "
                "(not first or last)"
            )
    checked = []
    for hostname, container in zip(hostnames, containers, strict=True):
        if container.get("Mode", "SingleModel") != "SingleModel":
            raise validation(
                f"container {hostname!r}: an inference pipeline's containers are SingleModel"
            )
        checked.append((str(hostname), primary_container({"PrimaryContainer": container})))
    return PipelineContainers(mode, tuple(checked))


def model_images(model: Mapping[str, Any]) -> list[str | None]:
    """The Image of each container of a stored CreateModel document, in order (one for a
    PrimaryContainer; DescribeEndpoint's DeployedImages)."""
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    return [container.get("Image") for container in containers]


def step_model_name(model: str, hostname: str) -> str:
    """The native model a pipeline container registers as: `churn` + `prep` → `churn-prep`;
    a ValidationException when that is longer than a name may be (63 characters)."""
    name = f"{model}-{hostname}"
    if len(name) > NAME_MAX_LENGTH:
        raise validation(
            f"container {hostname!r} of model {model!r} registers as model {name!r}, longer "
            "than 63 characters: shorten the ModelName or the ContainerHostname"
        )
    return name


def multi_model(container: Mapping[str, Any]) -> dict[str, str] | None:
    """The native `multi_model` block of a `Mode: MultiModel` container (None otherwise):
    its ModelDataUrl is the prefix every model lives under (a `/` is added when missing),
    and its framework (framework_of) must be xgboost or torch."""
    if container.get("Mode", "SingleModel") != "MultiModel":
        return None
    prefix = str(container["ModelDataUrl"])
    if not prefix.startswith("s3://") or len(prefix.removeprefix("s3://").split("/", 1)) < 2:
        raise validation(
            f"ModelDataUrl {prefix!r} of a MultiModel container must be an S3 prefix "
            "(s3://bucket/models/)"
        )
    framework = framework_of(container)
    if framework not in ("xgboost", "torch"):
        raise unsupported(
            [f"Mode=MultiModel with framework {framework}"],
            "CreateModel (multi-model variants serve xgboost or torch models)",
        )
    return {"prefix": prefix if prefix.endswith("/") else prefix + "/", "framework": framework}


def single_model(model: Mapping[str, Any], where: str) -> None:
    """A ValidationException when `model` (a stored CreateModel document) is multi-model:
    `where` (a transform job, an inference component) runs one model."""
    if model.get("MultiModel"):
        raise validation(
            f"model {model['ModelName']!r} is a MultiModel model: {where} runs a single model"
        )


# --- instance types → accelerator and workers -------------------------------------------

# GPUs of the instance sizes that have more than one; every other size of a GPU family has 1.
_GPUS = {
    "ml.g4dn.12xlarge": 4,
    "ml.g4dn.metal": 8,
    "ml.g5.12xlarge": 4,
    "ml.g5.24xlarge": 4,
    "ml.g5.48xlarge": 8,
    "ml.g6.12xlarge": 4,
    "ml.g6.24xlarge": 4,
    "ml.g6.48xlarge": 8,
    "ml.g6e.12xlarge": 4,
    "ml.g6e.24xlarge": 4,
    "ml.g6e.48xlarge": 8,
    "ml.p3.8xlarge": 4,
    "ml.p3.16xlarge": 8,
    "ml.p3dn.24xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p5.48xlarge": 8,
    "ml.p5e.48xlarge": 8,
}
_INSTANCE = re.compile(r"^ml\.(?P<family>[a-z0-9]+)\.(?P<size>[a-z0-9]+)$")
_GPU_FAMILY = re.compile(r"^(g\d+[a-z]*|p\d+[a-z]*)$")
_CPU_FAMILY = re.compile(r"^(t\d|m\d|c\d|r\d)[a-z]*$")


@dataclass(frozen=True, slots=True)
class Placement:
    """What one SageMaker instance is in Sluiceway: an accelerator and a worker count."""

    accelerator: str  # "cpu" or "gpu"
    workers_per_instance: int


def placement(instance_type: str | None) -> Placement:
    """`ml.m5.xlarge` → 1 cpu worker; `ml.g5.xlarge` → 1 gpu worker; `ml.g5.12xlarge` → 4.

    GPU families (g*, p*) run one worker per GPU; CPU families (t, m, c, r) one
    worker per instance (its threads use the cores). Inferentia/Trainium and
    unknown types are a ValidationException.
    """
    if instance_type is None:
        return Placement("cpu", 1)
    match = _INSTANCE.match(instance_type)
    if match and _GPU_FAMILY.match(match["family"]):
        return Placement("gpu", _GPUS.get(instance_type, 1))
    if match and _CPU_FAMILY.match(match["family"]):
        return Placement("cpu", 1)
    raise validation(
        f"InstanceType {instance_type!r} has no Sluiceway equivalent: use a CPU (ml.m5, "
        "ml.c5, ml.r5, ml.t2 ...) or NVIDIA GPU (ml.g4dn, ml.g5, ml.p3 ...) instance type"
    )


def instances(workers: int, per_instance: int) -> int:
    """Workers back in instances, rounded up: 5 workers at 4 per instance → 2 instances."""
    return math.ceil(workers / per_instance) if workers else 0


# --- endpoint configs → the native endpoint spec -----------------------------------------


def variant_spec(variant: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, Any]:
    """A native variant (api/schemas.py VariantCreate) from a ProductionVariant.

    `model` is the stored CreateModel document (with `NativeVersion`, or `MultiModel`:
    the variant's `multi_model` block, whose models X-Target-Model picks). Without
    ManagedInstanceScaling the worker count is fixed at InitialInstanceCount
    times the workers per instance; with it, the scaler moves between Min and Max.
    """
    where = placement(variant.get("InstanceType"))
    count = int(variant.get("InitialInstanceCount", 1))
    served: dict[str, Any] = (
        {"multi_model": model["MultiModel"]}
        if model.get("MultiModel")
        else {"model": model["ModelName"], "model_version": model["NativeVersion"]}
    )
    low = high = count
    scaling = variant.get("ManagedInstanceScaling") or {}
    if scaling.get("Status") == "ENABLED":
        low = int(scaling.get("MinInstanceCount", count))
        high = int(scaling.get("MaxInstanceCount", max(count, low)))
    return {
        "name": variant["VariantName"],
        **served,
        "weight": float(variant.get("InitialVariantWeight", 1.0)),
        "accelerator": where.accelerator,
        "min_workers": low * where.workers_per_instance,
        "max_workers": high * where.workers_per_instance,
    }


def async_spec(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The native endpoint's `async` block from an AsyncInferenceConfig (empty without one)."""
    if not config:
        return {}
    output = config.get("OutputConfig") or {}
    notify = output.get("NotificationConfig") or {}
    spec: dict[str, Any] = {
        "output_prefix": output.get("S3OutputPath"),
        "failure_prefix": output.get("S3FailurePath"),
        "success_topic": topic_of(notify.get("SuccessTopic"), "SuccessTopic"),
        "error_topic": topic_of(notify.get("ErrorTopic"), "ErrorTopic"),
        "max_concurrent_invocations_per_worker": (config.get("ClientConfig") or {}).get(
            "MaxConcurrentInvocationsPerInstance"
        ),
    }
    return {key: value for key, value in spec.items() if value is not None}


def capture_spec(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The native `data_capture` block from a DataCaptureConfig (None without one)."""
    if not config:
        return None
    modes = [option.get("CaptureMode") for option in config.get("CaptureOptions") or []]
    bad = [m for m in modes if m not in ("Input", "Output")]
    if bad:
        raise validation(f"CaptureMode {bad} must be Input or Output")
    return {
        "enabled": bool(config.get("EnableCapture", True)),
        "sampling_percent": config.get("InitialSamplingPercentage", 100),
        "destination": config.get("DestinationS3Uri"),
        "capture": [m.lower() for m in modes] or ["input", "output"],
    }


def endpoint_spec(
    name: str, config: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The native endpoint spec (POST /v1/endpoints) of CreateEndpoint(name, config).

    A variant without a ModelName makes no native variant: it is the capacity SageMaker
    puts inference components on, and Sluiceway places their copies on the hosts its
    scheduler knows (its InstanceType must still map). A config of such variants only
    makes an endpoint of components only.
    """
    declared = config.get("ProductionVariants", [])
    for variant in declared:
        if not variant.get("ModelName"):
            placement(variant.get("InstanceType"))
    spec: dict[str, Any] = {
        "name": name,
        "variants": [
            variant_spec(v, models[v["ModelName"]]) for v in declared if v.get("ModelName")
        ],
        "async": async_spec(config.get("AsyncInferenceConfig")),
    }
    capture = capture_spec(config.get("DataCaptureConfig"))
    if capture is not None:
        spec["data_capture"] = capture
    shadows = config.get("ShadowProductionVariants") or []
    if shadows:
        production = sum(
            float(v.get("InitialVariantWeight", 1.0)) for v in declared if v.get("ModelName")
        )
        spec["shadow_variants"] = [
            shadow_spec(v, models[v["ModelName"]], production) for v in shadows
        ]
    return spec


def shadow_spec(
    variant: Mapping[str, Any], model: Mapping[str, Any], production_weight: float
) -> dict[str, Any]:
    """A native shadow variant from a ShadowProductionVariant: the share of requests copied
    to it is its weight over the production variants' total (capped at 100 %), as on
    SageMaker; workers as for a production variant (fixed at its instance count)."""
    single_model(model, "a shadow variant")
    where = placement(variant.get("InstanceType"))
    count = int(variant.get("InitialInstanceCount", 1))
    weight = float(variant.get("InitialVariantWeight", 1.0))
    share = 100.0 if production_weight <= 0 else min(100.0, 100.0 * weight / production_weight)
    return {
        "name": variant["VariantName"],
        "model": model["ModelName"],
        "model_version": model["NativeVersion"],
        "sampling_percent": share,
        "accelerator": where.accelerator,
        "min_workers": count * where.workers_per_instance,
        "max_workers": count * where.workers_per_instance,
    }


ENDPOINT_STATUS = {
    "creating": "Creating",
    "in_service": "InService",
    "updating": "Updating",
    "rolling_back": "RollingBack",
    "failed": "Failed",
    "deleting": "Deleting",
}


# --- transform jobs ------------------------------------------------------------------

TRANSFORM_STATUS = {
    "queued": "InProgress",
    "running": "InProgress",
    "stopping": "Stopping",
    "stopped": "Stopped",
    "succeeded": "Completed",
    "failed": "Failed",
}
_STRATEGIES = {"MultiRecord": "multi_record", "SingleRecord": "single_record"}
_CONTENT_TYPES = {
    "text/csv": "text/csv",
    "application/jsonlines": "application/jsonlines",
    "application/json-lines": "application/jsonlines",
    "application/x-jsonlines": "application/jsonlines",
}


def transform_spec(request: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, Any]:
    """The native transform job (POST /v1/transform-jobs) of a CreateTransformJob request."""
    single_model(model, "a transform job")
    source = ((request.get("TransformInput") or {}).get("DataSource") or {}).get("S3DataSource")
    if not source or not source.get("S3Uri"):
        raise validation("TransformInput.DataSource.S3DataSource.S3Uri is required")
    if source.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise unsupported([f"S3DataType={source['S3DataType']}"], "CreateTransformJob")
    given = request["TransformInput"]
    output = request.get("TransformOutput") or {}
    if not output.get("S3OutputPath"):
        raise validation("TransformOutput.S3OutputPath is required")
    content_type = given.get("ContentType", "text/csv")
    if content_type not in _CONTENT_TYPES:
        raise unsupported([f"ContentType={content_type}"], "CreateTransformJob")
    refused = []
    if given.get("CompressionType", "None") != "None":
        refused.append(f"CompressionType={given['CompressionType']}")
    split = given.get("SplitType", "None")
    if split not in ("None", "Line"):
        refused.append(f"SplitType={split}")
    assemble = output.get("AssembleWith")
    if assemble == "None" and split != "None":
        refused.append("AssembleWith=None with SplitType=Line (outputs are assembled by line)")
    accept = output.get("Accept")
    if accept is not None and _CONTENT_TYPES.get(accept) != _CONTENT_TYPES[content_type]:
        refused.append(f"Accept={accept} (outputs have the input's content type)")
    processing = request.get("DataProcessing") or {}
    refused += [
        f"{key}={processing[key]}"
        for key in ("InputFilter", "OutputFilter")
        if processing.get(key, "$") != "$"
    ]
    if refused:
        raise unsupported(refused, "CreateTransformJob")
    placement((request.get("TransformResources") or {}).get("InstanceType"))
    strategy = request.get("BatchStrategy")
    spec: dict[str, Any] = {
        "name": request["TransformJobName"],
        "model": model["ModelName"],
        "model_version": model["NativeVersion"],
        "input_prefix": source["S3Uri"],
        "output_prefix": output["S3OutputPath"],
        "content_type": _CONTENT_TYPES[content_type],
        "split_type": "line" if split == "Line" else "none",
        "join_source": "input" if processing.get("JoinSource") == "Input" else "none",
    }
    if strategy is not None:
        if strategy not in _STRATEGIES:
            raise validation(f"BatchStrategy {strategy!r} is not MultiRecord or SingleRecord")
        spec["batch_strategy"] = _STRATEGIES[strategy]
    if request.get("MaxPayloadInMB") is not None:
        spec["max_payload_mb"] = request["MaxPayloadInMB"]
    return spec


# --- listing: filters, order, pages ------------------------------------------------------


def page(
    items: list[dict[str, Any]],
    request: Mapping[str, Any],
    *,
    name_key: str,
    status_key: str | None = None,
    default_sort: str = "CreationTime",
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a List* answer: NameContains, StatusEquals, CreationTimeBefore/After,
    SortBy (Name | CreationTime | Status), SortOrder, MaxResults (1-100) and NextToken
    (the offset of the next item, as text).

    Worked example: 25 items, MaxResults 10 → items 0-9 and NextToken "10"; with
    NextToken "20" → items 20-24 and no NextToken.
    """
    selected = items
    if request.get("NameContains"):
        selected = [i for i in selected if request["NameContains"] in i[name_key]]
    if status_key and request.get("StatusEquals"):
        selected = [i for i in selected if i.get(status_key) == request["StatusEquals"]]
    if request.get("CreationTimeBefore") is not None:
        selected = [i for i in selected if i["CreationTime"] < request["CreationTimeBefore"]]
    if request.get("CreationTimeAfter") is not None:
        selected = [i for i in selected if i["CreationTime"] > request["CreationTimeAfter"]]
    sort_by = request.get("SortBy", default_sort)
    key = {"Name": name_key, "CreationTime": "CreationTime", "Status": status_key}.get(sort_by)
    if key is None:
        raise validation(f"SortBy {sort_by!r} is not one of Name, CreationTime, Status")
    descending = request.get("SortOrder", "Descending") == "Descending"
    selected = sorted(selected, key=lambda i: i[key], reverse=descending)
    limit = int(request.get("MaxResults", 10))
    if not 1 <= limit <= 100:
        raise validation(f"MaxResults {limit} must be 1 to 100")
    try:
        start = int(request.get("NextToken") or 0)
    except ValueError:
        raise validation(f"NextToken {request['NextToken']!r} is not one this API gave") from None
    chunk = selected[start : start + limit]
    return chunk, str(start + limit) if start + limit < len(selected) else None


# --- inference components -------------------------------------------------------------

COMPONENT_STATUS = {"in_service": "InService", "deleting": "Deleting"}


def component_variant(given: str | None, config: Mapping[str, Any] | None) -> str:
    """The variant a component is said to run on: the one named (it must be the endpoint
    config's), else the config's only variant. Placement ignores it: copies go to the
    hosts the scheduler knows, whatever the variant declared."""
    if config is None:  # an endpoint made natively
        return given or "AllTraffic"
    declared = [v["VariantName"] for v in config.get("ProductionVariants", [])]
    if given is not None:
        if given not in declared:
            raise validation(f"VariantName {given!r} is not one of the endpoint's {declared}")
        return given
    if len(declared) != 1:
        raise validation(f"VariantName is required: the endpoint has variants {declared}")
    return str(declared[0])


def component_compute(requirements: Mapping[str, Any]) -> dict[str, Any]:
    """A native `compute` block from ComputeResourceRequirements.

    NumberOfCpuCoresRequired → `cpu_cores` (fractions allowed), MinMemoryRequiredInMb →
    `memory_mb` (what a copy reserves), NumberOfAcceleratorDevicesRequired → `gpus`
    (whole devices; a fraction is a ValidationException). MaxMemoryRequiredInMb has no
    effect. Worked example: `{"NumberOfCpuCoresRequired": 0.5, "MinMemoryRequiredInMb":
    512}` → `{"cpu_cores": 0.5, "memory_mb": 512}`.
    """
    compute: dict[str, Any] = {}
    if requirements.get("NumberOfCpuCoresRequired") is not None:
        compute["cpu_cores"] = requirements["NumberOfCpuCoresRequired"]
    if requirements.get("MinMemoryRequiredInMb") is not None:
        compute["memory_mb"] = requirements["MinMemoryRequiredInMb"]
    devices = requirements.get("NumberOfAcceleratorDevicesRequired")
    if devices is not None:
        if isinstance(devices, bool) or not isinstance(devices, (int, float)):
            raise validation(f"NumberOfAcceleratorDevicesRequired {devices!r} is not a number")
        if devices != int(devices):
            raise validation(
                f"NumberOfAcceleratorDevicesRequired {devices} is not a whole number: a copy "
                "takes whole GPUs in Sluiceway"
            )
        compute["gpus"] = int(devices)
    return compute


def component_copies(count: Any) -> dict[str, int]:
    """RuntimeConfig.CopyCount → `copies` {min, max} = the count (a fixed number of copies)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise validation(f"CopyCount {count!r} must be a whole number, 0 or more")
    return {"min": count, "max": count}


def compute_requirements(native: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """ComputeResourceRequirements as Describe answers it: the native figures in force."""
    answer: dict[str, Any] = {
        "NumberOfCpuCoresRequired": float(native["cpu_cores"]),
        "MinMemoryRequiredInMb": int(native["memory_mb"]),
    }
    if native.get("gpus"):
        answer["NumberOfAcceleratorDevicesRequired"] = float(native["gpus"])
    if given.get("MaxMemoryRequiredInMb") is not None:
        answer["MaxMemoryRequiredInMb"] = given["MaxMemoryRequiredInMb"]
    return answer


# --- deployments: UpdateEndpoint's DeploymentConfig → the native `deployment` block ------

_BLUE_GREEN = {"ALL_AT_ONCE": "all_at_once", "CANARY": "canary", "LINEAR": "linear"}
_ALARM = re.compile(
    r"^(?P<field>error_rate_percent|p99_latency_ms|min_requests)=(?P<value>\d+(?:\.\d+)?)$"
)


def rollback_thresholds(alarms: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The native `rollback_on` from AutoRollbackConfiguration.Alarms: each alarm's name is
    one threshold, `error_rate_percent=5`, `p99_latency_ms=2000` or `min_requests=50`
    (Sluiceway watches its own counters, not CloudWatch). Others: a ValidationException."""
    if not alarms:
        return None
    thresholds: dict[str, Any] = {}
    for alarm in alarms:
        name = str(alarm.get("AlarmName") or "")
        match = _ALARM.match(name)
        if match is None:
            raise validation(
                f"AlarmName {name!r} is not a Sluiceway rollback threshold: name alarms "
                "error_rate_percent=N, p99_latency_ms=N or min_requests=N (docs/sagemaker.md)"
            )
        value = float(match["value"])
        thresholds[match["field"]] = int(value) if match["field"] == "min_requests" else value
    if set(thresholds) == {"min_requests"}:
        raise validation(
            "min_requests=N alone judges nothing: add error_rate_percent or p99_latency_ms"
        )
    return thresholds


def _percent(size: Mapping[str, Any] | None, field: str) -> float:
    if not size:
        raise validation(f"TrafficRoutingConfiguration.{field} is required for its Type")
    if size.get("Type") != "CAPACITY_PERCENT":
        raise unsupported(
            [f"{field}.Type={size.get('Type')} (give CAPACITY_PERCENT)"], "UpdateEndpoint"
        )
    return float(size["Value"])


def deployment_spec(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The native `deployment` block (docs/deployments.md) of a DeploymentConfig.

    BlueGreenUpdatePolicy.TrafficRoutingConfiguration.Type → `strategy`
    (ALL_AT_ONCE, CANARY, LINEAR); CanarySize / LinearStepSize (CAPACITY_PERCENT) →
    `canary_percent` / `linear_step_percent`; WaitIntervalInSeconds → `step_interval_s`;
    TerminationWaitInSeconds → `baking_s` (for ALL_AT_ONCE, the wait interval too: it is
    that strategy's baking period); AutoRollbackConfiguration.Alarms → `rollback_on`.
    Worked example: CANARY, CanarySize 10 %, WaitIntervalInSeconds 60,
    TerminationWaitInSeconds 120 → `{"strategy": "canary", "canary_percent": 10.0,
    "step_interval_s": 60, "baking_s": 120}`.
    """
    if not config:
        return None
    if "RollingUpdatePolicy" in config:
        raise unsupported(
            ["DeploymentConfig.RollingUpdatePolicy (use BlueGreenUpdatePolicy)"], "UpdateEndpoint"
        )
    policy = config.get("BlueGreenUpdatePolicy") or {}
    routing = policy.get("TrafficRoutingConfiguration") or {}
    kind = routing.get("Type", "ALL_AT_ONCE")
    if kind not in _BLUE_GREEN:
        raise validation(
            f"TrafficRoutingConfiguration.Type {kind!r} is not one of {list(_BLUE_GREEN)}"
        )
    wait = float(routing.get("WaitIntervalInSeconds", 0))
    baking = float(policy.get("TerminationWaitInSeconds", 0))
    spec: dict[str, Any] = {"strategy": _BLUE_GREEN[kind], "step_interval_s": wait}
    if kind == "ALL_AT_ONCE":
        baking += wait
    if kind == "CANARY":
        spec["canary_percent"] = _percent(routing.get("CanarySize"), "CanarySize")
    if kind == "LINEAR":
        spec["linear_step_percent"] = _percent(routing.get("LinearStepSize"), "LinearStepSize")
    spec["baking_s"] = baking
    rollback = rollback_thresholds(
        (config.get("AutoRollbackConfiguration") or {}).get("Alarms") or []
    )
    if rollback is not None:
        spec["rollback_on"] = rollback
    return spec

"""The SageMaker ↔ native mapping: pure functions (api/sagemaker/mapping.py, runtime headers)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.responses import Response

from api.sagemaker import fields, mapping, runtime
from api.sagemaker.errors import AwsError
from api.schemas import ComputeSpec, DeploymentConfig, EndpointCreate, TransformJobCreate

MODEL = {"ModelName": "churn-xgb", "NativeVersion": 3}
XGB = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.mark.parametrize(
    ("container", "framework"),
    [
        (
            {"Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"},
            "xgboost",
        ),
        ({"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3"}, "torch"),
        ({"Image": "my/pytorch", "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}, "python"),
        ({"Image": "anything", "Environment": {"SLUICEWAY_FRAMEWORK": "xgboost"}}, "xgboost"),
    ],
    ids=["xgboost-image", "pytorch-image", "sagemaker-program", "explicit"],
)
def test_the_framework_follows_the_image_or_the_environment(
    container: dict[str, Any], framework: str
) -> None:
    assert mapping.framework_of(container) == framework


def test_an_image_of_no_known_framework_is_named() -> None:
    with pytest.raises(AwsError, match="tensorflow-inference"):
        mapping.framework_of({"Image": "tensorflow-inference:2.13"})


@pytest.mark.parametrize(
    ("instance_type", "accelerator", "workers"),
    [
        (None, "cpu", 1),
        ("ml.m5.xlarge", "cpu", 1),
        ("ml.c5.4xlarge", "cpu", 1),
        ("ml.g5.xlarge", "gpu", 1),
        ("ml.g5.12xlarge", "gpu", 4),
        ("ml.p4d.24xlarge", "gpu", 8),
    ],
)
def test_instance_types_become_an_accelerator_and_workers(
    instance_type: str | None, accelerator: str, workers: int
) -> None:
    assert mapping.placement(instance_type) == mapping.Placement(accelerator, workers)


@pytest.mark.parametrize("instance_type", ["ml.inf2.xlarge", "ml.trn1.2xlarge", "m5.large"])
def test_instance_types_without_an_equivalent_are_refused(instance_type: str) -> None:
    with pytest.raises(AwsError, match=instance_type):
        mapping.placement(instance_type)


def test_a_gpu_variant_runs_a_worker_per_gpu_and_instance() -> None:
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "churn-xgb",
        "InstanceType": "ml.g5.12xlarge",
        "InitialInstanceCount": 2,
        "InitialVariantWeight": 1,
    }
    spec = mapping.variant_spec(variant, MODEL)
    assert spec == {
        "name": "AllTraffic",
        "model": "churn-xgb",
        "model_version": 3,
        "weight": 1.0,
        "accelerator": "gpu",
        "min_workers": 8,
        "max_workers": 8,
    }
    assert mapping.instances(8, 4) == 2 and mapping.instances(5, 4) == 2
    assert mapping.instances(0, 4) == 0


def test_managed_instance_scaling_sets_the_worker_bounds() -> None:
    variant = {
        "VariantName": "a",
        "ModelName": "churn-xgb",
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
        "ManagedInstanceScaling": {
            "Status": "ENABLED",
            "MinInstanceCount": 0,
            "MaxInstanceCount": 3,
        },
    }
    spec = mapping.variant_spec(variant, MODEL)
    assert (spec["min_workers"], spec["max_workers"]) == (0, 3)


def test_an_endpoint_config_becomes_a_native_endpoint_spec() -> None:
    config = {
        "EndpointConfigName": "c",
        "ProductionVariants": [
            {"VariantName": "A", "ModelName": "churn-xgb", "InstanceType": "ml.m5.large"}
        ],
        "AsyncInferenceConfig": {
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
            "OutputConfig": {
                "S3OutputPath": "s3://results/churn/",
                "S3FailurePath": "s3://results/failed/",
                "NotificationConfig": {
                    "SuccessTopic": "arn:aws:sns:us-east-1:123456789012:churn-ok",
                    "ErrorTopic": "churn-err",
                },
            },
        },
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": 50,
            "DestinationS3Uri": "s3://capture/churn",
            "CaptureOptions": [{"CaptureMode": "Input"}],
        },
    }
    spec = EndpointCreate.model_validate(
        mapping.endpoint_spec("churn", config, {"churn-xgb": MODEL})
    )
    assert spec.async_.output_prefix == "s3://results/churn/"
    assert spec.async_.failure_prefix == "s3://results/failed/"
    assert (spec.async_.success_topic, spec.async_.error_topic) == ("churn-ok", "churn-err")
    assert spec.async_.max_concurrent_invocations_per_worker == 4
    assert spec.data_capture is not None
    assert spec.data_capture.sampling_percent == 50
    assert spec.data_capture.destination == "s3://capture/churn/"
    assert spec.data_capture.capture == ["input"]


def test_a_non_sns_arn_topic_is_refused() -> None:
    with pytest.raises(AwsError, match="SuccessTopic"):
        mapping.topic_of("arn:aws:sqs:us-east-1:1:queue", "SuccessTopic")


def test_unsupported_fields_are_named_and_later_features_say_so() -> None:
    request = {
        "EndpointConfigName": "c",
        "ProductionVariants": [
            {"VariantName": "A", "ModelName": "m", "ServerlessConfig": {"MemorySizeInMB": 2048}}
        ],
        "ShadowProductionVariants": [{"VariantName": "S", "ModelName": "m"}],
        "Tags": [{"Key": "team", "Value": "ml"}],
    }
    with pytest.raises(AwsError) as caught:
        fields.check_fields("CreateEndpointConfig", request)
    message = caught.value.message
    assert "ProductionVariants[].ServerlessConfig" in message
    assert "ShadowProductionVariants" not in message
    assert "Tags" not in message  # accepted, with no effect (docs/sagemaker.md)


def test_a_multi_model_container_serves_every_model_under_its_prefix() -> None:
    container = mapping.primary_container(
        {
            "PrimaryContainer": {
                "Image": XGB,
                "ModelDataUrl": "s3://models/cities",
                "Mode": "MultiModel",
            }
        }
    )
    many = mapping.multi_model(container)
    assert many == {"prefix": "s3://models/cities/", "framework": "xgboost"}
    model = {"ModelName": "cities", "MultiModel": many}
    variant = mapping.variant_spec({"VariantName": "AllTraffic"}, model)
    spec = EndpointCreate.model_validate({"name": "cities", "variants": [variant]})
    assert spec.variants[0].multi_model is not None
    assert spec.variants[0].multi_model.prefix == "s3://models/cities/"
    assert spec.variants[0].model is None
    with pytest.raises(AwsError, match="runs a single model"):
        mapping.transform_spec(_transform(ModelName="cities"), model)


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"Image": XGB, "ModelDataUrl": "s3://bucket-only"}, "must be an S3 prefix"),
        (
            {
                "Image": "my/handler",
                "ModelDataUrl": "s3://b/m/",
                "Environment": {"SAGEMAKER_PROGRAM": "x.py"},
            },
            "framework python",
        ),
    ],
    ids=["bucket-without-prefix", "python-handlers"],
)
def test_multi_model_containers_sluiceway_cannot_serve_are_named(
    container: dict[str, Any], message: str
) -> None:
    with pytest.raises(AwsError, match=message):
        mapping.multi_model({**container, "Mode": "MultiModel"})


def _transform(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TransformJobName": "nightly",
        "ModelName": "churn-xgb",
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": 2,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://data/out/", "AssembleWith": "Line"},
        "DataProcessing": {"JoinSource": "Input"},
    }
    request.update(changes)
    return request


def test_a_transform_job_becomes_a_native_one() -> None:
    spec = TransformJobCreate.model_validate(mapping.transform_spec(_transform(), MODEL))
    assert (spec.name, spec.model, spec.model_version) == ("nightly", "churn-xgb", 3)
    assert (spec.input_prefix, spec.output_prefix) == ("s3://data/in/", "s3://data/out/")
    assert (spec.split_type, spec.batch_strategy, spec.join_source) == (
        "line",
        "single_record",
        "input",
    )
    assert spec.max_payload_mb == 2


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"DataProcessing": {"InputFilter": "$[1:]"}}, "InputFilter"),
        ({"BatchStrategy": "Everything"}, "BatchStrategy"),
    ],
)
def test_transform_fields_sluiceway_cannot_honour_are_named(
    changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(AwsError, match=named):
        mapping.transform_spec(_transform(**changes), MODEL)


def test_pages_filter_sort_and_continue() -> None:
    items = [{"Name": f"e{i:02d}", "CreationTime": float(i)} for i in range(25)]
    first, token = mapping.page(items, {"MaxResults": 10}, name_key="Name")
    assert [i["Name"] for i in first] == [f"e{i:02d}" for i in range(24, 14, -1)]
    assert token == "10"
    last, token = mapping.page(items, {"MaxResults": 10, "NextToken": "20"}, name_key="Name")
    assert len(last) == 5 and token is None
    named, _ = mapping.page(
        items, {"NameContains": "e1", "SortBy": "Name", "SortOrder": "Ascending"}, name_key="Name"
    )
    assert [i["Name"] for i in named] == [f"e1{i}" for i in range(10)]


def test_runtime_headers_are_renamed_and_unsupported_ones_named() -> None:
    headers = [
        (b"content-type", b"text/csv"),
        (b"x-amzn-sagemaker-target-variant", b"AllTraffic"),
        (b"x-amzn-sagemaker-inference-id", b"order-1"),
        (b"x-amzn-sagemaker-target-model", b"eu/paris.json"),
    ]
    assert runtime.translate_headers(headers, asynchronous=False) == [
        (b"content-type", b"text/csv"),
        (b"x-target-variant", b"AllTraffic"),
        (b"x-inference-id", b"order-1"),
        (b"x-target-model", b"eu/paris.json"),
    ]
    with pytest.raises(AwsError) as caught:
        runtime.translate_headers(
            [*headers, (b"x-amzn-sagemaker-custom-attributes", b"a=1")], asynchronous=False
        )
    assert caught.value.code == "ValidationError"
    assert "CustomAttributes" in caught.value.message


def test_async_headers_carry_the_input_content_type() -> None:
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", b"0"),
        (b"x-amzn-sagemaker-content-type", b"text/csv"),
        (b"x-amzn-sagemaker-accept", b"application/json"),
    ]
    assert runtime.translate_headers(headers, asynchronous=True) == [
        (b"content-type", b"text/csv"),
        (b"accept", b"application/json"),
    ]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (422, "ModelError"),
        (424, "ModelError"),
        (404, "ValidationError"),
        (429, "ThrottlingException"),
    ],
)
def test_native_problems_become_the_runtime_errors_botocore_knows(status: int, code: str) -> None:
    native = Response(orjson.dumps({"detail": "feature 3 is NaN"}), status_code=status)
    error = runtime.problem_to_aws(native)
    assert error.code == code
    if code == "ModelError":
        assert error.status == 424
        assert error.extra == {"OriginalStatusCode": status, "OriginalMessage": "feature 3 is NaN"}


def test_an_uncompressed_model_data_source_is_the_model_data_url() -> None:
    source = {
        "S3Uri": "s3://models/churn.json",
        "S3DataType": "S3Object",
        "CompressionType": "None",
    }
    container = mapping.primary_container(
        {"PrimaryContainer": {"Image": "xgboost", "ModelDataSource": {"S3DataSource": source}}}
    )
    assert container["ModelDataUrl"] == "s3://models/churn.json"
    with pytest.raises(AwsError, match="S3DataType=S3Prefix"):
        mapping.primary_container(
            {
                "PrimaryContainer": {
                    "Image": "xgboost",
                    "ModelDataSource": {"S3DataSource": {**source, "S3DataType": "S3Prefix"}},
                }
            }
        )


# --- inference components --------------------------------------------------------------


def test_compute_resource_requirements_become_a_component_compute() -> None:
    compute = mapping.component_compute(
        {
            "NumberOfCpuCoresRequired": 0.5,
            "MinMemoryRequiredInMb": 512,
            "NumberOfAcceleratorDevicesRequired": 2.0,
            "MaxMemoryRequiredInMb": 4096,
        }
    )
    assert ComputeSpec.model_validate(compute) == ComputeSpec(cpu_cores=0.5, memory_mb=512, gpus=2)
    assert mapping.component_copies(3) == {"min": 3, "max": 3}
    described = mapping.compute_requirements(
        ComputeSpec.model_validate(compute).model_dump(), {"MaxMemoryRequiredInMb": 4096}
    )
    assert described == {
        "NumberOfCpuCoresRequired": 0.5,
        "MinMemoryRequiredInMb": 512,
        "NumberOfAcceleratorDevicesRequired": 2.0,
        "MaxMemoryRequiredInMb": 4096,
    }


@pytest.mark.parametrize(
    ("requirements", "count", "message"),
    [
        ({"NumberOfAcceleratorDevicesRequired": 1.5}, 1, "whole GPUs"),
        ({"NumberOfAcceleratorDevicesRequired": "one"}, 1, "not a number"),
        ({}, -1, "CopyCount -1"),
        ({}, True, "CopyCount True"),
    ],
    ids=["fraction-of-gpu", "gpus-as-text", "negative-copies", "copies-as-bool"],
)
def test_component_figures_sluiceway_cannot_take_are_named(
    requirements: dict[str, Any], count: Any, message: str
) -> None:
    with pytest.raises(AwsError, match=message):
        mapping.component_compute(requirements)
        mapping.component_copies(count)


def test_a_component_runs_on_the_variant_named_or_the_only_one() -> None:
    config = {"ProductionVariants": [{"VariantName": "AllTraffic"}]}
    assert mapping.component_variant(None, config) == "AllTraffic"
    assert mapping.component_variant("AllTraffic", config) == "AllTraffic"
    assert mapping.component_variant(None, None) == "AllTraffic"  # a native endpoint
    with pytest.raises(AwsError, match="'Other' is not one of"):
        mapping.component_variant("Other", config)
    two = {"ProductionVariants": [{"VariantName": "A"}, {"VariantName": "B"}]}
    with pytest.raises(AwsError, match="VariantName is required"):
        mapping.component_variant(None, two)


def test_a_config_of_variants_without_models_makes_an_endpoint_of_components_only() -> None:
    config = {
        "ProductionVariants": [
            {"VariantName": "AllTraffic", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}
        ]
    }
    spec = EndpointCreate.model_validate(mapping.endpoint_spec("shop", config, {}))
    assert spec.variants == []
    mixed = {
        "ProductionVariants": [
            *config["ProductionVariants"],
            {"VariantName": "Model", "ModelName": "churn-xgb", "InstanceType": "ml.m5.large"},
        ]
    }
    spec = EndpointCreate.model_validate(mapping.endpoint_spec("shop", mixed, {"churn-xgb": MODEL}))
    assert [v.name for v in spec.variants] == ["Model"]
    bad = {"ProductionVariants": [{"VariantName": "A", "InstanceType": "ml.inf2.xlarge"}]}
    with pytest.raises(AwsError, match="inf2"):
        mapping.endpoint_spec("shop", bad, {})


def test_component_requests_name_the_fields_sluiceway_does_not_take() -> None:
    request = {
        "InferenceComponentName": "ic",
        "EndpointName": "shop",
        "Specification": {
            "ModelName": "m",
            "ComputeResourceRequirements": {
                "MinMemoryRequiredInMb": 512,
                "MaxMemoryRequiredInMb": 1024,
                "AcceleratorPartitionType": "mig-1g.10gb",
            },
            "StartupParameters": {"ModelDataDownloadTimeoutInSeconds": 60},
            "BaseInferenceComponentName": "base",
        },
        "RuntimeConfig": {"CopyCount": 1},
        "Tags": [{"Key": "team", "Value": "ml"}],
    }
    with pytest.raises(AwsError) as caught:
        fields.check_fields("CreateInferenceComponent", request)
    message = caught.value.message
    assert "Specification.BaseInferenceComponentName" in message
    assert "Specification.ComputeResourceRequirements.AcceleratorPartitionType" in message
    assert "MaxMemoryRequiredInMb" not in message  # accepted, with no effect
    assert "StartupParameters" not in message and "Tags" not in message


# --- deployments -------------------------------------------------------------------------


def test_a_canary_deployment_config_becomes_the_native_deployment() -> None:
    config = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                "WaitIntervalInSeconds": 60,
            },
            "TerminationWaitInSeconds": 120,
            "MaximumExecutionTimeoutInSeconds": 1800,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": "error_rate_percent=5"},
                {"AlarmName": "p99_latency_ms=2000"},
                {"AlarmName": "min_requests=50"},
            ]
        },
    }
    deployment = mapping.deployment_spec(config)
    assert deployment == {
        "strategy": "canary",
        "canary_percent": 10.0,
        "step_interval_s": 60.0,
        "baking_s": 120.0,
        "rollback_on": {"error_rate_percent": 5.0, "p99_latency_ms": 2000.0, "min_requests": 50},
    }
    assert DeploymentConfig.model_validate(deployment).canary_percent == 10.0
    linear = mapping.deployment_spec(
        {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "LINEAR",
                    "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 33},
                    "WaitIntervalInSeconds": 30,
                }
            }
        }
    )
    assert linear == {
        "strategy": "linear",
        "linear_step_percent": 33.0,
        "step_interval_s": 30.0,
        "baking_s": 0.0,
    }
    at_once = mapping.deployment_spec(
        {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 30},
                "TerminationWaitInSeconds": 10,
            }
        }
    )
    assert at_once == {"strategy": "all_at_once", "step_interval_s": 30.0, "baking_s": 40.0}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "HighErrors"}]}}, "HighErrors"),
        ({"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "min_requests=5"}]}}, "alone"),
        (
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                        "WaitIntervalInSeconds": 1,
                    }
                }
            },
            "CAPACITY_PERCENT",
        ),
        ({"RollingUpdatePolicy": {}}, "RollingUpdatePolicy"),
    ],
    ids=["cloudwatch-alarm", "min-requests-alone", "instance-count", "rolling-update"],
)
def test_deployment_configs_sluiceway_cannot_follow_are_named(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(AwsError, match=message):
        mapping.deployment_spec(config)


def test_a_shadow_variant_samples_its_weight_over_production() -> None:
    config = {
        "ProductionVariants": [
            {"VariantName": "A", "ModelName": "churn-xgb", "InitialVariantWeight": 2}
        ],
        "ShadowProductionVariants": [
            {"VariantName": "S", "ModelName": "churn-xgb", "InitialVariantWeight": 1}
        ],
    }
    spec = EndpointCreate.model_validate(
        mapping.endpoint_spec("churn", config, {"churn-xgb": MODEL})
    )
    (shadow,) = spec.shadow_variants
    assert (shadow.name, shadow.sampling_percent, shadow.min_workers) == ("S", 50.0, 1)


def _container(hostname: str | None = None, **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"Image": "sagemaker-xgboost:1.7-1", "ModelDataUrl": "s3://b/m"}
    if hostname is not None:
        container["ContainerHostname"] = hostname
    return {**container, **extra}


def test_containers_make_a_pipeline_of_steps_named_by_their_hostnames() -> None:
    request = {
        "ModelName": "churn",
        "Containers": [_container("prep"), _container("xgb"), _container("post")],
        "InferenceExecutionConfig": {"Mode": "Direct"},
    }
    fields.check_fields("CreateModel", request)  # every field taken now
    pipeline = mapping.pipeline_containers(request)
    assert pipeline is not None and pipeline.mode == "Direct"
    assert [name for name, _ in pipeline.containers] == ["prep", "xgb", "post"]
    assert pipeline.containers[1][1]["ModelDataUrl"] == "s3://b/m"
    assert mapping.step_model_name("churn", "prep") == "churn-prep"
    serial = mapping.pipeline_containers({"Containers": [_container(), _container()]})
    assert serial is not None and serial.mode == "Serial"
    assert [name for name, _ in serial.containers] == ["Container1", "Container2"]
    assert mapping.pipeline_containers({"Containers": [_container()]}) is None
    assert mapping.pipeline_containers({"PrimaryContainer": _container()}) is None


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        (
            {
                "Containers": [_container(), _container()],
                "InferenceExecutionConfig": {"Mode": "Direct"},
            },
            "ContainerHostname",
        ),
        ({"Containers": [_container("a"), _container()]}, "every container"),
        ({"Containers": [_container("a"), _container("a")]}, "share"),
        ({"Containers": [_container("a_b"), _container("c")]}, "'a_b'"),
        ({"Containers": [_container()] * 16}, "16"),
        (
            {
                "Containers": [_container(), _container()],
                "InferenceExecutionConfig": {"Mode": "Fast"},
            },
            "'Fast'",
        ),
        (
            {"Containers": [_container()], "InferenceExecutionConfig": {"Mode": "Serial"}},
            "2 or more",
        ),
        ({"Containers": [_container(), _container(Mode="MultiModel")]}, "SingleModel"),
        ({"Containers": [_container(), {"Image": "sagemaker-xgboost"}]}, "ModelDataUrl"),
        (
            {"Containers": [_container(), _container()], "PrimaryContainer": _container()},
            "not both",
        ),
    ],
)
def test_pipelines_sagemaker_would_refuse_are_named(request_: dict[str, Any], named: str) -> None:
    with pytest.raises(AwsError) as caught:
        mapping.pipeline_containers(request_)
    assert caught.value.code == "ValidationException"
    assert named in caught.value.message


def test_a_step_model_name_longer_than_a_name_may_be_is_refused() -> None:
    with pytest.raises(AwsError) as caught:
        mapping.step_model_name("m" * 60, "prep")
    assert "63" in caught.value.message


def test_target_container_hostname_is_the_native_target_container() -> None:
    headers = [(b"x-amzn-sagemaker-target-container-hostname", b"xgb")]
    assert runtime.translate_headers(headers, asynchronous=False) == [
        (b"x-target-container", b"xgb")
    ]
    assert "x_target_container" in runtime.NATIVE_ASYNC_HEADERS_UNSET


def test_a_pipeline_deploys_one_image_per_container() -> None:
    one = {"PrimaryContainer": _container()}
    assert mapping.model_images(one) == ["sagemaker-xgboost:1.7-1"]
    many = {"Containers": [_container("a"), _container("b", Image="sklearn:1")]}
    assert mapping.model_images(many) == ["sagemaker-xgboost:1.7-1", "sklearn:1"]

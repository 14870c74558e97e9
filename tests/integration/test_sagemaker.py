"""The SageMaker wire API driven by the real boto3, against a real stack (no stubbing).

One stack with auth on: every boto3 call is SigV4-signed with an API key's id
and secret and verified by the API. An API, a scheduler (transform coordinator
and webhook notifier; SLUICEWAY_SCALER_BACKEND=none) and one worker that serves
every variant and the transform pool. The seeds' flows run as their code is
written, with only `endpoint_url` and the credentials changed: (a) A/B variants
with waiters and weight updates, (b) async XGBoost from S3 with the success topic,
(c) a multi-model endpoint with TargetModel, (d) a serial inference pipeline and
direct container calls with TargetContainerHostname, (e) inference components on an endpoint
without variant models, (f) UpdateEndpoint with a canary DeploymentConfig, (g) a
transform job with its waiter; then the error cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.fernet import Fernet

from core.apikeys import create_key
from core.db import session_scope
from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    REPO,
    Stack,
    private_stack,
    stack_settings,
    unique,
    wait_for,
)
from tests.integration.test_pipelines import POST, PREP, bundle, post, prep
from tests.integration.webhook_parts import Receiver

pytestmark = pytest.mark.integration

FAST = {"Delay": 1, "MaxAttempts": 60}
XGB_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"
TORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3-cpu-py311"


@dataclass
class Sage:
    stack: Stack
    s3: Any  # boto3 S3 client of the test's object store
    bucket: str
    admin_key: str
    invoke_key: str
    receiver: Receiver

    def credentials(self, key: str) -> dict[str, str]:
        _, key_id, secret = key.split("_", 2)
        return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}

    def client(self, service: str, key: str | None = None, **credentials: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.stack.api_url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
            **(credentials or self.credentials(key or self.admin_key)),
        )

    def native(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.api_url,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=60,
        )

    def upload(self, key: str, path_or_bytes: Path | bytes) -> str:
        data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"


@pytest.fixture(scope="module")
def sage(
    s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]
) -> Iterator[Sage]:
    receiver = Receiver().start()
    with private_stack(
        s3,
        tmp_path_factory.mktemp("sagemaker"),
        SLUICEWAY_AUTH="on",
        SLUICEWAY_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        SLUICEWAY_SCALER_BACKEND="none",
        SLUICEWAY_TRANSFORM_INTERVAL_S="0.2",
        SLUICEWAY_CAPTURE_FLUSH_S="0.3",
        SLUICEWAY_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
    ) as running:
        running.workers.append(running._spawn(["scheduler"], "scheduler.log"))
        running.start_worker()
        with stack_settings(running), session_scope() as session:
            admin = create_key(session, scope="admin", name="sagemaker-admin")
            invoke = create_key(session, scope="invoke", name="sagemaker-invoke")
        env = running.env
        store = boto3.client(
            "s3",
            endpoint_url=env["SLUICEWAY_S3_ENDPOINT"],
            aws_access_key_id=env["SLUICEWAY_S3_ACCESS_KEY"],
            aws_secret_access_key=env["SLUICEWAY_S3_SECRET_KEY"],
            region_name=env["SLUICEWAY_S3_REGION"],
        )
        bucket = unique("sagemaker")
        store.create_bucket(Bucket=bucket)
        running.wait_workers(1)
        try:
            yield Sage(running, store, bucket, admin, invoke, receiver)
        finally:
            receiver.stop()


@pytest.fixture(scope="module")
def sm_models(sage: Sage, model_files: dict[str, Path]) -> dict[str, str]:
    """Two SageMaker models as the seeds create them: xgboost and (picky) pytorch images."""
    sm = sage.client("sagemaker")
    names = {"xgb": unique("xgb"), "torch": unique("Picky")}
    sm.create_model(
        ModelName=names["xgb"],
        PrimaryContainer={
            "Image": XGB_IMAGE,
            "ModelDataUrl": sage.upload("models/xgb/model.json", model_files["xgb"]),
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
    )
    sm.create_model(
        ModelName=names["torch"],
        PrimaryContainer={
            "Image": TORCH_IMAGE,
            "ModelDataUrl": sage.upload("models/torch/picky.pt", model_files["picky"]),
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
    )
    return names


def _json(rows: list[list[float]]) -> bytes:
    return orjson.dumps({"instances": rows})


def test_a_b_variants_with_waiters_and_weight_updates(
    sage: Sage, sm_models: dict[str, str], model_files: dict[str, Path]
) -> None:
    sm, runtime = sage.client("sagemaker"), sage.client("sagemaker-runtime")
    config, endpoint = unique("ab-config"), unique("ab")
    described = sm.describe_model(ModelName=sm_models["xgb"])
    assert described["PrimaryContainer"]["Image"] == XGB_IMAGE
    assert described["ModelArn"].endswith(f":model/{sm_models['xgb'].lower()}")
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "VariantA",
                "ModelName": sm_models["xgb"],
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1,
            },
            {
                "VariantName": "VariantB",
                "ModelName": sm_models["torch"],
                "InstanceType": "ml.c5.xlarge",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1,
            },
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST)

    rows = models.random_rows(3, seed=7)
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=_json(rows)
    )
    assert answer["InvokedProductionVariant"] in ("VariantA", "VariantB")
    pinned = runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType="application/json",
        Accept="application/json",
        TargetVariant="VariantA",
        Body=_json(rows),
    )
    assert pinned["InvokedProductionVariant"] == "VariantA"
    assert pinned["ContentType"].startswith("application/json")
    predictions = orjson.loads(pinned["Body"].read())["predictions"]
    models.assert_close(predictions, models.predict_xgboost(model_files["xgb"], rows))

    def weights() -> dict[str, tuple[float, float]]:
        variants = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
        return {v["VariantName"]: (v["CurrentWeight"], v["DesiredWeight"]) for v in variants}

    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "VariantA", "DesiredWeight": 1},
            {"VariantName": "VariantB", "DesiredWeight": 3},
        ],
    )
    assert weights() == {"VariantA": (1.0, 1.0), "VariantB": (3.0, 3.0)}
    with pytest.raises(ClientError) as unknown:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": "VariantA", "DesiredWeight": 5},
                {"VariantName": "VariantC", "DesiredWeight": 1},
            ],
        )
    assert "VariantC" in unknown.value.response["Error"]["Message"]
    assert weights() == {"VariantA": (1.0, 1.0), "VariantB": (3.0, 3.0)}  # nothing changed
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "VariantA", "DesiredWeight": 0},
            {"VariantName": "VariantB", "DesiredWeight": 1, "DesiredInstanceCount": 2},
        ],
    )
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == config
    images = {v["VariantName"]: v["DeployedImages"] for v in described["ProductionVariants"]}
    assert images["VariantA"] == [{"SpecifiedImage": XGB_IMAGE}]
    assert weights() == {"VariantA": (0.0, 0.0), "VariantB": (1.0, 1.0)}
    with sage.native() as native:
        variant_b = native.get(f"/v1/endpoints/{endpoint}").json()["variants"][1]
    assert (variant_b["min_workers"], variant_b["max_workers"]) == (2, 2)
    served = {
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body=_json(rows)
        )["InvokedProductionVariant"]
        for _ in range(5)
    }
    assert served == {"VariantB"}

    # A model's own failure is botocore's ModelError with the original status and message.
    with pytest.raises(runtime.exceptions.ModelError) as wrong_shape:
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", TargetVariant="VariantB", Body=b"1,2\n"
        )
    assert wrong_shape.value.response["OriginalStatusCode"] == 422
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            TargetVariant="VariantB",
            Body=_json([[-5000.0, 0.0, 0.0, 0.0]]),
        )
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 424
    assert error["OriginalMessage"]

    listed = sm.list_endpoints(NameContains=endpoint)["Endpoints"]
    assert [e["EndpointName"] for e in listed] == [endpoint]
    pages = sm.get_paginator("list_endpoints").paginate(PaginationConfig={"PageSize": 1})
    assert endpoint in {e["EndpointName"] for page in pages for e in page["Endpoints"]}
    sm.delete_endpoint(EndpointName=endpoint)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=endpoint, WaiterConfig=FAST)
    sm.delete_endpoint_config(EndpointConfigName=config)


def test_async_xgboost_from_s3_with_the_success_topic(
    sage: Sage, sm_models: dict[str, str], model_files: dict[str, Path]
) -> None:
    sm, runtime = sage.client("sagemaker"), sage.client("sagemaker-runtime")
    topic, config, endpoint = unique("sm-ok"), unique("async-config"), unique("async")
    with sage.native() as native:
        assert native.post("/v1/topics", json={"name": topic}).status_code == 201
        subscribed = native.post(
            f"/v1/topics/{topic}/subscriptions",
            json={"url": sage.receiver.url(f"/{topic}"), "secret": "sagemaker-secret-0123456789"},
        )
        assert subscribed.status_code == 201, subscribed.text
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": sm_models["xgb"],
                "InstanceType": "ml.m5.xlarge",
                "InitialInstanceCount": 1,
            }
        ],
        AsyncInferenceConfig={
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
            "OutputConfig": {
                "S3OutputPath": f"s3://{sage.bucket}/async-out/",
                "S3FailurePath": f"s3://{sage.bucket}/async-failed/",
                "NotificationConfig": {
                    "SuccessTopic": f"arn:aws:sns:us-east-1:123456789012:{topic}"
                },
            },
        },
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{sage.bucket}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["DataCaptureConfig"]["CaptureStatus"] == "Started"
    output_config = described["AsyncInferenceConfig"]["OutputConfig"]
    assert output_config["S3OutputPath"] == f"s3://{sage.bucket}/async-out/"

    rows = models.random_rows(4, seed=11)
    source = sage.upload(
        "async-in/rows.csv", "".join(",".join(str(v) for v in row) + "\n" for row in rows).encode()
    )
    accepted = runtime.invoke_endpoint_async(
        EndpointName=endpoint,
        InputLocation=source,
        ContentType="text/csv",
        Accept="application/json",
        InferenceId="order-42",
        InvocationTimeoutSeconds=60,
    )
    assert accepted["InferenceId"] == "order-42"
    output = accepted["OutputLocation"]
    assert output.startswith(f"s3://{sage.bucket}/async-out/")
    assert accepted["FailureLocation"].startswith(f"s3://{sage.bucket}/async-failed/")
    key = output.split("/", 3)[3]

    def written() -> bytes | None:
        try:
            found: bytes = sage.s3.get_object(Bucket=sage.bucket, Key=key)["Body"].read()
        except sage.s3.exceptions.NoSuchKey:
            return None
        return found

    body = wait_for(written, timeout_s=60, what="the async output object", every_s=0.2)
    models.assert_close(
        orjson.loads(body)["predictions"], models.predict_xgboost(model_files["xgb"], rows)
    )
    (delivery,) = wait_for(
        lambda: sage.receiver.received(f"/{topic}"), timeout_s=30, what="the success topic"
    )
    assert delivery.event["type"] == "InferenceSucceeded"
    assert delivery.event["output_location"] == output

    def captured() -> list[str]:
        listed = sage.s3.list_objects_v2(Bucket=sage.bucket, Prefix=f"capture/{endpoint}/")
        return [item["Key"] for item in listed.get("Contents", [])]

    (record_key, *_) = wait_for(captured, timeout_s=30, what="the captured record")
    record = orjson.loads(
        sage.s3.get_object(Bucket=sage.bucket, Key=record_key)["Body"].read().splitlines()[0]
    )
    assert record["eventMetadata"]["inferenceId"] == "order-42"
    assert set(record["captureData"]) == {"endpointInput", "endpointOutput"}
    sm.delete_endpoint(EndpointName=endpoint)


def test_transform_job_with_its_waiter(
    sage: Sage, sm_models: dict[str, str], model_files: dict[str, Path]
) -> None:
    sm = sage.client("sagemaker")
    job = unique("batch")
    rows = models.random_rows(12, seed=5)
    sage.upload(
        f"{job}/in/part-1.csv",
        "".join(",".join(str(v) for v in row) + "\n" for row in rows).encode(),
    )
    sm.create_transform_job(
        TransformJobName=job,
        ModelName=sm_models["xgb"],
        MaxPayloadInMB=6,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{sage.bucket}/{job}/in/"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{sage.bucket}/{job}/out/", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    )
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName=job, WaiterConfig=FAST
    )
    described = sm.describe_transform_job(TransformJobName=job)
    assert described["TransformJobStatus"] == "Completed", described
    assert described["ModelName"] == sm_models["xgb"]
    assert described["TransformEndTime"] >= described["CreationTime"]
    out = sage.s3.get_object(Bucket=sage.bucket, Key=f"{job}/out/part-1.csv.out")["Body"].read()
    got = [float(line) for line in out.decode().splitlines()]
    models.assert_close(got, models.predict_xgboost(model_files["xgb"], rows))
    summaries = sm.list_transform_jobs(NameContains=job)["TransformJobSummaries"]
    assert [(s["TransformJobName"], s["TransformJobStatus"]) for s in summaries] == [
        (job, "Completed")
    ]
    with pytest.raises(ClientError) as caught:
        sm.create_transform_job(
            TransformJobName=job,
            ModelName=sm_models["xgb"],
            TransformInput={
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{sage.bucket}/{job}/in/",
                    }
                }
            },
            TransformOutput={"S3OutputPath": f"s3://{sage.bucket}/{job}/out2/"},
            TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        )
    assert caught.value.response["Error"]["Code"] == "ResourceInUse"


def test_multi_model_endpoint_with_target_model(
    sage: Sage, model_files: dict[str, Path], tmp_path: Path
) -> None:
    """Flow (c): a `Mode: MultiModel` model over an S3 prefix, each call's model by TargetModel."""
    sm, runtime = sage.client("sagemaker"), sage.client("sagemaker-runtime")
    prefix, name = unique("cities"), unique("Cities")
    paris = models.build_xgboost(tmp_path / "paris.json", seed=5)
    sage.upload(f"{prefix}/chicago.json", model_files["xgb"])
    sage.upload(f"{prefix}/eu/paris.json", paris)
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": XGB_IMAGE,
            "ModelDataUrl": f"s3://{sage.bucket}/{prefix}/",
            "Mode": "MultiModel",
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
    )
    assert sm.describe_model(ModelName=name)["PrimaryContainer"]["Mode"] == "MultiModel"
    config, endpoint = unique("mme-config"), unique("mme")
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.xlarge"}
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST)

    rows = models.random_rows(3, seed=13)
    for target, artifact in (("chicago.json", model_files["xgb"]), ("eu/paris.json", paris)):
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetModel=target,
            ContentType="application/json",
            Body=_json(rows),
        )
        assert answer["InvokedProductionVariant"] == "AllTraffic"
        predictions = orjson.loads(answer["Body"].read())["predictions"]
        models.assert_close(predictions, models.predict_xgboost(artifact, rows))
    with pytest.raises(ClientError) as untargeted:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=b"1,2,3,4")
    assert _code(untargeted) == ("ValidationError", 400)
    assert "TargetModel" in str(untargeted.value) or "X-Target-Model" in str(untargeted.value)
    with pytest.raises(ClientError) as transform:
        sm.create_transform_job(
            TransformJobName=unique("mme-job"),
            ModelName=name,
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{sage.bucket}/in/"}
                }
            },
            TransformOutput={"S3OutputPath": f"s3://{sage.bucket}/out/"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        )
    assert "runs a single model" in str(transform.value)
    sm.delete_endpoint(EndpointName=endpoint)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=endpoint, WaiterConfig=FAST)
    sm.delete_endpoint_config(EndpointConfigName=config)
    sm.delete_model(ModelName=name)


def test_a_serial_inference_pipeline_and_direct_container_calls(
    sage: Sage, model_files: dict[str, Path], tmp_path: Path
) -> None:
    """Flow (d): CreateModel with three Containers (python prep → xgboost → python post).
    Mode Serial answers as the three containers called by hand, one after the other; on
    a Direct model, TargetContainerHostname calls one container alone."""
    sm, runtime = sage.client("sagemaker"), sage.client("sagemaker-runtime")
    prefix = unique("pipeline")
    handler = {"SAGEMAKER_PROGRAM": "handler.py"}
    containers = [
        {
            "ContainerHostname": "prep",
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": sage.upload(
                f"{prefix}/prep.tar.gz", bundle(tmp_path / "prep.tar.gz", PREP)
            ),
            "Environment": handler,
        },
        {
            "ContainerHostname": "xgb",
            "Image": XGB_IMAGE,
            "ModelDataUrl": sage.upload(f"{prefix}/model.json", model_files["xgb"]),
        },
        {
            "ContainerHostname": "post",
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": sage.upload(
                f"{prefix}/post.tar.gz", bundle(tmp_path / "post.tar.gz", POST)
            ),
            "Environment": handler,
        },
    ]
    serial, direct = unique("Serial"), unique("Direct")
    for name, mode in ((serial, "Serial"), (direct, "Direct")):
        sm.create_model(
            ModelName=name,
            Containers=containers,
            InferenceExecutionConfig={"Mode": mode},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
        )
    described = sm.describe_model(ModelName=direct)
    assert described["InferenceExecutionConfig"] == {"Mode": "Direct"}
    assert [c["ContainerHostname"] for c in described["Containers"]] == ["prep", "xgb", "post"]
    with sage.native() as native:
        shown = native.get(f"/v1/models/{serial}").json()
    assert shown["framework"] == "pipeline"
    assert [(s["name"], s["model"]) for s in shown["steps"]] == [
        (step, f"{serial}-{step}") for step in ("prep", "xgb", "post")
    ]

    config, endpoint = unique("pipeline-config"), unique("pipeline")
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {"VariantName": mode, "ModelName": name, "InstanceType": "ml.m5.xlarge"}
            for name, mode in ((serial, "Serial"), (direct, "Direct"))
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST)
    deployed = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"][0]
    assert [i["SpecifiedImage"] for i in deployed["DeployedImages"]] == [
        c["Image"] for c in containers
    ]

    rows = models.random_rows(3, seed=17)
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        TargetVariant="Serial",
        ContentType="application/json",
        Body=_json(rows),
    )
    assert answer["InvokedProductionVariant"] == "Serial"
    got = orjson.loads(answer["Body"].read())["scored"]
    expected = post(models.predict_xgboost(model_files["xgb"], prep(rows)))
    models.assert_close([p for p, _ in got], [p for p, _ in expected])
    assert [label for _, label in got] == [label for _, label in expected]
    for hostname, by_hand in (
        ("xgb", models.predict_xgboost(model_files["xgb"], rows)),
        ("prep", prep(rows)),
    ):
        alone = runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetVariant="Direct",
            TargetContainerHostname=hostname,
            ContentType="application/json",
            Body=_json(rows),
        )
        models.assert_close(orjson.loads(alone["Body"].read())["predictions"], by_hand)
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetVariant="Direct",
            TargetContainerHostname="scale",
            ContentType="application/json",
            Body=_json(rows),
        )
    assert _code(unknown) == ("ValidationError", 400)
    assert "'prep', 'xgb', 'post'" in unknown.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as nameless:
        sm.create_model(
            ModelName=unique("Nameless"),
            Containers=[
                {k: v for k, v in c.items() if k != "ContainerHostname"} for c in containers
            ],
            InferenceExecutionConfig={"Mode": "Direct"},
        )
    assert _code(nameless) == ("ValidationException", 400)
    assert "ContainerHostname" in nameless.value.response["Error"]["Message"]
    sm.delete_endpoint(EndpointName=endpoint)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=endpoint, WaiterConfig=FAST)
    sm.delete_endpoint_config(EndpointConfigName=config)
    for name in (serial, direct):
        sm.delete_model(ModelName=name)


def test_update_endpoint_with_a_canary_deployment(
    sage: Sage, sm_models: dict[str, str], model_files: dict[str, Path]
) -> None:
    """Flow (f): UpdateEndpoint to a config of another model with a canary DeploymentConfig
    and rollback alarms; the endpoint_in_service waiter waits for it to finish."""
    sm, runtime = sage.client("sagemaker"), sage.client("sagemaker-runtime")
    endpoint, configs = unique("canary"), [unique("canary-v1"), unique("canary-v2")]
    for config, model in zip(configs, (sm_models["xgb"], sm_models["torch"]), strict=True):
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": model,
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
        }
        # v2 also shadows the old model with half of the requests (weight 1 beside 2).
        shadows = (
            [{**variant, "VariantName": "Shadow", "ModelName": sm_models["xgb"]}]
            if config == configs[1]
            else []
        )
        sm.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[{**variant, "InitialVariantWeight": 2}],
            **({"ShadowProductionVariants": shadows} if shadows else {}),
        )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=configs[0])
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST)
    sm.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=configs[1],
        DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                    "WaitIntervalInSeconds": 1,
                },
                "TerminationWaitInSeconds": 0,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [
                    {"AlarmName": "error_rate_percent=50"},
                    {"AlarmName": "min_requests=100"},
                ]
            },
        },
    )
    with sage.native() as native:
        (deployment, *_) = native.get(f"/v1/endpoints/{endpoint}/deployments").json()
    assert (deployment["strategy"], deployment["deployment"]["canary_percent"]) == ("canary", 50)
    assert deployment["deployment"]["rollback_on"]["error_rate_percent"] == 50
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == configs[1]
    (serving,) = described["ProductionVariants"]
    assert serving["DeployedImages"] == [{"SpecifiedImage": TORCH_IMAGE}]
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["Shadow"]
    with sage.native() as native:
        (shadow,) = native.get(f"/v1/endpoints/{endpoint}").json()["shadow_variants"]
    assert (shadow["name"], shadow["sampling_percent"]) == ("Shadow", 50.0)
    rows = models.random_rows(2, seed=17)
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=_json(rows)
    )
    predictions = orjson.loads(answer["Body"].read())["predictions"]
    models.assert_close(predictions, models.predict_torch(model_files["picky"], rows))
    with pytest.raises(ClientError) as alarm:
        sm.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=configs[0],
            DeploymentConfig={"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "HighP99"}]}},
        )
    assert _code(alarm) == ("ValidationException", 400)
    assert "HighP99" in str(alarm.value)
    sm.delete_endpoint(EndpointName=endpoint)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=endpoint, WaiterConfig=FAST)
    for config in configs:
        sm.delete_endpoint_config(EndpointConfigName=config)


def test_inference_components_on_an_endpoint_without_variant_models(
    sage: Sage, sm_models: dict[str, str], model_files: dict[str, Path]
) -> None:
    """Flow (e): a config whose variant names no model, two components on its endpoint,
    each invoked by InferenceComponentName, a copy count raised, then deleted."""
    sm, runtime = sage.client("sagemaker"), sage.client("sagemaker-runtime")
    config, endpoint = unique("ic-config"), unique("ic")
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "InstanceType": "ml.m5.xlarge",
                "InitialInstanceCount": 1,
                "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
            }
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST)
    names = {kind: unique(f"ic-{kind}") for kind in ("xgb", "torch")}
    for kind, name in names.items():
        arn = sm.create_inference_component(
            InferenceComponentName=name,
            EndpointName=endpoint,
            VariantName="AllTraffic",
            Specification={
                "ModelName": sm_models[kind],
                "ComputeResourceRequirements": {
                    "NumberOfCpuCoresRequired": 0.5,
                    "MinMemoryRequiredInMb": 256,
                },
            },
            RuntimeConfig={"CopyCount": 1},
        )["InferenceComponentArn"]
        assert arn.endswith(f":inference-component/{name.lower()}")

    described = sm.describe_inference_component(InferenceComponentName=names["xgb"])
    assert described["InferenceComponentStatus"] == "InService"
    assert (described["EndpointName"], described["VariantName"]) == (endpoint, "AllTraffic")
    assert described["Specification"]["ModelName"] == sm_models["xgb"]
    assert described["Specification"]["ComputeResourceRequirements"] == {
        "NumberOfCpuCoresRequired": 0.5,
        "MinMemoryRequiredInMb": 256,
    }
    variants = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    assert [v["VariantName"] for v in variants] == ["AllTraffic"]

    rows = models.random_rows(3, seed=11)
    for kind, name in names.items():
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint,
            InferenceComponentName=name,
            ContentType="application/json",
            Body=_json(rows),
        )
        predictions = orjson.loads(answer["Body"].read())["predictions"]
        if kind == "xgb":
            models.assert_close(predictions, models.predict_xgboost(model_files["xgb"], rows))
        else:
            models.assert_close(predictions, models.predict_torch(model_files["picky"], rows))
    with pytest.raises(ClientError) as no_component:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=b"1,2,3,4")
    assert _code(no_component) == ("ValidationError", 400)

    # CopyCount 2: copies min = max = 2; the scaler's desired follows at its next tick.
    sm.update_inference_component_runtime_config(
        InferenceComponentName=names["xgb"], DesiredRuntimeConfig={"CopyCount": 2}
    )
    wait_for(
        lambda: (
            sm.describe_inference_component(InferenceComponentName=names["xgb"])["RuntimeConfig"][
                "DesiredCopyCount"
            ]
            == 2
        ),
        timeout_s=30,
        what="DesiredCopyCount 2",
    )
    sm.update_inference_component(
        InferenceComponentName=names["torch"],
        Specification={
            "ComputeResourceRequirements": {
                "NumberOfCpuCoresRequired": 1,
                "MinMemoryRequiredInMb": 512,
            }
        },
    )
    with sage.native() as native:
        natives = {c["name"]: c for c in native.get(f"/v1/endpoints/{endpoint}/components").json()}
    xgb_copies = natives[names["xgb"]]["copies"]
    assert (xgb_copies["min"], xgb_copies["max"]) == (2, 2)
    assert natives[names["torch"]]["compute"]["cpu_cores"] == 1.0
    assert natives[names["torch"]]["compute"]["memory_mb"] == 512
    listed = sm.list_inference_components(EndpointNameEquals=endpoint, SortBy="Name")
    assert [c["InferenceComponentName"] for c in listed["InferenceComponents"]] == sorted(
        names.values(), reverse=True
    )

    # Refusals name what is wrong and change nothing.
    with pytest.raises(ClientError) as again:
        sm.create_inference_component(
            InferenceComponentName=names["xgb"],
            EndpointName=endpoint,
            Specification={
                "ModelName": sm_models["xgb"],
                "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 256},
            },
            RuntimeConfig={"CopyCount": 1},
        )
    assert "Cannot create already existing inference component" in str(again.value)
    with pytest.raises(ClientError) as half_gpu:
        sm.update_inference_component(
            InferenceComponentName=names["xgb"],
            Specification={
                "ComputeResourceRequirements": {
                    "NumberOfAcceleratorDevicesRequired": 1.5,
                    "MinMemoryRequiredInMb": 256,
                }
            },
        )
    assert _code(half_gpu) == ("ValidationException", 400)
    assert "whole GPUs" in str(half_gpu.value)
    with pytest.raises(ClientError) as nowhere:
        sm.create_inference_component(
            InferenceComponentName=unique("ic-none"),
            EndpointName=unique("no-such-endpoint"),
            Specification={
                "ModelName": sm_models["xgb"],
                "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 256},
            },
            RuntimeConfig={"CopyCount": 1},
        )
    assert "Could not find endpoint" in str(nowhere.value)

    sm.delete_inference_component(InferenceComponentName=names["torch"])
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            InferenceComponentName=names["torch"],
            ContentType="application/json",
            Body=_json(rows),
        )
    sm.delete_endpoint(EndpointName=endpoint)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=endpoint, WaiterConfig=FAST)
    with pytest.raises(ClientError) as gone:
        sm.describe_inference_component(InferenceComponentName=names["xgb"])
    assert "Could not find inference component" in str(gone.value)
    assert sm.list_inference_components(EndpointNameEquals=endpoint)["InferenceComponents"] == []
    sm.delete_endpoint_config(EndpointConfigName=config)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_errors_come_in_aws_shape(sage: Sage, sm_models: dict[str, str]) -> None:
    sm, runtime = sage.client("sagemaker"), sage.client("sagemaker-runtime")
    missing = unique("missing")
    with pytest.raises(ClientError) as caught:
        sm.describe_endpoint(EndpointName=missing)
    assert _code(caught) == ("ValidationException", 400)
    assert f'endpoint/{missing}"' in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=missing, ContentType="text/csv", Body=b"1,2,3,4")
    assert _code(caught) == ("ValidationError", 400)
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_transform_job(TransformJobName=missing)

    # Fields and operations Sluiceway does not take are named, never ignored.
    variant = {"VariantName": "A", "ModelName": sm_models["xgb"], "InstanceType": "ml.m5.large"}
    with pytest.raises(ClientError) as caught:
        sm.create_endpoint_config(
            EndpointConfigName=unique("serverless"),
            ProductionVariants=[
                {**variant, "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}
            ],
        )
    assert _code(caught) == ("ValidationException", 400)
    assert "ServerlessConfig" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        sm.update_endpoint(EndpointName=missing, EndpointConfigName=missing)
    assert "Could not find endpoint configuration" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(
            EndpointName=missing, ContentType="text/csv", CustomAttributes="a=1", Body=b"1,2,3,4"
        )
    assert _code(caught) == ("ValidationError", 400)
    assert "CustomAttributes" in caught.value.response["Error"]["Message"]

    # Auth on: a wrong secret, an unknown key and a too-small scope are 403s in AWS shape.
    key_id = sage.credentials(sage.admin_key)["aws_access_key_id"]
    forged = sage.client("sagemaker", aws_access_key_id=key_id, aws_secret_access_key="wrong")
    with pytest.raises(ClientError) as caught:
        forged.list_endpoints()
    assert _code(caught) == ("InvalidSignatureException", 403)
    stranger = sage.client(
        "sagemaker-runtime", aws_access_key_id="nobody", aws_secret_access_key="x"
    )
    with pytest.raises(ClientError) as caught:
        stranger.invoke_endpoint(EndpointName=missing, ContentType="text/csv", Body=b"1,2,3,4")
    assert _code(caught) == ("UnrecognizedClientException", 403)
    with pytest.raises(ClientError) as caught:
        sage.client("sagemaker", sage.invoke_key).list_models()
    assert _code(caught) == ("AccessDeniedException", 403)
    unsigned = httpx.post(
        f"{sage.stack.api_url}/",
        headers={
            "X-Amz-Target": "SageMaker.ListModels",
            "Content-Type": "application/x-amz-json-1.1",
        },
        content=b"{}",
    )
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_the_readme_example_runs(
    sage: Sage,
    sm_models: dict[str, str],
    model_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README.md's boto3 block, as written, with the key's id and secret as credentials."""
    sm = sage.client("sagemaker")
    endpoint = unique("readme")
    sm.create_endpoint_config(
        EndpointConfigName=endpoint,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": sm_models["xgb"],
                "InstanceType": "ml.t2.medium",
            }
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    readme = (REPO / "README.md").read_text()
    block = readme.split("## SageMaker code, unchanged", 1)[1].split("```python\n", 1)[1]
    code = block.split("```", 1)[0]
    credentials = sage.credentials(sage.invoke_key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    code = code.replace("http://127.0.0.1:8000", sage.stack.api_url).replace(
        '"churn"', f'"{endpoint}"'
    )
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("b'") and printed.rstrip().endswith("AllTraffic"), printed
    (expected,) = models.predict_xgboost(model_files["xgb"], [[0.1, 0.2, 0.3, 0.4]])
    assert float(printed[2:].split("\\n")[0]) == pytest.approx(expected, rel=1e-5)

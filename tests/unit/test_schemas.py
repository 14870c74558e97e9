"""Request schemas: what the API accepts and the messages it gives for what it refuses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from api.schemas import (
    AsyncPublic,
    Batching,
    ComponentCreate,
    DataCapture,
    EndpointCreate,
    EndpointPublic,
    ModelCreate,
    TransformJobCreate,
    VariantCreate,
    VariantPatch,
    WeightsPatch,
)


def _variant(**fields: Any) -> dict[str, Any]:
    return {"name": "a", "model": "churn-xgb", **fields}


def _endpoint(*variants: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "churn", "variants": list(variants) or [_variant()], **fields}


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value)


# --- names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a", "churn", "churn-v2", "0abc", "a" * 63, "9-9", "AllTraffic", "Variant1", "a--b"]
)
def test_good_names_are_accepted(name: str) -> None:
    """SageMaker's rule, case-sensitive: boto3 code names variants `AllTraffic`."""
    spec = EndpointCreate.model_validate(_endpoint(_variant(name=name, model=name), name=name))
    assert spec.name == name and spec.variants[0].name == name


@pytest.mark.parametrize(
    "name", ["", "-churn", "churn-", "churn_v2", "churn.v2", "a" * 64, "ch urn", "chürn"]
)
@pytest.mark.parametrize("where", ["endpoint", "variant", "model"])
def test_bad_names_are_refused_wherever_they_appear(name: str, where: str) -> None:
    variant = _variant(**({"name": name} if where == "variant" else {}))
    if where == "model":
        variant["model"] = name
    spec = _endpoint(variant, **({"name": name} if where == "endpoint" else {}))
    with pytest.raises(ValidationError, match=r"should match pattern|at most 63 characters"):
        EndpointCreate.model_validate(spec)


# --- variants ---------------------------------------------------------------------


def test_defaults_of_a_variant() -> None:
    variant = EndpointCreate.model_validate(_endpoint()).variants[0]
    assert variant.model_version is None
    assert variant.weight == 1.0
    assert variant.accelerator == "cpu"
    assert (variant.min_workers, variant.max_workers) == (0, 1)
    assert variant.batching == Batching(max_batch_size=1, max_delay_ms=0.0)


def test_duplicate_variant_names_are_refused_and_named() -> None:
    spec = _endpoint(_variant(name="a"), _variant(name="b"), _variant(name="a"))
    with pytest.raises(ValidationError) as caught:
        EndpointCreate.model_validate(spec)
    assert "variant names must be unique, repeated: ['a']" in _errors(caught)


@pytest.mark.parametrize(("low", "high"), [(2, 1), (5, 0), (1024, 3)])
def test_max_workers_below_min_workers_is_refused(low: int, high: int) -> None:
    with pytest.raises(ValidationError) as caught:
        VariantCreate.model_validate(_variant(min_workers=low, max_workers=high))
    assert f"max_workers {high} is below min_workers {low}" in _errors(caught)


@pytest.mark.parametrize(("low", "high"), [(0, 0), (2, 2), (0, 1024)])
def test_max_workers_at_or_above_min_workers_is_fine(low: int, high: int) -> None:
    variant = VariantCreate.model_validate(_variant(min_workers=low, max_workers=high))
    assert (variant.min_workers, variant.max_workers) == (low, high)


@pytest.mark.parametrize(
    "fields",
    [
        {"min_workers": -1},
        {"max_workers": 1025},
        {"weight": -0.5},
        {"model_version": 0},
        {"accelerator": "tpu"},
        {"colour": "blue"},
    ],
    ids=["negative-min", "huge-max", "negative-weight", "version-0", "tpu", "unknown-field"],
)
def test_out_of_range_variant_fields_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VariantCreate.model_validate(_variant(**fields))


def test_all_zero_weights_are_refused() -> None:
    spec = _endpoint(_variant(name="a", weight=0), _variant(name="b", weight=0))
    with pytest.raises(ValidationError, match="at least one variant needs a weight above 0"):
        EndpointCreate.model_validate(spec)


def test_one_zero_weight_among_others_is_fine() -> None:
    spec = _endpoint(_variant(name="a", weight=0), _variant(name="b", weight=2))
    assert [v.weight for v in EndpointCreate.model_validate(spec).variants] == [0, 2]


def test_variant_count_is_bounded() -> None:
    spec = {"name": "churn", "variants": [_variant(name=f"v{i}") for i in range(17)]}
    with pytest.raises(ValidationError):
        EndpointCreate.model_validate(spec)


@pytest.mark.parametrize("spec", [{"name": "churn"}, {"name": "churn", "variants": []}])
def test_an_endpoint_of_components_only_has_no_variants(spec: dict[str, Any]) -> None:
    assert EndpointCreate.model_validate(spec).variants == []


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"copies": {"min": 3, "max": 1}}, "copies.max 1 is below copies.min 3"),
        ({"compute": {"cpu_cores": 0}}, "cpu_cores"),
        ({"compute": {"cpu_cores": "1"}}, "cpu_cores"),
        ({"compute": {"gpus": -1}}, "gpus"),
        ({"scaling": {"metric": "latency"}}, "metric"),
        ({"scaling": {"target": 0}}, "target"),
        ({"priority": 101}, "priority"),
        ({"weight": 1}, "weight"),
    ],
    ids=[
        "crossed-copies",
        "zero-cores",
        "cores-as-text",
        "negative-gpus",
        "metric",
        "target",
        "priority",
        "unknown-field",
    ],
)
def test_bad_component_specs_are_refused(spec: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named.replace(".", r"\.")):
        ComponentCreate.model_validate({"name": "small", "model": "m", **spec})


def test_component_defaults() -> None:
    spec = ComponentCreate.model_validate({"name": "small", "model": "m"})
    assert (spec.compute.cpu_cores, spec.copies.min, spec.copies.max) == (1.0, 0, 1)
    assert spec.scaling.metric == "backlog_per_copy"


# --- batching ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "batching",
    [
        {"max_batch_size": 1, "max_delay_ms": 0},
        {"max_batch_size": 4096, "max_delay_ms": 10_000},
        {"max_batch_size": 64, "max_delay_ms": 2.5},
    ],
)
def test_batching_within_bounds(batching: dict[str, Any]) -> None:
    assert Batching.model_validate(batching).model_dump() == batching


@pytest.mark.parametrize(
    ("batching", "field"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 4097}, "max_batch_size"),
        ({"max_batch_size": -3}, "max_batch_size"),
        ({"max_delay_ms": -1}, "max_delay_ms"),
        ({"max_delay_ms": 10_000.5}, "max_delay_ms"),
        ({"max_batch_size": 8, "max_wait_ms": 5}, "max_wait_ms"),
    ],
)
def test_batching_out_of_bounds_names_the_field(batching: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EndpointCreate.model_validate(_endpoint(_variant(batching=batching)))
    assert field in _errors(caught)


# --- the "async" block --------------------------------------------------------------


def test_async_block_is_read_under_its_json_name() -> None:
    spec = EndpointCreate.model_validate(
        _endpoint(
            **{
                "async": {
                    "output_prefix": "s3://sluiceway-results/churn/",
                    "success_topic": "churn-ok",
                    "error_topic": "churn-err",
                }
            }
        )
    )
    assert spec.async_.output_prefix == "s3://sluiceway-results/churn/"
    assert spec.async_.success_topic == "churn-ok"
    assert spec.async_.error_topic == "churn-err"


def test_async_block_defaults_to_nothing() -> None:
    spec = EndpointCreate.model_validate(_endpoint())
    assert spec.async_.output_prefix is None
    assert spec.async_.success_topic is None
    assert spec.async_.failure_prefix is None
    assert spec.async_.invocation_timeout_s == 900  # SageMaker's default
    assert spec.async_.max_concurrent_invocations_per_worker is None


def test_async_options_are_read() -> None:
    block = {
        "failure_prefix": "s3://errors/churn/",
        "invocation_timeout_s": 3600,
        "max_concurrent_invocations_per_worker": 4,
    }
    spec = EndpointCreate.model_validate(_endpoint(**{"async": block}))
    assert spec.async_.model_dump(include=set(block)) == block


@pytest.mark.parametrize(
    "block",
    [
        {"output_prefix": "http://bucket/prefix/"},
        {"output_prefix": "s3://"},
        {"output_prefix": "s3://UPPER/prefix/"},
        {"success_topic": "Bad Topic"},
        {"retries": 3},
        {"failure_prefix": "https://bucket/errors/"},
        {"invocation_timeout_s": 3601},
        {"invocation_timeout_s": 0},
        {"invocation_timeout_s": "60"},
        {"max_concurrent_invocations_per_worker": 0},
        {"max_concurrent_invocations_per_worker": True},
    ],
    ids=[
        "not-s3",
        "no-bucket",
        "bad-bucket",
        "bad-topic",
        "unknown-field",
        "failure-prefix-not-s3",
        "timeout-above-an-hour",
        "timeout-zero",
        "timeout-as-a-string",
        "no-concurrency",
        "concurrency-as-a-boolean",
    ],
)
def test_bad_async_blocks_are_refused(block: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EndpointCreate.model_validate(_endpoint(**{"async": block}))


def test_public_endpoint_serializes_the_async_block_as_async() -> None:
    now = dt.datetime.now(dt.UTC)
    public = EndpointPublic(
        name="churn",
        status="in_service",
        variants=[],
        async_=AsyncPublic(output_prefix="s3://r/churn/", success_topic=None, error_topic=None),
        created_at=now,
        updated_at=now,
    )
    dumped = public.model_dump(by_alias=True)
    assert "async" in dumped and "async_" not in dumped
    assert dumped["async"]["output_prefix"] == "s3://r/churn/"


# --- models and patches -------------------------------------------------------------


@pytest.mark.parametrize("framework", ["xgboost", "torch", "python"])
def test_model_create_accepts_each_framework(framework: str) -> None:
    spec = ModelCreate.model_validate(
        {"name": "m", "framework": framework, "artifact_uri": "s3://bucket/models/m.bin"}
    )
    assert spec.framework == framework


@pytest.mark.parametrize(
    "fields",
    [
        {"framework": "onnx"},
        {"artifact_uri": "https://bucket/models/m.bin"},
        {"artifact_uri": "/tmp/m.bin"},
        {"name": "Model-"},
        {"sha": "abc"},
    ],
    ids=["framework", "http-uri", "path", "name", "unknown-field"],
)
def test_model_create_refuses(fields: dict[str, Any]) -> None:
    spec = {"name": "m", "framework": "torch", "artifact_uri": "s3://bucket/m.pt", **fields}
    with pytest.raises(ValidationError):
        ModelCreate.model_validate(spec)


@pytest.mark.parametrize(
    "patch",
    [
        {"min_workers": -1},
        {"max_workers": 2000},
        {"batching": {"max_batch_size": 0}},
        {"weight": 3},
    ],
    ids=["negative-min", "huge-max", "batch-0", "unknown-field"],
)
def test_variant_patch_refuses(patch: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VariantPatch.model_validate(patch)


def test_empty_variant_patch_changes_nothing() -> None:
    patch = VariantPatch.model_validate({})
    assert patch.batching is None and patch.min_workers is None and patch.max_workers is None


@pytest.mark.parametrize(
    "patch",
    [
        {"variants": []},
        {"variants": [{"name": "a", "weight": -1}]},
        {"variants": [{"name": "A_b", "weight": 1}]},
        {"variants": [{"name": "a"}]},
    ],
    ids=["empty", "negative", "bad-name", "no-weight"],
)
def test_weights_patch_refuses(patch: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WeightsPatch.model_validate(patch)


# --- s3:// locations and batch transform ---------------------------------------------


def _transform(**fields: Any) -> dict[str, Any]:
    return {
        "endpoint": "churn",
        "input_prefix": "s3://data/in/",
        "output_prefix": "s3://data/out/",
        **fields,
    }


@pytest.mark.parametrize(
    "prefix", ["s3://data/in#v2/", "s3://data/q?x=1", "s3://data/a b/", "s3://data/é\n/"]
)
def test_locations_keep_any_key_s3_takes(prefix: str) -> None:
    assert TransformJobCreate.model_validate(_transform(input_prefix=prefix)).input_prefix == prefix
    block = {"output_prefix": prefix}
    assert (
        EndpointCreate.model_validate(_endpoint(**{"async": block})).async_.output_prefix == prefix
    )


@pytest.mark.parametrize(
    ("prefix", "named"),
    [("s3://a..b/in/", "not a valid S3 bucket name"), ("s3://data/a\x00b", "NUL")],
)
def test_locations_s3_refuses_are_refused_saying_why(prefix: str, named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        TransformJobCreate.model_validate(_transform(input_prefix=prefix))


def test_a_transform_job_fails_on_any_failed_record_by_default() -> None:
    assert TransformJobCreate.model_validate(_transform()).max_failed_records_percent == 0
    spec = TransformJobCreate.model_validate(_transform(max_failed_records_percent=12.5))
    assert spec.max_failed_records_percent == 12.5


@pytest.mark.parametrize("percent", [-1, 100.5, "lots"])
def test_max_failed_records_percent_is_a_share_from_0_to_100(percent: Any) -> None:
    with pytest.raises(ValidationError, match="max_failed_records_percent"):
        TransformJobCreate.model_validate(_transform(max_failed_records_percent=percent))


@pytest.mark.parametrize(
    "capture",
    [
        {"enabled": True, "sampling_percent": False, "destination": "s3://bucket/c/"},
        {"enabled": True, "sampling_percent": "50", "destination": "s3://bucket/c/"},
        {"enabled": "yes", "destination": "s3://bucket/c/"},
    ],
)
def test_numbers_and_booleans_must_be_sent_as_themselves(capture: dict[str, Any]) -> None:
    """Regression (schemathesis): `"sampling_percent": false` was accepted as 0."""
    with pytest.raises(ValidationError):
        DataCapture.model_validate(capture)


def test_a_whole_number_is_still_a_float() -> None:
    capture = DataCapture.model_validate({"sampling_percent": 50, "destination": "s3://bucket/c/"})
    assert capture.sampling_percent == 50.0

"""The control plane over real services: model registration and versions, endpoints,
weights and variant settings. Every refusal is a problem+json 4xx, never a 500."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from core.broker import queue_name, workers_per_queue
from tests.integration import models
from tests.integration.conftest import Stack, create_endpoint, register, unique, wait_for
from tests.integration.test_errors import assert_problem, checked

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with checked(stack.client()) as client:
        yield client


@pytest.fixture(scope="module")
def artifacts(
    model_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """One real artifact per framework."""
    bundle = models.build_slow_handler(
        tmp_path_factory.mktemp("bundle") / "handler.tar.gz", delay_s=0
    )
    return {"torch": model_files["torch"], "xgboost": model_files["xgb"], "python": bundle}


def _upload(client: httpx.Client, path: Path | None, **fields: str) -> httpx.Response:
    files = {"file": (path.name, path.read_bytes(), "application/octet-stream")} if path else None
    return client.post("/v1/models", data=fields, files=files)


def _put_object(s3: Any, data: bytes) -> str:
    bucket = unique("artifacts")
    s3.client().make_bucket(bucket)
    s3.client().put_object(bucket, "models/m.bin", io.BytesIO(data), len(data))
    return f"s3://{bucket}/models/m.bin"


def _s3_bytes(s3: Any, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    data: bytes = s3.client().get_object(bucket, key).read()
    return data


# --- models: registration --------------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "xgboost", "python"])
def test_upload_creates_version_1_and_stores_the_artifact(
    client: httpx.Client, s3: Any, artifacts: dict[str, Path], framework: str
) -> None:
    name = unique(f"m-{framework[:2]}")
    path = artifacts[framework]
    response = _upload(client, path, name=name, framework=framework)
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["name"] == name
    assert version["version"] == 1
    assert version["framework"] == framework
    assert version["created_at"]
    assert version["artifact_uri"].startswith("s3://")
    data = path.read_bytes()
    assert version["size_bytes"] == len(data)
    assert version["sha256"] == hashlib.sha256(data).hexdigest()
    assert _s3_bytes(s3, version["artifact_uri"]) == data


def test_registering_again_adds_version_2_and_both_are_listed(
    client: httpx.Client, model_files: dict[str, Path]
) -> None:
    name = unique("twice")
    first = register(client, name, "torch", model_files["torch"])
    second = register(client, name, "torch", model_files["picky"])
    assert (first["version"], second["version"]) == (1, 2)
    assert first["artifact_uri"] != second["artifact_uri"]

    one = client.get(f"/v1/models/{name}")
    assert one.status_code == 200, one.text
    model = one.json()
    assert model["name"] == name
    assert model["latest_version"] == 2
    assert model["framework"] == "torch"
    assert [v["version"] for v in model["versions"]] == [1, 2]
    assert [v["artifact_uri"] for v in model["versions"]] == [
        first["artifact_uri"],
        second["artifact_uri"],
    ]

    listed = client.get("/v1/models")
    assert listed.status_code == 200
    mine = [m for m in listed.json() if m["name"] == name]
    assert len(mine) == 1
    assert mine[0]["latest_version"] == 2


def test_json_registration_of_an_existing_object(
    client: httpx.Client, s3: Any, model_files: dict[str, Path]
) -> None:
    data = model_files["xgb"].read_bytes()
    uri = _put_object(s3, data)
    name = unique("byuri")
    response = client.post(
        "/v1/models", json={"name": name, "framework": "xgboost", "artifact_uri": uri}
    )
    assert response.status_code == 201, response.text
    version = response.json()
    assert (version["name"], version["version"], version["framework"]) == (name, 1, "xgboost")
    assert version["artifact_uri"] == uri
    assert version["size_bytes"] == len(data)
    assert client.get(f"/v1/models/{name}").json()["versions"][0]["artifact_uri"] == uri


def test_a_model_registered_by_uri_serves_predictions(
    client: httpx.Client, s3: Any, model_files: dict[str, Path]
) -> None:
    uri = _put_object(s3, model_files["xgb"].read_bytes())
    name = unique("byuri")
    registered = client.post(
        "/v1/models", json={"name": name, "framework": "xgboost", "artifact_uri": uri}
    )
    assert registered.status_code == 201, registered.text
    endpoint = create_endpoint(
        client, {"name": unique("byuri"), "variants": [{"name": "a", "model": name}]}
    )
    rows = models.random_rows(3, seed=31)
    response = client.post(
        f"/v1/endpoints/{endpoint['name']}/invocations", json={"instances": rows}
    )
    assert response.status_code == 200, response.text
    expected = models.predict_xgboost(model_files["xgb"], rows)
    models.assert_close(response.json()["predictions"], expected)


@pytest.mark.parametrize(
    "uri",
    ["s3://{bucket}/models/absent.bin", "s3://absent-{suffix}/models/m.bin"],
    ids=["missing-key", "missing-bucket"],
)
def test_json_registration_of_a_missing_object_is_422(
    client: httpx.Client, s3: Any, uri: str
) -> None:
    bucket = _put_object(s3, b"{}").removeprefix("s3://").split("/")[0]
    uri = uri.format(bucket=bucket, suffix=unique("b"))
    name = unique("ghost")
    response = client.post(
        "/v1/models", json={"name": name, "framework": "xgboost", "artifact_uri": uri}
    )
    assert_problem(response, 422, repr(uri), "does not exist")
    assert_problem(client.get(f"/v1/models/{name}"), 404)


IMPOSSIBLE_BUCKETS = ["a..b", "192.168.1.10", "a.-b"]


@pytest.mark.parametrize("bucket", IMPOSSIBLE_BUCKETS)
def test_json_registration_with_an_impossible_bucket_name_is_422(
    client: httpx.Client, bucket: str
) -> None:
    """Regression: such names pass the schema's pattern, then the minio SDK refuses
    them with a ValueError that nothing mapped, so the caller got a 500."""
    uri = f"s3://{bucket}/models/m.bin"
    response = client.post(
        "/v1/models", json={"name": unique("bad"), "framework": "torch", "artifact_uri": uri}
    )
    assert_problem(response, 422, bucket)


@pytest.mark.parametrize(
    ("file_of", "framework", "expected"),
    [
        ("torch", "xgboost", "saved Booster"),
        ("torch", "python", ".tar.gz"),
        ("xgboost", "torch", "TorchScript"),
        ("xgboost", "python", ".tar.gz"),
        ("python", "torch", "TorchScript"),
        ("python", "xgboost", "saved Booster"),
    ],
)
@pytest.mark.parametrize("how", ["upload", "uri"])
def test_a_file_of_another_framework_is_422(
    client: httpx.Client,
    s3: Any,
    artifacts: dict[str, Path],
    file_of: str,
    framework: str,
    expected: str,
    how: str,
) -> None:
    name = unique("wrong")
    if how == "upload":
        response = _upload(client, artifacts[file_of], name=name, framework=framework)
    else:
        uri = _put_object(s3, artifacts[file_of].read_bytes())
        response = client.post(
            "/v1/models", json={"name": name, "framework": framework, "artifact_uri": uri}
        )
    assert_problem(response, 422, expected)
    assert_problem(client.get(f"/v1/models/{name}"), 404)


def test_a_refused_registration_adds_no_version(
    client: httpx.Client, model_files: dict[str, Path]
) -> None:
    name = unique("keep")
    register(client, name, "torch", model_files["torch"])
    refused = _upload(client, model_files["torch"], name=name, framework="xgboost")
    assert_problem(refused, 422)
    assert client.get(f"/v1/models/{name}").json()["latest_version"] == 1
    assert register(client, name, "torch", model_files["torch"])["version"] == 2


@pytest.mark.parametrize(
    ("fields", "with_file", "named"),
    [
        ({"framework": "torch"}, True, "'name'"),
        ({"name": "x"}, True, "'framework'"),
        ({"name": "x", "framework": "torch"}, False, "'file'"),
        ({}, True, "'name'"),
    ],
    ids=["no-name", "no-framework", "no-file", "no-fields"],
)
def test_missing_form_fields_are_422(
    client: httpx.Client,
    model_files: dict[str, Path],
    fields: dict[str, str],
    with_file: bool,
    named: str,
) -> None:
    if not with_file:
        # A multipart body still, with the text fields only.
        response = client.post(
            "/v1/models", data=fields, files={"other": ("x.txt", b"x", "text/plain")}
        )
    else:
        response = _upload(client, model_files["torch"], **fields)
    assert_problem(response, 422, named)


@pytest.mark.parametrize("framework", ["onnx", "TORCH", "sklearn", ""])
def test_unknown_framework_is_422(
    client: httpx.Client, model_files: dict[str, Path], s3: Any, framework: str
) -> None:
    upload = _upload(client, model_files["torch"], name=unique("fw"), framework=framework)
    assert_problem(upload, 422, "framework")
    uri = _put_object(s3, model_files["torch"].read_bytes())
    by_json = client.post(
        "/v1/models", json={"name": unique("fw"), "framework": framework, "artifact_uri": uri}
    )
    assert_problem(by_json, 422, "framework")


@pytest.mark.parametrize("name", ["Bad-", "-bad", "bad_name", "a" * 64])
def test_bad_model_name_is_422(
    client: httpx.Client, model_files: dict[str, Path], name: str
) -> None:
    response = _upload(client, model_files["torch"], name=name, framework="torch")
    assert_problem(response, 422, repr(name))


def test_empty_artifact_is_422(client: httpx.Client, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert_problem(_upload(client, empty, name=unique("empty"), framework="torch"), 422, "empty")


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"name": "m", "framework": ', "application/json", 400),
        (b'{"name": "m", "framework": "torch"}', "application/json", 422),
        (
            b'{"name": "m", "framework": "torch", "artifact_uri": "s3://b/k", "x": 1}',
            "application/json",
            422,
        ),
        (b"name=m&framework=torch", "application/x-www-form-urlencoded", 415),
        (b"model bytes", "application/octet-stream", 415),
    ],
    ids=["malformed", "no-uri", "extra-field", "urlencoded", "raw-bytes"],
)
def test_bad_registration_bodies(
    client: httpx.Client, content: bytes, content_type: str, status: int
) -> None:
    response = client.post("/v1/models", content=content, headers={"Content-Type": content_type})
    assert_problem(response, status)


# --- models: read and delete -----------------------------------------------------------


def test_unknown_model_is_404(client: httpx.Client) -> None:
    name = unique("none")
    assert_problem(client.get(f"/v1/models/{name}"), 404, repr(name))
    assert_problem(client.delete(f"/v1/models/{name}"), 404, repr(name))


def test_a_model_in_use_cannot_be_deleted_until_its_endpoint_is(
    client: httpx.Client, model_files: dict[str, Path]
) -> None:
    model = register(client, unique("used"), "torch", model_files["torch"])
    register(client, model["name"], "torch", model_files["torch"])  # v2, unused
    endpoint = create_endpoint(
        client,
        {
            "name": unique("user"),
            "variants": [{"name": "a", "model": model["name"], "model_version": 1}],
        },
    )
    refused = client.delete(f"/v1/models/{model['name']}")
    assert_problem(refused, 409, repr(model["name"]), "1 endpoint variant")
    assert client.get(f"/v1/models/{model['name']}").json()["latest_version"] == 2

    assert client.delete(f"/v1/endpoints/{endpoint['name']}").status_code == 204
    deleted = client.delete(f"/v1/models/{model['name']}")
    assert deleted.status_code == 204, deleted.text
    assert_problem(client.get(f"/v1/models/{model['name']}"), 404)
    assert model["name"] not in {m["name"] for m in client.get("/v1/models").json()}


def test_an_unused_model_is_deleted_and_its_name_starts_over(
    client: httpx.Client, model_files: dict[str, Path]
) -> None:
    name = unique("gone")
    register(client, name, "xgboost", model_files["xgb"])
    register(client, name, "xgboost", model_files["xgb"])
    response = client.delete(f"/v1/models/{name}")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_problem(client.get(f"/v1/models/{name}"), 404)
    assert_problem(client.delete(f"/v1/models/{name}"), 404)
    assert register(client, name, "xgboost", model_files["xgb"])["version"] == 1


def test_a_delete_is_committed_before_its_204(
    client: httpx.Client, model_files: dict[str, Path]
) -> None:
    """Regression: DELETE /v1/models/{name} left the commit to the session
    dependency's teardown, which FastAPI runs after the response is sent; a GET
    right after the 204 could still find the model (and a failing commit would
    have been reported as a success)."""
    names = [unique("race") for _ in range(20)]
    for name in names:
        register(client, name, "xgboost", model_files["xgb"])
    still_there = []
    for name in names:
        assert client.delete(f"/v1/models/{name}").status_code == 204
        if client.get(f"/v1/models/{name}").status_code != 404:
            still_there.append(name)
    assert not still_there, f"{len(still_there)} of {len(names)} deleted models still found"


# --- endpoints ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_models(stack: Stack, model_files: dict[str, Path]) -> dict[str, str]:
    """An XGBoost model with one version and a torch model with two."""
    with checked(stack.client()) as client:
        xgb = register(client, unique("ep-xgb"), "xgboost", model_files["xgb"])
        mlp = register(client, unique("ep-mlp"), "torch", model_files["torch"])
        register(client, mlp["name"], "torch", model_files["torch"])
    return {"xgb": xgb["name"], "mlp": mlp["name"]}


def _spec(two_models: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {
        "name": unique("ep"),
        "variants": [
            {
                "name": "a",
                "model": two_models["xgb"],
                "weight": 1,
                "min_workers": 1,
                "max_workers": 4,
                "batching": {"max_batch_size": 64, "max_delay_ms": 5},
            },
            {"name": "b", "model": two_models["mlp"], "model_version": 1, "weight": 3},
        ],
        **fields,
    }


def test_create_returns_the_stored_config_status_and_live_state(
    stack: Stack, client: httpx.Client, two_models: dict[str, str]
) -> None:
    topic = unique("ok-topic")
    assert client.post("/v1/topics", json={"name": topic}).status_code == 201
    spec = _spec(
        two_models,
        **{"async": {"output_prefix": "s3://my-results/x/", "success_topic": topic}},
    )
    response = client.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == spec["name"]
    # `creating` until a worker of variant a (min_workers 1) consumes its queue.
    assert created["status"] in ("creating", "in_service")
    wait_for(
        lambda: client.get(f"/v1/endpoints/{spec['name']}").json()["status"] == "in_service",
        timeout_s=30,
        what="the endpoint in service",
    )
    assert created["created_at"] and created["updated_at"]
    assert created["async"] == {
        "output_prefix": "s3://my-results/x/",
        "success_topic": topic,
        "error_topic": None,
        "failure_prefix": None,
        "invocation_timeout_s": 900,
        "max_concurrent_invocations_per_worker": None,
    }
    a, b = created["variants"]
    assert a["name"] == "a" and b["name"] == "b"
    assert (a["model"], a["model_version"], a["framework"]) == (two_models["xgb"], 1, "xgboost")
    assert (b["model"], b["model_version"], b["framework"]) == (two_models["mlp"], 1, "torch")
    assert (a["weight"], b["weight"]) == (1, 3)
    assert (a["accelerator"], a["min_workers"], a["max_workers"]) == ("cpu", 1, 4)
    assert a["batching"] == {"max_batch_size": 64, "max_delay_ms": 5}
    assert b["batching"] == {"max_batch_size": 1, "max_delay_ms": 0}
    for variant in created["variants"]:
        assert variant["backlog"] == 0
        assert set(variant["workers"]) == {"current", "desired"}
        assert isinstance(variant["workers"]["current"], int)
        assert isinstance(variant["workers"]["desired"], int)

    # The stack's two workers (which serve every variant) pick the new ones up.
    def served() -> bool:
        got = client.get(f"/v1/endpoints/{spec['name']}").json()
        return all(v["workers"]["current"] >= 2 for v in got["variants"])

    wait_for(served, timeout_s=20, what="both workers to serve the new variants")


def test_model_version_defaults_to_the_latest(
    client: httpx.Client, two_models: dict[str, str]
) -> None:
    created = create_endpoint(
        client, {"name": unique("latest"), "variants": [{"name": "a", "model": two_models["mlp"]}]}
    )
    assert created["variants"][0]["model_version"] == 2


def test_default_output_prefix_is_under_the_stack_default(
    stack: Stack, client: httpx.Client, two_models: dict[str, str]
) -> None:
    created = create_endpoint(client, _spec(two_models))
    default = stack.env["SLUICEWAY_DEFAULT_OUTPUT_PREFIX"]
    assert created["async"]["output_prefix"] == f"{default}{created['name']}/"
    assert created["async"]["success_topic"] is None


def test_duplicate_endpoint_name_is_409_and_keeps_the_first(
    client: httpx.Client, two_models: dict[str, str]
) -> None:
    spec = _spec(two_models)
    create_endpoint(client, spec)
    again = {**spec, "variants": [{"name": "z", "model": two_models["mlp"]}]}
    assert_problem(client.post("/v1/endpoints", json=again), 409, repr(spec["name"]))
    kept = client.get(f"/v1/endpoints/{spec['name']}").json()
    assert [v["name"] for v in kept["variants"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("variant", "named"),
    [
        ({"name": "a", "model": "no-such-model-zz"}, "'no-such-model-zz'"),
        ({"name": "a", "model": "{mlp}", "model_version": 7}, "version 7"),
    ],
    ids=["unknown-model", "unknown-version"],
)
def test_unknown_model_or_version_is_422(
    client: httpx.Client, two_models: dict[str, str], variant: dict[str, Any], named: str
) -> None:
    variant = {**variant, "model": variant["model"].format(**two_models)}
    name = unique("orphan")
    response = client.post("/v1/endpoints", json={"name": name, "variants": [variant]})
    assert_problem(response, 422, named)
    assert_problem(client.get(f"/v1/endpoints/{name}"), 404)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "-lead"}, "name"),
        ({"variants": {}}, "variants"),
        ({"async": {"output_prefix": "http://x/"}}, "output_prefix"),
        ({"colour": "red"}, "colour"),
    ],
    ids=["underscore", "leading-dash", "variants-not-a-list", "bad-prefix", "unknown-field"],
)
def test_bad_endpoint_specs_are_422(
    client: httpx.Client, two_models: dict[str, str], change: dict[str, Any], named: str
) -> None:
    response = client.post("/v1/endpoints", json={**_spec(two_models), **change})
    assert_problem(response, 422, named)


@pytest.mark.parametrize(
    ("variant_change", "named"),
    [
        ({"max_workers": 1, "min_workers": 3}, "max_workers 1 is below min_workers 3"),
        ({"batching": {"max_batch_size": 0}}, "max_batch_size"),
        ({"accelerator": "tpu"}, "accelerator"),
        ({"name": "b_1"}, "name"),
    ],
    ids=["max-below-min", "batch-0", "tpu", "bad-variant-name"],
)
def test_bad_variant_specs_are_422(
    client: httpx.Client, two_models: dict[str, str], variant_change: dict[str, Any], named: str
) -> None:
    spec = _spec(two_models)
    spec["variants"][0].update(variant_change)
    assert_problem(client.post("/v1/endpoints", json=spec), 422, named)


@pytest.mark.parametrize("bucket", IMPOSSIBLE_BUCKETS)
def test_output_prefix_with_an_impossible_bucket_name_is_422(
    client: httpx.Client, two_models: dict[str, str], bucket: str
) -> None:
    """Regression: the endpoint was created (201), and every async job on it then
    stayed `running`: the worker's upload raised the SDK's ValueError on the bucket
    name, which aborted the batch, so the job was redelivered again and again."""
    spec = _spec(two_models, **{"async": {"output_prefix": f"s3://{bucket}/out/"}})
    assert_problem(client.post("/v1/endpoints", json=spec), 422, bucket)
    assert_problem(client.get(f"/v1/endpoints/{spec['name']}"), 404)


def test_duplicate_variant_names_and_all_zero_weights_are_422(
    client: httpx.Client, two_models: dict[str, str]
) -> None:
    spec = _spec(two_models)
    spec["variants"][1]["name"] = "a"
    assert_problem(client.post("/v1/endpoints", json=spec), 422, "repeated: ['a']")
    spec = _spec(two_models)
    for variant in spec["variants"]:
        variant["weight"] = 0
    assert_problem(client.post("/v1/endpoints", json=spec), 422, "weight above 0")


def test_malformed_endpoint_body_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/endpoints", content=b'{"name": "x", ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed JSON")


def test_get_one_and_list(client: httpx.Client, two_models: dict[str, str]) -> None:
    created = create_endpoint(client, _spec(two_models))
    one = client.get(f"/v1/endpoints/{created['name']}")
    assert one.status_code == 200, one.text
    got = one.json()
    # Everything but live state (backlog, workers) is as created.
    for variant in (*got["variants"], *created["variants"]):
        del variant["backlog"], variant["workers"]
    assert got == created
    listed = client.get("/v1/endpoints")
    assert listed.status_code == 200
    names = [e["name"] for e in listed.json()]
    assert created["name"] in names
    assert names == sorted(names)
    assert_problem(client.get(f"/v1/endpoints/{unique('none')}"), 404)


# --- endpoints: weights and variant settings ---------------------------------------------


@pytest.fixture
def endpoint(client: httpx.Client, two_models: dict[str, str]) -> dict[str, Any]:
    return create_endpoint(client, _spec(two_models))


def _weights(client: httpx.Client, name: str) -> dict[str, float]:
    got = client.get(f"/v1/endpoints/{name}").json()
    return {v["name"]: v["weight"] for v in got["variants"]}


def test_patch_weights(client: httpx.Client, endpoint: dict[str, Any]) -> None:
    name = endpoint["name"]
    response = client.patch(
        f"/v1/endpoints/{name}/weights",
        json={"variants": [{"name": "a", "weight": 5}, {"name": "b", "weight": 0}]},
    )
    assert response.status_code == 200, response.text
    assert {v["name"]: v["weight"] for v in response.json()["variants"]} == {"a": 5, "b": 0}
    assert _weights(client, name) == {"a": 5, "b": 0}
    # Naming one variant leaves the others as they are.
    partial = client.patch(
        f"/v1/endpoints/{name}/weights", json={"variants": [{"name": "b", "weight": 2}]}
    )
    assert partial.status_code == 200, partial.text
    assert _weights(client, name) == {"a": 5, "b": 2}


@pytest.mark.parametrize(
    ("patch", "status", "named"),
    [
        ({"variants": [{"name": "zz", "weight": 1}]}, 422, "['zz']; it has ['a', 'b']"),
        ({"variants": [{"name": "a", "weight": 1}, {"name": "q", "weight": 1}]}, 422, "['q']"),
        ({"variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}, 422, "above 0"),
        ({"variants": [{"name": "a", "weight": -1}]}, 422, "weight"),
        ({"variants": []}, 422, "variants"),
    ],
    ids=["unknown", "one-unknown", "all-zero", "negative", "empty"],
)
def test_refused_weight_patches_change_nothing(
    client: httpx.Client, endpoint: dict[str, Any], patch: dict[str, Any], status: int, named: str
) -> None:
    response = client.patch(f"/v1/endpoints/{endpoint['name']}/weights", json=patch)
    assert_problem(response, status, named)
    assert _weights(client, endpoint["name"]) == {"a": 1, "b": 3}


def test_weights_of_an_unknown_endpoint_is_404(client: httpx.Client) -> None:
    name = unique("none")
    response = client.patch(
        f"/v1/endpoints/{name}/weights", json={"variants": [{"name": "a", "weight": 1}]}
    )
    assert_problem(response, 404, repr(name))


def _variant(client: httpx.Client, endpoint: str, variant: str) -> dict[str, Any]:
    got = client.get(f"/v1/endpoints/{endpoint}").json()
    found: dict[str, Any] = next(v for v in got["variants"] if v["name"] == variant)
    return found


def test_patch_variant_batching_and_workers(client: httpx.Client, endpoint: dict[str, Any]) -> None:
    name = endpoint["name"]
    response = client.patch(
        f"/v1/endpoints/{name}/variants/b",
        json={"batching": {"max_batch_size": 32, "max_delay_ms": 2.5}, "max_workers": 6},
    )
    assert response.status_code == 200, response.text
    b = _variant(client, name, "b")
    assert b["batching"] == {"max_batch_size": 32, "max_delay_ms": 2.5}
    assert (b["min_workers"], b["max_workers"]) == (0, 6)
    raised = client.patch(f"/v1/endpoints/{name}/variants/b", json={"min_workers": 6})
    assert raised.status_code == 200, raised.text
    assert (_variant(client, name, "b")["min_workers"]) == 6
    # The other variant is untouched.
    a = _variant(client, name, "a")
    assert a["batching"] == {"max_batch_size": 64, "max_delay_ms": 5}
    assert (a["min_workers"], a["max_workers"]) == (1, 4)


def test_patch_of_one_batching_field_keeps_the_other(
    client: httpx.Client, endpoint: dict[str, Any]
) -> None:
    """Regression: a PATCH naming only `max_delay_ms` reset `max_batch_size` to its
    default of 1 (the partial `batching` object was filled with defaults and
    copied whole), silently switching batching off."""
    name = endpoint["name"]
    response = client.patch(
        f"/v1/endpoints/{name}/variants/a", json={"batching": {"max_delay_ms": 20}}
    )
    assert response.status_code == 200, response.text
    assert _variant(client, name, "a")["batching"] == {"max_batch_size": 64, "max_delay_ms": 20}


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({"max_workers": 0}, "max_workers 0 is below min_workers 1"),
        ({"min_workers": 5}, "max_workers 4 is below min_workers 5"),
        ({"min_workers": 3, "max_workers": 2}, "max_workers 2 is below min_workers 3"),
        ({"batching": {"max_batch_size": 0}}, "max_batch_size"),
        ({"batching": {"max_delay_ms": -1}}, "max_delay_ms"),
        ({"weight": 3}, "weight"),
    ],
    ids=["max-below-min", "min-above-max", "both", "batch-0", "negative-delay", "unknown-field"],
)
def test_refused_variant_patches_are_422_and_change_nothing(
    client: httpx.Client, endpoint: dict[str, Any], patch: dict[str, Any], named: str
) -> None:
    response = client.patch(f"/v1/endpoints/{endpoint['name']}/variants/a", json=patch)
    assert_problem(response, 422, named)
    a = _variant(client, endpoint["name"], "a")
    assert (a["min_workers"], a["max_workers"]) == (1, 4)
    assert a["batching"] == {"max_batch_size": 64, "max_delay_ms": 5}


def test_patch_of_an_unknown_variant_or_endpoint_is_404(
    client: httpx.Client, endpoint: dict[str, Any]
) -> None:
    response = client.patch(f"/v1/endpoints/{endpoint['name']}/variants/zz", json={})
    assert_problem(response, 404, "'zz'")
    missing = unique("none")
    response = client.patch(f"/v1/endpoints/{missing}/variants/a", json={"min_workers": 0})
    assert_problem(response, 404, repr(missing))


# --- endpoints: delete ----------------------------------------------------------------------


def test_delete_endpoint_then_everything_about_it_is_404(
    stack: Stack, client: httpx.Client, endpoint: dict[str, Any]
) -> None:
    name = endpoint["name"]
    rows = {"instances": models.random_rows(1, seed=41)}
    served = client.post(f"/v1/endpoints/{name}/invocations", json=rows)
    assert served.status_code == 200, served.text

    response = client.delete(f"/v1/endpoints/{name}")
    assert response.status_code == 204, response.text
    assert response.content == b""

    assert_problem(client.get(f"/v1/endpoints/{name}"), 404, repr(name))
    assert name not in {e["name"] for e in client.get("/v1/endpoints").json()}
    for mode in ("invocations", "async-invocations"):
        assert_problem(client.post(f"/v1/endpoints/{name}/{mode}", json=rows), 404, repr(name))
    assert_problem(client.delete(f"/v1/endpoints/{name}"), 404)
    # Workers stop serving its queues within seconds.
    client_redis = redis.Redis.from_url(stack.env["SLUICEWAY_REDIS_URL"])
    queues = {queue_name(stack.namespace, name, v) for v in ("a", "b")}

    def released() -> bool:
        serving = workers_per_queue(client_redis, stack.namespace)
        return not queues & set(serving)

    wait_for(released, timeout_s=20, what=f"workers to stop serving {sorted(queues)}")


def test_a_deleted_name_can_be_created_again(
    client: httpx.Client, two_models: dict[str, str]
) -> None:
    spec = _spec(two_models)
    create_endpoint(client, spec)
    assert client.delete(f"/v1/endpoints/{spec['name']}").status_code == 204
    again = create_endpoint(client, spec)
    assert again["name"] == spec["name"]

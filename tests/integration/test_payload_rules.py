"""The edges of payloads and locations, through real API, Redis, SeaweedFS and workers:
keys with any character, non-ASCII headers, numbers a float32 model cannot take,
predictions that are not finite, a CSV byte-order mark and blank lines."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import Stack, create_endpoint, register, unique, wait_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def endpoint(stack: Stack, model_files: dict[str, Path], tmp_path_factory: Any) -> dict[str, Any]:
    """Variant `t`: the torch MLP; variant `r`: x0 / x1 (NaN and infinities on demand).
    Async outputs go under a prefix whose key holds '#' and a space."""
    ratio = models.build_ratio_torch(tmp_path_factory.mktemp("ratio") / "ratio.pt")
    with stack.client() as client:
        mlp = register(client, unique("mlp"), "torch", model_files["torch"])
        div = register(client, unique("ratio"), "torch", ratio)
        return create_endpoint(
            client,
            {
                "name": unique("edges"),
                "variants": [
                    {"name": "t", "model": mlp["name"], "weight": 1},
                    {"name": "r", "model": div["name"], "weight": 0},
                ],
                "async": {"output_prefix": f"s3://{unique('res')}/runs #1/"},
            },
        )


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def bucket(s3: SeaweedServer) -> str:
    name = unique("data")
    s3.client().make_bucket(name)
    return name


def put(s3: SeaweedServer, bucket: str, key: str, data: bytes) -> None:
    s3.client().put_object(bucket, key, io.BytesIO(data), len(data))


def run_async(
    client: httpx.Client,
    endpoint: str,
    location: str | bytes,
    content_type: str = "application/json",
) -> dict[str, Any]:
    response = client.post(
        f"/v1/endpoints/{endpoint}/async-invocations",
        headers={
            "X-Input-Location": location,
            "Content-Type": content_type,
            "X-Target-Variant": "t",
        },
    )
    assert response.status_code == 202, response.text
    return wait_job(client, response.json()["job_id"])


def test_a_hash_in_a_key_names_that_object_not_its_neighbour(
    client: httpx.Client,
    endpoint: dict[str, Any],
    s3: SeaweedServer,
    bucket: str,
    model_files: dict[str, Path],
) -> None:
    """Regression: with objects `in/data` and `in/data#v2`, an async job on
    `s3://.../in/data#v2` succeeded with the predictions of `in/data`: the location
    went through a URL parser, which drops everything from '#' as a fragment. The
    output prefix (`runs #1/`) keeps its '#' too."""
    twos, ones = [[2.0, 2.0, 2.0, 2.0]], [[1.0, 1.0, 1.0, 1.0]]
    put(s3, bucket, "in/data", orjson.dumps({"instances": twos}))
    put(s3, bucket, "in/data#v2", orjson.dumps({"instances": ones}))
    expected = models.predict_torch(model_files["torch"], ones)
    for location in (f"s3://{bucket}/in/data#v2", f"s3://{bucket}/in/data%23v2"):
        job = run_async(client, endpoint["name"], location)
        assert job["status"] == "succeeded", job
        assert "/runs #1/" in job["output_location"] and job["output_location"].endswith(".out")
        models.assert_close(
            client.get(f"/v1/jobs/{job['job_id']}/output").json()["predictions"], expected
        )


@pytest.mark.parametrize(
    "header",
    ["s3://{bucket}/in/données.json".encode(), b"s3://{bucket}/in/donn%C3%A9es.json"],
    ids=["raw-utf8", "percent-encoded"],
)
def test_a_non_ascii_key_can_be_named_in_x_input_location(
    client: httpx.Client,
    endpoint: dict[str, Any],
    s3: SeaweedServer,
    bucket: str,
    model_files: dict[str, Path],
    header: bytes,
) -> None:
    """Regression: the raw UTF-8 header was read as Latin-1 (422 "...donnÃ©es.json does
    not exist") and the percent-encoded one as a literal; a transform read the object."""
    rows = models.random_rows(2, seed=41)
    put(s3, bucket, "in/données.json", orjson.dumps({"instances": rows}))
    job = run_async(client, endpoint["name"], header.replace(b"{bucket}", bucket.encode()))
    assert job["status"] == "succeeded", job
    output = client.get(f"/v1/jobs/{job['job_id']}/output").json()["predictions"]
    models.assert_close(output, models.predict_torch(model_files["torch"], rows))


def test_a_header_that_is_not_a_clean_escape_is_a_400(
    client: httpx.Client, endpoint: dict[str, Any], bucket: str
) -> None:
    response = client.post(
        f"/v1/endpoints/{endpoint['name']}/async-invocations",
        headers={"X-Input-Location": f"s3://{bucket}/in/100%.json"},
    )
    assert response.status_code == 400, response.text
    assert "write a literal % as %25" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "named"),
    [
        (
            b'{"instances": [[1e39, 1, 1, 1], [1, 2, 3, 4]]}',
            "application/json",
            "instance 0, feature 0",
        ),
        (b"1,2,3,4\n1,2,-1e39,4\n", "text/csv", "CSV line 2, column 3"),
    ],
    ids=["json", "csv"],
)
@pytest.mark.parametrize("mode", ["invocations", "async-invocations"])
def test_a_value_float32_cannot_hold_is_a_422_before_queueing(
    client: httpx.Client,
    endpoint: dict[str, Any],
    mode: str,
    body: bytes,
    content_type: str,
    named: str,
) -> None:
    """Regression: 1e39 to a float32 model answered 200 {"predictions":[null,10.0]}."""
    response = client.post(
        f"/v1/endpoints/{endpoint['name']}/{mode}",
        content=body,
        headers={"Content-Type": content_type, "X-Target-Variant": "t"},
    )
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"] and "outside float32's range" in response.text


def test_an_input_object_with_such_a_value_fails_its_job_naming_it(
    client: httpx.Client, endpoint: dict[str, Any], s3: SeaweedServer, bucket: str
) -> None:
    """The API does not read input objects: the worker checks the same rule."""
    put(s3, bucket, "in/huge.json", b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 1e39]]}')
    job = run_async(client, endpoint["name"], f"s3://{bucket}/in/huge.json")
    assert job["status"] == "failed", job
    assert "instance 1, feature 3: 1e+39 is outside float32's range" in job["error"]


@pytest.mark.parametrize("cell", ["nan", "inf", "1_000"])
def test_csv_refuses_what_json_cannot_write(
    client: httpx.Client, endpoint: dict[str, Any], cell: str
) -> None:
    """Regression: CSV accepted nan, inf and 1_000 (float() does) while JSON rejects NaN."""
    response = client.post(
        f"/v1/endpoints/{endpoint['name']}/invocations",
        content=f"1,2,3,4\n1,2,3,{cell}\n",
        headers={"Content-Type": "text/csv", "X-Target-Variant": "t"},
    )
    assert response.status_code == 422, response.text
    assert "CSV line 2 is not all numbers" in response.json()["detail"]


def test_non_finite_predictions_are_named_in_json_and_csv(
    client: httpx.Client, endpoint: dict[str, Any]
) -> None:
    """Regression: NaN and infinite predictions were `null` in JSON and `nan`/`inf` in CSV."""
    rows = [[0, 0, 1, 1], [1, 0, 1, 1], [-1, 0, 1, 1], [1, 4, 1, 1]]
    url = f"/v1/endpoints/{endpoint['name']}/invocations"
    as_json = client.post(url, json={"instances": rows}, headers={"X-Target-Variant": "r"})
    assert as_json.status_code == 200, as_json.text
    assert as_json.content == b'{"predictions":["NaN","Infinity","-Infinity",0.25]}'
    as_csv = client.post(
        url, json={"instances": rows}, headers={"X-Target-Variant": "r", "Accept": "text/csv"}
    )
    assert as_csv.text == "NaN\nInfinity\n-Infinity\n0.25\n"


def test_a_csv_body_with_a_byte_order_mark_and_blank_lines(
    client: httpx.Client, endpoint: dict[str, Any], model_files: dict[str, Path]
) -> None:
    """Regressions: a BOM failed line 1 ("'\\ufeff1,2,3,4' is not all numbers"), and
    blank lines were dropped from the CSV answer, so its line N no longer answered
    line N of the request (a transform keeps them)."""
    rows = models.random_rows(2, seed=42)
    text = ",".join(map(str, rows[0])) + "\n\n" + ",".join(map(str, rows[1])) + "\n"
    body = b"\xef\xbb\xbf" + text.encode()
    url = f"/v1/endpoints/{endpoint['name']}/invocations"
    headers = {"Content-Type": "text/csv", "X-Target-Variant": "t"}
    as_csv = client.post(url, content=body, headers=headers)
    assert as_csv.status_code == 200, as_csv.text
    answer = as_csv.text.split("\n")
    assert len(answer) == 4 and answer[1] == "" and answer[3] == ""
    expected = models.predict_torch(model_files["torch"], rows)
    models.assert_close([[float(v) for v in answer[i].split(",")] for i in (0, 2)], expected)
    as_json = client.post(url, content=body, headers={**headers, "Accept": "application/json"})
    models.assert_close(as_json.json()["predictions"], expected)

"""SigV4 verification against requests signed by botocore itself (as boto3 signs them)."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api.sagemaker import sigv4
from api.sagemaker.errors import AwsError

HOST = "127.0.0.1:8000"
SECRET = "s3cr3t-_with-underscores"


def _signed(
    body: bytes = b'{"EndpointName": "churn"}', path: str = "/", query: str = ""
) -> tuple[dict[str, str], dt.datetime]:
    """Headers of a request signed now by botocore, and the time it was signed."""
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "SageMaker.DescribeEndpoint",
            "User-Agent": "Boto3/1.0",
        },
    )
    SigV4Auth(Credentials("abc123", SECRET), "sagemaker", "eu-west-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = HOST
    signed_at = dt.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
    return headers, signed_at.replace(tzinfo=dt.UTC)


def _verify(headers: dict[str, str], now: dt.datetime, **changes: object) -> None:
    parsed = sigv4.parse(headers["authorization"])
    assert parsed is not None
    arguments: dict[str, object] = {
        "secret": SECRET,
        "method": "POST",
        "path": "/",
        "query": "",
        "headers": headers,
        "body": b'{"EndpointName": "churn"}',
        "now": now,
    }
    arguments.update(changes)
    sigv4.verify(parsed, **arguments)  # type: ignore[arg-type]


def test_a_botocore_signature_verifies_and_names_its_key_and_region() -> None:
    headers, now = _signed()
    parsed = sigv4.parse(headers["authorization"])
    assert parsed is not None
    assert (parsed.access_key, parsed.region, parsed.service) == (
        "abc123",
        "eu-west-1",
        "sagemaker",
    )
    _verify(headers, now)


def test_a_runtime_path_with_a_query_verifies() -> None:
    headers, now = _signed(body=b"1,2,3", path="/endpoints/Churn-A/invocations", query="b=2&a=1")
    _verify(headers, now, path="/endpoints/Churn-A/invocations", query="b=2&a=1", body=b"1,2,3")


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "wrong"},
        {"body": b'{"EndpointName": "other"}'},
        {"path": "/endpoints/x/invocations"},
        {"method": "PUT"},
    ],
    ids=["wrong-secret", "tampered-body", "other-path", "other-method"],
)
def test_anything_changed_is_an_invalid_signature(change: dict[str, object]) -> None:
    headers, now = _signed()
    with pytest.raises(AwsError) as caught:
        _verify(headers, now, **change)
    assert (caught.value.code, caught.value.status) == ("InvalidSignatureException", 403)


def test_a_tampered_signed_header_is_an_invalid_signature() -> None:
    headers, now = _signed()
    headers["x-amz-target"] = "SageMaker.DeleteEndpoint"
    with pytest.raises(AwsError, match="does not match"):
        _verify(headers, now)


def test_a_request_older_than_fifteen_minutes_is_refused() -> None:
    headers, now = _signed()
    _verify(headers, now + dt.timedelta(minutes=14))
    with pytest.raises(AwsError, match="Signature expired"):
        _verify(headers, now + dt.timedelta(minutes=16))


def test_other_authorization_schemes_are_not_sigv4() -> None:
    assert sigv4.parse(None) is None
    assert sigv4.parse("Bearer sw_abc_def") is None
    with pytest.raises(AwsError) as caught:
        sigv4.parse("AWS4-HMAC-SHA256 Credential=abc/20261130/us-east-1/sagemaker")
    assert caught.value.code == "IncompleteSignature"

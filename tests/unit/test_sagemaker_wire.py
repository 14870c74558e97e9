"""`SageMakerWire`: which requests it takes, and its refusals in AWS's shape (no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.sagemaker.wire import SageMakerWire
from core import db
from core.config import get_settings
from tests.unit.asgi import drive


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SLUICEWAY_HOME", str(tmp_path))
    monkeypatch.delenv("SLUICEWAY_DATABASE_URL", raising=False)
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()
    yield
    for cached in (get_settings, db.get_engine, db._session_factory):
        cached.cache_clear()


def _scope(path: str, headers: dict[str, str], method: str = "POST") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


CONTROL = {"X-Amz-Target": "SageMaker.ListModels", "Host": "127.0.0.1:8000"}


@pytest.mark.parametrize(
    ("path", "headers", "method"),
    [
        ("/v1/models", {}, "GET"),
        ("/", {}, "POST"),
        ("/", {"X-Amz-Target": "DynamoDB_20120810.ListTables"}, "POST"),
        ("/v1/endpoints/churn/invocations", {}, "POST"),
        ("/endpoints/churn/invocations", {}, "GET"),
    ],
)
def test_native_requests_pass_through_untouched(
    path: str, headers: dict[str, str], method: str
) -> None:
    exchange = drive(lambda app: SageMakerWire(app, auth=True), _scope(path, headers, method))
    assert exchange.reached and exchange.status == 0


def _error(exchange: Any) -> tuple[int, str, str]:
    headers = dict(exchange.start["headers"])
    body = orjson.loads(exchange.body)
    return exchange.status, headers[b"x-amzn-errortype"].decode(), body.get("message", "")


def test_with_auth_on_an_unsigned_control_call_is_a_403_in_aws_shape() -> None:
    exchange = drive(lambda app: SageMakerWire(app, auth=True), _scope("/", CONTROL), b"{}")
    assert not exchange.reached
    status, code, _ = _error(exchange)
    assert (status, code) == (403, "MissingAuthenticationTokenException")


def test_with_auth_on_a_malformed_signature_is_incomplete() -> None:
    headers = {**CONTROL, "Authorization": "AWS4-HMAC-SHA256 Credential=abc"}
    exchange = drive(lambda app: SageMakerWire(app, auth=True), _scope("/", headers), b"{}")
    assert _error(exchange)[:2] == (403, "IncompleteSignature")


def test_with_auth_off_any_signature_is_accepted() -> None:
    """The call reaches the operation (here one Sluiceway does not have, refused by name)."""
    headers = {
        "X-Amz-Target": "SageMaker.CreateTrainingJob",
        "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/eu-west-1/sagemaker/aws4_request, "
        "SignedHeaders=host, Signature=00",
    }
    exchange = drive(lambda app: SageMakerWire(app, auth=False), _scope("/", headers), b"{}")
    status, code, message = _error(exchange)
    assert (status, code) == (400, "ValidationException")
    assert "CreateTrainingJob" in message and "CreateEndpoint" in message


def test_a_body_that_is_not_json_is_a_serialization_error() -> None:
    exchange = drive(lambda app: SageMakerWire(app, auth=False), _scope("/", CONTROL), b"{oops")
    assert _error(exchange)[:2] == (400, "SerializationException")


def test_operations_sluiceway_does_not_have_are_named() -> None:
    headers = {"X-Amz-Target": "SageMaker.CreateTrainingJob"}
    exchange = drive(lambda app: SageMakerWire(app, auth=False), _scope("/", headers), b"{}")
    assert "CreateTrainingJob (not supported)" in _error(exchange)[2]

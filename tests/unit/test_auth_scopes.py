"""Which scope each route needs, and how keys are parsed and checked."""

from __future__ import annotations

import pytest

from api.middleware.auth import required_scope
from core.apikeys import KeyInfo, split_key, verify
from core.tables import ApiKey


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/healthz", (None, None)),
        ("GET", "/readyz", (None, None)),
        ("GET", "/metrics", (None, None)),
        ("GET", "/openapi.json", (None, None)),
        ("POST", "/v1/endpoints/churn/invocations", ("invoke", "churn")),
        ("POST", "/v1/endpoints/churn/async-invocations", ("invoke", "churn")),
        ("GET", "/v1/jobs/abc", ("invoke", None)),
        ("GET", "/v1/jobs/abc/output", ("invoke", None)),
        ("GET", "/v1/endpoints/churn/invocations", ("admin", None)),
        ("POST", "/v1/endpoints", ("admin", None)),
        ("PATCH", "/v1/endpoints/churn/weights", ("admin", None)),
        ("POST", "/v1/models", ("admin", None)),
        ("DELETE", "/v1/jobs/abc", ("admin", None)),
        ("GET", "/v1/unknown", ("admin", None)),
        # The console: assets and sign-in are public; pages need invoke, admin pages and
        # every action (retry, redrive) admin, as the API routes they mirror.
        ("GET", "/console/static/console.css", (None, None)),
        ("POST", "/console/login", (None, None)),
        ("GET", "/console", ("invoke", None)),
        ("GET", "/console/endpoints/churn", ("invoke", None)),
        ("GET", "/console/jobs/abc", ("invoke", None)),
        ("POST", "/console/jobs/abc/retry", ("admin", None)),
        ("GET", "/console/models", ("admin", None)),
        ("GET", "/console/topics/t", ("admin", None)),
        ("POST", "/console/deliveries/d/redrive", ("admin", None)),
        ("GET", "/console/transform-jobs", ("admin", None)),
        ("GET", "/consoles", ("admin", None)),
    ],
)
def test_required_scope(method: str, path: str, expected: tuple[str | None, str | None]) -> None:
    assert required_scope(method, path) == expected


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("sw_abc123_secret", ("abc123", "secret")),
        ("sw_abc_sec_ret", ("abc", "sec_ret")),
        ("sk_abc_secret", None),
        ("sw__secret", None),
        ("sw_abc_", None),
        ("", None),
    ],
)
def test_split_key(token: str, expected: tuple[str, str] | None) -> None:
    assert split_key(token) == expected


def test_verify_checks_the_digest_revocation_and_endpoints() -> None:
    import hashlib

    row = ApiKey(
        id="abc",
        scope="invoke",
        endpoints="a,b",
        secret_sha256=hashlib.sha256(b"s3cret").hexdigest(),
    )
    info = verify(row, "s3cret")
    assert info == KeyInfo(id="abc", scope="invoke", endpoints=frozenset({"a", "b"}))
    assert info.allows_endpoint("a") and not info.allows_endpoint("c")
    assert verify(row, "wrong") is None
    assert verify(None, "s3cret") is None

"""API keys' signing secrets (for SigV4): Fernet-encrypted at rest, readable with the key only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from core import apikeys
from core.config import Settings, get_settings
from core.tables import ApiKey
from scheduler.scaling.actuators.kubernetes import kubernetes_name


@pytest.fixture
def encryption_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("SLUICEWAY_KEY_ENCRYPTION_KEY", key)
    get_settings.cache_clear()
    yield key
    get_settings.cache_clear()


def _row(secret: str) -> ApiKey:
    return ApiKey(
        id="abc",
        scope="admin",
        secret_sha256=apikeys._digest(secret),
        signing_secret=apikeys._encrypt(secret),
    )


def test_the_secret_comes_back_only_with_the_same_key(
    encryption_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = _row("the-secret")
    assert row.signing_secret is not None and "the-secret" not in row.signing_secret
    assert apikeys.signing_secret(row) == "the-secret"
    monkeypatch.setenv("SLUICEWAY_KEY_ENCRYPTION_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    assert apikeys.signing_secret(row) is None


def test_without_the_setting_no_signing_secret_is_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICEWAY_KEY_ENCRYPTION_KEY", raising=False)
    get_settings.cache_clear()
    row = _row("the-secret")
    assert row.signing_secret is None and apikeys.signing_secret(row) is None
    get_settings.cache_clear()


@pytest.mark.parametrize("value", ["not-base64!", "c2hvcnQ="])
def test_a_bad_encryption_key_fails_at_start_up(value: str) -> None:
    with pytest.raises(ValueError, match="key_encryption_key"):
        Settings(key_encryption_key=value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sluiceway-worker-churn-a", "sluiceway-worker-churn-a"),
        ("sluiceway-worker-churn-AllTraffic", "sluiceway-worker-churn-alltraffic-"),
    ],
)
def test_kubernetes_names_are_lowercased_with_a_hash_when_needed(name: str, expected: str) -> None:
    """Case-sensitive names (`AllTraffic`) map to distinct valid Deployment names."""
    assert kubernetes_name(name).startswith(expected)
    assert kubernetes_name("w-AllTraffic") != kubernetes_name("w-alltraffic")

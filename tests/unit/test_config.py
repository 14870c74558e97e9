"""Settings: unknown SLUICEWAY_* variables are named in the log, with what to use instead."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from core.config import Settings, get_settings, unknown_settings


def test_unknown_variables_are_found_with_a_suggestion() -> None:
    environ = {
        "SLUICEWAY_REDIS_URL": "redis://x",  # a real setting
        "SLUICEWAY_REDIS_ULR": "redis://x",  # a typo
        "SLUICEWAY_WORKERS": "4",  # removed when the scaler came
        "SLUICEWAY_FROBNICATE": "1",  # nothing like it
        "SLUICEWAY_VERSION": "0.1.0",  # compose's image tag
        "SLUICEWAY_TEST_PG": "postgresql://",  # the test suite's own
        "PATH": "/usr/bin",
    }
    found = dict(unknown_settings(environ))
    assert set(found) == {"SLUICEWAY_REDIS_ULR", "SLUICEWAY_WORKERS", "SLUICEWAY_FROBNICATE"}
    assert found["SLUICEWAY_REDIS_ULR"] == "SLUICEWAY_REDIS_URL"
    assert found["SLUICEWAY_WORKERS"] is not None
    assert found["SLUICEWAY_WORKERS"].startswith("SLUICEWAY_LOCAL_CPU_SLOTS")
    assert found["SLUICEWAY_FROBNICATE"] is None


def test_reading_settings_logs_each_unknown_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLUICEWAY_MAX_BATCH_SIZ", "8")
    with caplog.at_level(logging.WARNING, logger="core.config"):
        get_settings.__wrapped__()  # uncached: read the environment now
    assert "SLUICEWAY_MAX_BATCH_SIZ is not a Sluiceway setting" in caplog.text


def test_a_visibility_timeout_shorter_than_two_leases_is_refused() -> None:
    """Otherwise kombu's restore, not the lease sweep, would bring a dead worker's work
    back, and its realtime callers would wait out their timeout instead of a 503."""
    assert Settings(visibility_timeout_s=20, worker_lease_s=10).worker_lease_s == 10
    with pytest.raises(ValidationError, match="visibility_timeout_s 8 must be at least twice"):
        Settings(visibility_timeout_s=8, worker_lease_s=10)

"""The one settings class: every knob is a `SLUICEWAY_*` environment variable.

Names carry their units (`_ms`, `_s`, `_mb`). Bad values fail at start-up with
pydantic's message naming the variable and the value.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICEWAY_", extra="ignore")

    # --- where state lives -------------------------------------------------
    home: Path = Field(
        default=Path(".sluiceway"),
        description="Local state folder: SQLite file, local S3 data, model cache, logs.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file under `home`.",
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = Field(
        default="sluiceway",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$",
        description="Prefix of every Redis key and queue, so stacks can share one Redis.",
    )
    s3_endpoint: str = Field(
        default="",
        description="S3 URL such as http://127.0.0.1:9000; empty lets `sluice up` start one.",
    )
    s3_access_key: str = "sluiceway"
    s3_secret_key: str = "sluiceway-secret"
    s3_region: str = "us-east-1"
    s3_bucket: str = Field(
        default="sluiceway",
        description="Bucket for model artifacts and async inputs.",
    )
    default_output_prefix: str = Field(
        default="s3://sluiceway-results/",
        description="Async outputs go to <this>/<endpoint>/ when an endpoint names none.",
    )

    # --- API -----------------------------------------------------------------
    api_url: str = "http://127.0.0.1:8000"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    realtime_timeout_ms: int = Field(default=60_000, ge=1)
    max_inline_body_mb: float = Field(default=6.0, gt=0)
    max_input_object_mb: float = Field(default=1024.0, gt=0)
    max_artifact_mb: float = Field(default=2048.0, gt=0)
    idempotency_ttl_h: float = Field(default=24.0, gt=0)
    endpoint_cache_s: float = Field(
        default=1.0,
        ge=0,
        description="How long an API process reuses an endpoint's config before re-reading it.",
    )

    # --- workers -------------------------------------------------------------
    worker_device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    worker_variants: str = Field(
        default="",
        description="Comma-separated ENDPOINT/VARIANT list a worker serves; empty serves all.",
    )
    visibility_timeout_s: int = Field(
        default=300,
        ge=1,
        description="An unacknowledged message is redelivered after this long (worker died).",
    )
    model_cache_dir: Path | None = Field(
        default=None, description="Where workers keep downloaded artifacts; default under home."
    )
    worker_threads: int = Field(
        default=0,
        ge=0,
        description="Compute threads per worker (torch, XGBoost); 0 = half the cores, at least 1.",
    )
    model_cache_size: int = Field(default=8, ge=1, description="Models kept loaded per worker.")
    queue_refresh_s: float = Field(
        default=2.0, gt=0, description="How often a worker looks for new endpoint variants."
    )

    # --- scheduler -----------------------------------------------------------
    workers: int = Field(
        default=1, ge=0, description="Worker processes the scheduler keeps alive on this host."
    )
    scheduler_interval_s: float = Field(default=2.0, gt=0)

    # --- batch transform -----------------------------------------------------
    transform_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="Longest pause of the transform coordinator; a finished chunk wakes it.",
    )
    transform_max_in_flight: int = Field(
        default=16,
        ge=1,
        description="Chunks of one transform job queued or running at once (bounds memory).",
    )
    transform_batch_rows: int = Field(
        default=1024,
        ge=1,
        description="Rows per model call on the transform pool (jobs for a model, not an "
        "endpoint); endpoint jobs use their variant's max_batch_size.",
    )
    transform_resend_s: float = Field(
        default=900.0,
        gt=0,
        description="A chunk sent this long ago and never finished is sent again "
        "(its message was lost, e.g. Redis restarted without persistence).",
    )

    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("s3_endpoint", "api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("default_output_prefix")
    @classmethod
    def _s3_prefix(cls, value: str) -> str:
        if not value.startswith("s3://"):
            raise ValueError(f"must be an s3:// URI, got {value!r}")
        return value if value.endswith("/") else value + "/"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'sluiceway.db').resolve()}"

    @property
    def model_cache_path(self) -> Path:
        return self.model_cache_dir or self.home / "model-cache"

    @property
    def compute_threads(self) -> int:
        # Half the cores by default: the API, Redis and the other workers need
        # the rest, and idle OpenMP threads spin-wait on the cores they hold.
        return self.worker_threads or max(1, (os.cpu_count() or 2) // 2)

    @property
    def max_inline_body_bytes(self) -> int:
        return int(self.max_inline_body_mb * 1024 * 1024)

    @property
    def max_input_object_bytes(self) -> int:
        return int(self.max_input_object_mb * 1024 * 1024)

    @property
    def max_artifact_bytes(self) -> int:
        return int(self.max_artifact_mb * 1024 * 1024)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

"""The one settings class: every knob is a `SLUICEWAY_*` environment variable.

Names carry their units (`_ms`, `_s`, `_mb`). Bad values fail at start-up with
pydantic's message naming the variable and the value.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
import ipaddress
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import InvalidInput
from core.locations import S3Location

logger = logging.getLogger(__name__)

# SageMaker's rule for names, case-sensitive (`AllTraffic`, `Variant1`), at most 63
# characters (checked apart: `Name` in api/schemas.py has max_length=63).
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
NAME_MAX_LENGTH = 63


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
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis for queues, replies and counters."
    )
    namespace: str = Field(
        default="sluiceway",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$",
        description="Prefix of every Redis key and queue, so stacks can share one Redis.",
    )
    s3_endpoint: str = Field(
        default="",
        description="S3 URL such as http://127.0.0.1:9000; empty lets `sluice up` start one.",
    )
    s3_access_key: str = Field(
        default="sluiceway",
        description="S3 access key (also the key of the SeaweedFS server `sluice up` starts).",
    )
    s3_secret_key: str = Field(default="sluiceway-secret", description="S3 secret key (likewise).")
    s3_region: str = Field(default="us-east-1", description="S3 region used to sign requests.")
    s3_bucket: str = Field(
        default="sluiceway",
        description="Bucket for model artifacts and async inputs.",
    )
    default_output_prefix: str = Field(
        default="s3://sluiceway-results/",
        description="Async outputs go to <this>/<endpoint>/ when an endpoint names none.",
    )

    # --- API -----------------------------------------------------------------
    auth: str = Field(
        default="off",
        pattern=r"^(on|off)$",
        description="`on` requires API keys (`sluice keys create`) on every non-public route.",
    )
    api_key: str = Field(
        default="", description="The key the `sluice` client commands send, when auth is on."
    )
    key_encryption_key: str = Field(
        default="",
        description="A Fernet key (`python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'`) that encrypts API keys' signing secrets, "
        "so SigV4 requests (the SageMaker API, boto3) can be verified; keys created without "
        "it work only as Bearer keys. Every API process and `sluice keys` need the same one.",
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where the `sluice` client commands find the API.",
    )
    api_host: str = Field(default="127.0.0.1", description="Interface `sluice api` listens on.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port `sluice api` listens on.")
    realtime_timeout_ms: int = Field(
        default=60_000,
        ge=1,
        description="Longest a realtime call waits for its answer before a 504 "
        "(`X-Timeout-Ms` lowers it).",
    )
    max_inline_body_mb: float = Field(
        default=6.0, gt=0, description="Largest request body accepted inline (413 above)."
    )
    max_input_object_mb: float = Field(
        default=1024.0, gt=0, description="Largest async input object read from X-Input-Location."
    )
    max_instances: int = Field(
        default=100_000, ge=1, description="Most instances (rows) one inline request may carry."
    )
    readable_buckets: str = Field(
        default="*",
        description="Comma-separated buckets X-Input-Location and transform inputs may name; "
        "* = any bucket the S3 credentials can read.",
    )
    max_artifact_mb: float = Field(
        default=2048.0, gt=0, description="Largest model artifact accepted."
    )
    idempotency_ttl_h: float = Field(
        default=24.0, gt=0, description="How long an Idempotency-Key returns the first job."
    )
    max_backlog: int = Field(
        default=10_000,
        ge=0,
        description="Requests waiting per variant before new ones get 429; 0 = no limit.",
    )
    backlog_check_ms: float = Field(
        default=250, ge=0, description="How long an API process reuses a variant's backlog."
    )
    api_max_concurrency: int = Field(
        default=2048,
        ge=1,
        description="Requests one API process holds at once; more get 503 (bounds its memory).",
    )
    api_keep_alive_s: int = Field(
        default=75,
        ge=1,
        description="How long the API keeps an idle client connection open. Keep it above "
        "any load balancer's idle timeout (AWS ALB: 60 s), so the balancer never sends a "
        "request on a connection the API is closing.",
    )
    endpoint_cache_s: float = Field(
        default=1.0,
        ge=0,
        description="How long an API process reuses an endpoint's config before re-reading it.",
    )

    # --- workers -------------------------------------------------------------
    worker_device: str = Field(
        default="cpu",
        pattern=r"^(cpu|cuda(:\d+)?)$",
        description="Device of `sluice worker` without --device: cpu, cuda or cuda:N.",
    )
    worker_variants: str = Field(
        default="",
        description="Comma-separated ENDPOINT/VARIANT list a worker serves; empty serves all.",
    )
    visibility_timeout_s: int = Field(
        default=300,
        ge=1,
        description=(
            "A reservation no live worker renews is redelivered after this long: the retry "
            "delay after a transient failure, and the last resort for a consumer without a lease."
        ),
    )
    worker_lease_s: float = Field(
        default=10.0,
        ge=2,
        description=(
            "A worker renews its lease every second; this long after its last renewal it is "
            "presumed dead and its work goes to other workers (see docs/reliability.md)."
        ),
    )
    model_cache_dir: Path | None = Field(
        default=None, description="Where workers keep downloaded artifacts; default under home."
    )
    worker_threads: int = Field(
        default=0,
        ge=0,
        description="Compute threads per worker (torch, XGBoost); 0 = half the cores, at least 1.",
    )
    worker_gpu_memory_fraction: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of its GPU's memory a worker may allocate (torch); 0 = no cap. "
        "The local backend sets it for inference component copies that share a GPU.",
    )
    model_cache_size: int = Field(default=8, ge=1, description="Models kept loaded per worker.")
    model_affinity: bool = Field(
        default=True,
        description="Multi-model variants: workers take requests for models they hold first "
        "and leave other workers theirs (off: any worker takes any request).",
    )
    model_affinity_steal_ms: int = Field(
        default=50,
        ge=0,
        le=60_000,
        description="Multi-model variants: a request for a model another worker holds is "
        "taken by any worker once it waited this long (ms).",
    )
    model_disk_mb: int = Field(
        default=10_240,
        ge=1,
        description="Disk each worker may fill with multi-model variants' artifacts (MB); "
        "the least recently used are removed first.",
    )
    worker_preload: str = Field(
        default="torch,xgboost",
        pattern=r"^((torch|xgboost)(,(torch|xgboost))*)?$",
        description="Frameworks a worker imports at start instead of on its first request "
        "(comma-separated; empty imports none). The scaler sets its workers' own.",
    )
    queue_refresh_s: float = Field(
        default=2.0, gt=0, description="How often a worker looks for new endpoint variants."
    )

    # --- scheduler and scaler ------------------------------------------------
    scheduler_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the scheduler's loop runs; the scaler decides once per tick.",
    )
    scaler_backend: str = Field(
        default="local",
        pattern=r"^(local|kubernetes|none)$",
        description="Who runs the workers the scaler wants: local processes, Kubernetes "
        "Deployments, or nobody (decide and publish only).",
    )
    scale_in_cooldown_s: float = Field(
        default=60.0, ge=0, description="No scale-in sooner than this after any scaling event."
    )
    scale_in_window_s: float = Field(
        default=60.0,
        ge=0,
        description="Scale in only to the largest need seen over this look-back window.",
    )
    scale_to_zero_idle_s: float = Field(
        default=300.0,
        ge=0,
        description="A variant with min_workers 0 and nothing queued, running or arriving "
        "for this long goes to zero workers.",
    )
    worker_stop_grace_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a worker asked to stop (SIGTERM, warm shutdown) may take "
        "before it is killed.",
    )
    local_cpu_slots: int = Field(
        default=0,
        ge=0,
        description="CPU worker processes the local backend may run at once on this host; "
        "0 means one per CPU core. GPU workers are always one per device.",
    )
    host_cpu_cores: float = Field(
        default=0.0,
        ge=0,
        description="Cores of this host the local backend places inference component copies "
        "on; 0 = every core it may use (detected).",
    )
    host_memory_mb: int = Field(
        default=0,
        ge=0,
        description="Memory (MB) for component copies on this host; 0 = all of it (detected).",
    )
    local_warm_spare: bool = Field(
        default=True,
        description="Keep one pre-booted worker process that becomes the next worker "
        "started (local backend): a cold start skips most of a process's boot.",
    )
    kubernetes_namespace: str = Field(
        default="default", description="Namespace of the worker Deployments (kubernetes backend)."
    )
    kubernetes_deployment: str = Field(
        default="sluiceway-worker-{endpoint}-{variant}",
        description="Name of a variant's worker Deployment; {endpoint} and {variant} are "
        "replaced (kubernetes backend).",
    )
    reconcile_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="How often the scheduler looks for accepted jobs whose message was lost.",
    )
    deployment_interval_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="How often the scheduler drives deployments, drains old variants and "
        "finishes deletions (a tripped rollback takes effect within one such tick).",
    )
    deployment_provision_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="A deployment whose new variants have no live worker after this long "
        "fails, with all traffic still on the old config; a new endpoint whose variants have "
        "none turns `failed` (and `in_service` when they come).",
    )
    endpoint_drain_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="A deleted endpoint's or removed variant's queued async jobs that no "
        "worker started within this long fail with the reason 'endpoint deleted'.",
    )
    history_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="How often the scheduler samples every variant (requests/s, errors/s, "
        "model latency, backlog, workers) into Redis for the console's plots.",
    )
    history_retention_s: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 86400,
        description="How much of that history Redis keeps per variant (1 h at 5 s: 720 points).",
    )

    # --- data capture (workers/capture.py) and monitoring (scheduler/monitoring/) ---------
    capture_flush_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often a worker writes its buffered capture records to S3 (one object "
        "per endpoint variant); a worker killed without warning loses at most this window.",
    )
    capture_flush_records: int = Field(
        default=5000,
        ge=1,
        description="A variant's capture buffer is written at once when it holds this many "
        "records.",
    )
    capture_max_buffer_mb: float = Field(
        default=64.0,
        gt=0,
        description="Capture records one worker holds while S3 is unreachable; newer records "
        "are dropped (and counted) beyond it.",
    )
    monitoring_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="How often the scheduler looks for due monitoring schedules, requested "
        "runs and new baselines.",
    )

    # --- webhooks (scheduler/webhooks/notifier.py) --------------------------------------
    # Defaults retry for about a day: delays 5, 10, 20 ... 2560 s (10 retries,
    # 1.4 h), then 23 more at the 1 h cap → 34 attempts over ~24.4 h.
    webhook_max_attempts: int = Field(
        default=34, ge=1, le=1000, description="Attempts per delivery before it is marked dead."
    )
    webhook_backoff_base_s: float = Field(
        default=5.0, gt=0, description="Delay before the first retry; doubles each retry."
    )
    webhook_backoff_cap_s: float = Field(
        default=3600.0, gt=0, description="Longest delay between two attempts."
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Whole-request limit for one delivery attempt."
    )
    webhook_max_response_kb: int = Field(
        default=64, ge=1, description="Bytes of a receiver's answer read at most (then dropped)."
    )
    webhook_allowed_networks: str = Field(
        default="",
        description=(
            "Comma-separated CIDRs that webhooks may target although they are not public "
            "(e.g. 127.0.0.0/8,::1/128, which `sluice up` and the tests set). Link-local is "
            "refused unless listed here; cloud metadata addresses are refused always."
        ),
    )
    webhook_callback_secret: str = Field(
        default="",
        description="Signs deliveries to X-Callback-Url; empty sends them unsigned.",
    )
    webhook_concurrency: int = Field(
        default=32, ge=1, le=1024, description="Deliveries one notifier sends at the same time."
    )
    webhook_poll_s: float = Field(
        default=0.25, gt=0, description="How often an idle notifier looks for new events."
    )

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

    log_level: str = Field(
        default="INFO",
        pattern=r"^(DEBUG|INFO|WARNING|ERROR)$",
        description="DEBUG, INFO, WARNING or ERROR.",
    )

    @field_validator("s3_endpoint", "api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("key_encryption_key")
    @classmethod
    def _fernet_key(cls, value: str) -> str:
        # A Fernet key is 32 bytes in URL-safe base64 (44 characters).
        if value:
            try:
                raw = base64.urlsafe_b64decode(value.encode())
            except (binascii.Error, ValueError) as exc:
                raise ValueError("is not URL-safe base64 (a Fernet key)") from exc
            if len(raw) != 32:
                raise ValueError(f"decodes to {len(raw)} bytes; a Fernet key is 32")
        return value

    @field_validator("default_output_prefix")
    @classmethod
    def _s3_prefix(cls, value: str) -> str:
        try:
            S3Location.parse(value)
        except InvalidInput as exc:
            raise ValueError(exc.detail) from exc
        return value if value.endswith("/") else value + "/"

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(f"{part!r} is not a CIDR network such as 127.0.0.0/8") from exc
        return value

    @model_validator(mode="after")
    def _backoff_bounds(self) -> Settings:
        if self.webhook_backoff_cap_s < self.webhook_backoff_base_s:
            raise ValueError(
                f"webhook_backoff_cap_s {self.webhook_backoff_cap_s} is below "
                f"webhook_backoff_base_s {self.webhook_backoff_base_s}"
            )
        return self

    @model_validator(mode="after")
    def _lease_before_visibility(self) -> Settings:
        # A dead worker's reservations stop being renewed when it dies; kombu's restore
        # takes them `visibility_timeout_s` later, the lease sweep `worker_lease_s` later
        # (+1-3 s). The sweep must come first: it alone answers realtime callers.
        if self.visibility_timeout_s < 2 * self.worker_lease_s:
            raise ValueError(
                f"visibility_timeout_s {self.visibility_timeout_s} must be at least twice "
                f"worker_lease_s {self.worker_lease_s:g}, so a dead worker's work comes back "
                "through its lease, not through the visibility timeout"
            )
        return self

    @property
    def webhook_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """`webhook_allowed_networks`, parsed."""
        return [
            ipaddress.ip_network(part, strict=False)
            for part in filter(None, (p.strip() for p in self.webhook_allowed_networks.split(",")))
        ]

    @field_validator("kubernetes_deployment")
    @classmethod
    def _deployment_pattern(cls, value: str) -> str:
        try:
            value.format(endpoint="e", variant="v")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{value!r} may use only {{endpoint}} and {{variant}} placeholders"
            ) from exc
        return value

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'sluiceway.db').resolve()}"

    @property
    def model_cache_path(self) -> Path:
        return self.model_cache_dir or self.home / "model-cache"

    def may_read_bucket(self, bucket: str) -> bool:
        allowed = {b.strip() for b in self.readable_buckets.split(",") if b.strip()}
        return "*" in allowed or bucket in allowed or bucket == self.s3_bucket

    @property
    def compute_threads(self) -> int:
        # Half the cores by default: the API, Redis and the other workers need
        # the rest, and idle OpenMP threads spin-wait on the cores they hold.
        return self.worker_threads or max(1, (os.cpu_count() or 2) // 2)

    @property
    def preload_frameworks(self) -> list[str]:
        return [name for name in self.worker_preload.split(",") if name]

    @property
    def cpu_slots(self) -> int:
        """CPU worker processes the local backend may run (`local_cpu_slots`, else the cores)."""
        return self.local_cpu_slots or os.cpu_count() or 1

    @property
    def max_inline_body_bytes(self) -> int:
        return int(self.max_inline_body_mb * 1024 * 1024)

    @property
    def max_input_object_bytes(self) -> int:
        return int(self.max_input_object_mb * 1024 * 1024)

    @property
    def capture_max_buffer_bytes(self) -> int:
        return int(self.capture_max_buffer_mb * 1024 * 1024)

    @property
    def monitoring_prefix(self) -> str:
        """Where baselines and reports go when a request names no output prefix."""
        return f"s3://{self.s3_bucket}/monitoring/"

    @property
    def max_artifact_bytes(self) -> int:
        return int(self.max_artifact_mb * 1024 * 1024)


# SLUICEWAY_* variables that are not settings: compose's image tag, the test
# suite's own service addresses.
NOT_SETTINGS = ("SLUICEWAY_VERSION", "SLUICEWAY_TEST_")


# Settings that were removed, and what took their place.
REPLACED = {
    "SLUICEWAY_WORKERS": "SLUICEWAY_LOCAL_CPU_SLOTS (the scaler sets workers per variant "
    "from queue depth; see docs/scaling.md)",
}


def unknown_settings(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """SLUICEWAY_* variables that name no setting — a typo, or one since removed — each
    with what to use instead, if we can tell (`SLUICEWAY_REDIS_ULR` → `SLUICEWAY_REDIS_URL`)."""
    known = [f"SLUICEWAY_{name.upper()}" for name in Settings.model_fields]

    def instead(name: str) -> str | None:
        closest = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        return REPLACED.get(name) or (closest[0] if closest else None)

    return [
        (name, instead(name))
        for name in sorted(environ)
        if name.startswith("SLUICEWAY_") and name not in known and not name.startswith(NOT_SETTINGS)
    ]


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment.

    Unknown SLUICEWAY_* variables are logged, not fatal: an old deployment's
    environment must not stop a new release from starting, but a typo that
    silently leaves a default in force is worth a line in every log.
    """
    for name, instead in unknown_settings(os.environ):
        hint = f"; use {instead}" if instead else ""
        logger.warning("%s is not a Sluiceway setting and is ignored%s", name, hint)
    return Settings()

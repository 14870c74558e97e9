"""SQLAlchemy 2 ORM tables: models, model versions, endpoints, variants, jobs,
the notification tables (topics, subscriptions, the events outbox, deliveries),
batch transforms and API keys.

The schema itself is created only by the Alembic migrations in migrations/.
Jobs keep endpoint and variant *names*, not foreign keys: a job's record must
outlive a deleted endpoint. Events likewise keep the job id and topic name.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.states import (
    ChunkStatus,
    DeliveryStatus,
    EndpointStatus,
    JobStatus,
    ObjectStatus,
    TransformStatus,
)

# A batch or two per worker: enough to keep a worker busy between scaler ticks,
# small enough that a burst of 2,000 jobs asks for every worker it may have.
DEFAULT_TARGET_BACKLOG = 10


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model",
        order_by="ModelVersion.version",
        cascade="all, delete-orphan",
    )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    framework: Mapped[str] = mapped_column(String(16))
    artifact_uri: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model: Mapped[Model] = relationship(back_populates="versions")


class Endpoint(Base):
    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=EndpointStatus.IN_SERVICE)
    output_prefix: Mapped[str] = mapped_column(Text)
    success_topic: Mapped[str | None] = mapped_column(String(63), nullable=True)
    error_topic: Mapped[str | None] = mapped_column(String(63), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    variants: Mapped[list[Variant]] = relationship(
        back_populates="endpoint",
        order_by="Variant.id",
        cascade="all, delete-orphan",
    )


class Variant(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("endpoint_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    accelerator: Mapped[str] = mapped_column(String(8), default="cpu")
    min_workers: Mapped[int] = mapped_column(Integer, default=0)
    max_workers: Mapped[int] = mapped_column(Integer, default=1)
    # The scaler wants one worker per this many waiting messages (migration 0003).
    target_backlog_per_worker: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_TARGET_BACKLOG, server_default=str(DEFAULT_TARGET_BACKLOG)
    )
    max_batch_size: Mapped[int] = mapped_column(Integer, default=1)
    max_delay_ms: Mapped[float] = mapped_column(Float, default=0.0)

    endpoint: Mapped[Endpoint] = relationship(back_populates="variants")
    model_version: Mapped[ModelVersion] = relationship()


class Job(Base):
    """An async invocation. Realtime calls never touch this table (hot path)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("endpoint", "idempotency_key"),
        Index("ix_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    endpoint: Mapped[str] = mapped_column(String(63))
    variant: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    input_location: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(128))
    accept: Mapped[str | None] = mapped_column(String(128), nullable=True)
    output_location: Mapped[str] = mapped_column(Text)
    output_content_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    inference_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Failed because every delivery failed (the worker died or the infrastructure
    # broke each time): a poison job, kept apart for a person to look at and retry.
    dead_letter: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --- notifications (migration 0002) ---------------------------------------------


class Topic(Base):
    """An SNS-like topic: endpoints publish job outcomes to it, subscriptions receive them."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="topic", order_by="Subscription.created_at", cascade="all, delete-orphan"
    )


class Subscription(Base):
    """A webhook on a topic. `secret` signs each delivery; the API never returns it."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    topic: Mapped[Topic] = relationship(back_populates="subscriptions")


class Event(Base):
    """The outbox: one row per finished job, written in the transaction that finishes it.

    `payload` is the exact JSON body every delivery sends (and signs).
    `fanned_out_at` is set when the notifier has expanded the event into deliveries.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_fanned_out_at", "fanned_out_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(32))
    # Not unique: a failed job retried by a person finishes, and publishes, again.
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    topic: Mapped[str | None] = mapped_column(String(63), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    fanned_out_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class Delivery(Base):
    """One event to one subscription (or, without one, to a job's X-Callback-Url).

    The row id is the `X-Sluiceway-Delivery` header: the same on every retry.
    A notifier owns a pending row while `lease_until` is in the future.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=True, index=True
    )
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    redrives: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    event: Mapped[Event] = relationship()


class DeliveryAttempt(Base):
    """One HTTP attempt of a delivery: when, the answer's status (if any), latency, error."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    scope: Mapped[str] = mapped_column(String(16))
    # Comma-separated endpoint names the key may use; NULL means every endpoint.
    endpoints: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --- batch transform ----------------------------------------------------------------


class TransformJob(Base):
    """A batch transform over an S3 prefix. A resubmission with the same name resumes it."""

    __tablename__ = "transform_jobs"
    __table_args__ = (Index("ix_transform_jobs_status", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    endpoint: Mapped[str | None] = mapped_column(String(63), nullable=True)
    model: Mapped[str | None] = mapped_column(String(63), nullable=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    input_prefix: Mapped[str] = mapped_column(Text)
    output_prefix: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(64))
    split_type: Mapped[str] = mapped_column(String(8))
    batch_strategy: Mapped[str] = mapped_column(String(16))
    max_payload_mb: Mapped[float] = mapped_column(Float)
    assemble_with: Mapped[str] = mapped_column(String(8))
    join_source: Mapped[str] = mapped_column(String(8))
    # More failed records than this share of all (0-100) fails the job once its
    # outputs are written (scheduler/transform/outcome.py).
    max_failed_records_percent: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), default=TransformStatus.QUEUED)
    total_records: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    processed_records: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_records: Mapped[int] = mapped_column(BigInteger, default=0)
    input_objects: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completed_objects: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TransformObject(Base):
    """One input object of a transform job: listed, then planned into chunks, then assembled."""

    __tablename__ = "transform_objects"
    __table_args__ = (
        UniqueConstraint("job_id", "key"),
        Index("ix_transform_objects_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("transform_jobs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=ObjectStatus.LISTED)
    records: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    chunks: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TransformChunk(Base):
    """Whole lines [start_byte, end_byte) of one object: the unit a worker processes.

    `token` names the message last sent for it; a worker only takes a message
    whose token still matches, so a stale copy (after a stop and resume, or a
    re-send) is skipped. `status` moves pending → done once, in the transaction
    that adds the chunk's counts to its job; or pending → failed when the chunk
    cannot be processed at all (its job then fails).
    """

    __tablename__ = "transform_chunks"
    __table_args__ = (
        UniqueConstraint("object_id", "seq"),
        Index("ix_transform_chunks_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("transform_jobs.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(ForeignKey("transform_objects.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    start_byte: Mapped[int] = mapped_column(BigInteger)
    end_byte: Mapped[int] = mapped_column(BigInteger)
    first_line: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(BigInteger)
    oversized: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=ChunkStatus.PENDING)
    token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    part_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_part_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the chunk failed its job
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

"""SQLAlchemy 2 ORM tables: models, model versions, endpoints, variants, jobs.

The schema itself is created only by the Alembic migration in migrations/.
Jobs keep endpoint and variant *names*, not foreign keys: a job's record must
outlive a deleted endpoint.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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
    status: Mapped[str] = mapped_column(String(16), default="in_service")
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


JOB_STATUSES = ("queued", "running", "succeeded", "failed")
TERMINAL_STATUSES = ("succeeded", "failed")


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
    status: Mapped[str] = mapped_column(String(16), default="queued")
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
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

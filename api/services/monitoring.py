"""Monitoring baselines, schedules and their executions: create, read, run now, delete.

The API only records what is wanted; the scheduler's monitoring loop
(scheduler/monitoring/monitor.py) computes baselines and runs executions, and
moves their status on. Inputs are checked here so a bad request is a 4xx at
once: a dataset must exist in a bucket the platform may read, and its first
line must parse; a schedule's endpoint must exist and capture data, its
baseline and alert topic must exist.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.schemas import (
    BaselineCreate,
    BaselinePublic,
    ExecutionPublic,
    ScheduleCreate,
    SchedulePublic,
    Violation,
)
from api.services.topics import require_topics
from core.config import get_settings
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.states import ExecutionStatus
from core.storage import S3Location, get_store
from core.tables import (
    Endpoint,
    MonitoringBaseline,
    MonitoringExecution,
    MonitoringSchedule,
    utcnow,
)

CHECKS = ("data_type", "completeness", "baseline_drift", "missing_column", "extra_column")
SNIFF_BYTES = 64 * 1024


def _folder(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


# --- baselines --------------------------------------------------------------------------


def _baseline_public(row: MonitoringBaseline) -> BaselinePublic:
    return BaselinePublic(
        name=row.name,
        dataset=row.dataset,
        content_type=row.content_type,
        header=row.header,
        status=row.status,
        statistics_location=row.statistics_location,
        constraints_location=row.constraints_location,
        item_count=row.item_count,
        quality_thresholds=row.quality_thresholds,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def check_dataset(uri: str, content_type: str) -> None:
    """The dataset exists, may be read, and its first line parses; else a 4xx naming why."""
    settings = get_settings()
    location = S3Location.parse(uri)
    if not settings.may_read_bucket(location.bucket):
        raise Forbidden(
            f"bucket {location.bucket!r} is not one the platform may read "
            "(SLUICEWAY_READABLE_BUCKETS)"
        )
    store = get_store()
    if not location.key or location.key.endswith("/"):
        first = next(iter(store.list_keys(location)), None)
        if first is None:
            raise InvalidInput(f"dataset {uri!r}: no object under this prefix")
        location = S3Location(location.bucket, first)
    else:
        try:
            size = store.stat(location).size
        except NotFound as exc:
            raise InvalidInput(f"dataset {uri!r} does not exist") from exc
        if size == 0:
            raise InvalidInput(f"dataset {uri!r} is empty")
    head = store.get_range(location, 0, min(SNIFF_BYTES, store.stat(location).size))
    try:
        text = head.decode()
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sniffed piece is fine.
        try:
            text = head[:-4].decode()
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"dataset {location} is not UTF-8 text") from exc
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    if not line:
        raise InvalidInput(f"dataset {location} has no line to read")
    if content_type == "application/jsonlines":
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(
                f"dataset {location}: the first line is not JSON: {line[:80]!r}"
            ) from exc
    elif "\x00" in text or not next(csv.reader([line]), None):
        raise InvalidInput(f"dataset {location} does not read as CSV")


def create_baseline(session: Session, spec: BaselineCreate) -> BaselinePublic:
    if session.scalar(select(MonitoringBaseline.id).where(MonitoringBaseline.name == spec.name)):
        raise Conflict(f"a baseline named {spec.name!r} already exists")
    check_dataset(spec.dataset, spec.content_type)
    prefix = spec.output_prefix or f"{get_settings().monitoring_prefix}baselines/{spec.name}/"
    row = MonitoringBaseline(
        name=spec.name,
        dataset=spec.dataset,
        content_type=spec.content_type,
        header=spec.header,
        output_prefix=_folder(prefix),
        quality_thresholds=spec.quality_thresholds,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a baseline named {spec.name!r} already exists") from exc
    return _baseline_public(row)


def _baseline(session: Session, name: str) -> MonitoringBaseline:
    row = session.scalar(select(MonitoringBaseline).where(MonitoringBaseline.name == name))
    if row is None:
        raise NotFound(f"no baseline named {name!r}")
    return row


def list_baselines(session: Session) -> list[BaselinePublic]:
    rows = session.scalars(select(MonitoringBaseline).order_by(MonitoringBaseline.name))
    return [_baseline_public(row) for row in rows]


def get_baseline(session: Session, name: str) -> BaselinePublic:
    return _baseline_public(_baseline(session, name))


def delete_baseline(session: Session, name: str) -> None:
    row = _baseline(session, name)
    users = session.scalars(
        select(MonitoringSchedule.name).where(MonitoringSchedule.baseline == name)
    ).all()
    if users:
        raise Conflict(
            f"baseline {name!r} is used by schedule(s) {sorted(users)}; delete them first"
        )
    session.delete(row)
    session.commit()


# --- schedules ----------------------------------------------------------------------------


def _execution_public(row: MonitoringExecution, schedule: MonitoringSchedule) -> ExecutionPublic:
    return ExecutionPublic(
        execution_id=row.id,
        schedule=schedule.name,
        endpoint=schedule.endpoint,
        trigger=row.trigger,
        status=row.status,
        window_start=row.window_start,
        window_end=row.window_end,
        records_analyzed=row.records_analyzed,
        violations=[Violation.model_validate(v) for v in row.violations or []],
        quality=row.quality,
        report_location=row.report_location,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _schedule_public(session: Session, row: MonitoringSchedule) -> SchedulePublic:
    last = session.scalar(
        select(MonitoringExecution)
        .where(MonitoringExecution.schedule_id == row.id)
        .order_by(MonitoringExecution.created_at.desc())
        .limit(1)
    )
    return SchedulePublic(
        name=row.name,
        endpoint=row.endpoint,
        baseline=row.baseline,
        interval_s=row.interval_s,
        alert_topic=row.alert_topic,
        ground_truth_prefix=row.ground_truth_prefix,
        problem_type=row.problem_type,
        output_prefix=row.output_prefix,
        next_run_at=row.next_run_at,
        created_at=row.created_at,
        last_execution=_execution_public(last, row) if last else None,
    )


def create_schedule(session: Session, spec: ScheduleCreate) -> SchedulePublic:
    if session.scalar(select(MonitoringSchedule.id).where(MonitoringSchedule.name == spec.name)):
        raise Conflict(f"a schedule named {spec.name!r} already exists")
    capture = session.execute(
        select(Endpoint.name, Endpoint.data_capture).where(Endpoint.name == spec.endpoint)
    ).first()
    if capture is None:
        raise InvalidInput(f"no endpoint named {spec.endpoint!r}")
    if not (capture.data_capture or {}).get("enabled"):
        raise InvalidInput(
            f"endpoint {spec.endpoint!r} does not capture data; enable its data_capture first "
            "(PATCH /v1/endpoints/{name}/data-capture)"
        )
    if (
        session.scalar(
            select(MonitoringBaseline.id).where(MonitoringBaseline.name == spec.baseline)
        )
        is None
    ):
        raise InvalidInput(f"no baseline named {spec.baseline!r}")
    require_topics(session, {"alert_topic": spec.alert_topic})
    if spec.ground_truth_prefix is not None:
        bucket = S3Location.parse(spec.ground_truth_prefix).bucket
        if not get_settings().may_read_bucket(bucket):
            raise Forbidden(f"bucket {bucket!r} is not one the platform may read")
    now = utcnow()
    prefix = spec.output_prefix or f"{get_settings().monitoring_prefix}schedules/{spec.name}/"
    row = MonitoringSchedule(
        name=spec.name,
        endpoint=spec.endpoint,
        baseline=spec.baseline,
        interval_s=spec.interval_s,
        alert_topic=spec.alert_topic,
        ground_truth_prefix=spec.ground_truth_prefix,
        problem_type=spec.problem_type,
        output_prefix=_folder(prefix),
        next_run_at=now + dt.timedelta(seconds=spec.interval_s),
        created_at=now,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a schedule named {spec.name!r} already exists") from exc
    return _schedule_public(session, row)


def _schedule(session: Session, name: str) -> MonitoringSchedule:
    row = session.scalar(select(MonitoringSchedule).where(MonitoringSchedule.name == name))
    if row is None:
        raise NotFound(f"no monitoring schedule named {name!r}")
    return row


def list_schedules(session: Session) -> list[SchedulePublic]:
    rows = session.scalars(select(MonitoringSchedule).order_by(MonitoringSchedule.name))
    return [_schedule_public(session, row) for row in rows]


def get_schedule(session: Session, name: str) -> SchedulePublic:
    return _schedule_public(session, _schedule(session, name))


def delete_schedule(session: Session, name: str) -> None:
    """Delete a schedule and its executions' records (their reports stay in S3)."""
    session.delete(_schedule(session, name))
    session.commit()


def run_now(session: Session, name: str) -> ExecutionPublic:
    """Queue a run of the schedule now; the scheduler takes it within a tick."""
    schedule = _schedule(session, name)
    row = MonitoringExecution(
        schedule_id=schedule.id,
        trigger="manual",
        status=ExecutionStatus.PENDING,
        violations=[],
        records_analyzed=0,
        created_at=utcnow(),
    )
    session.add(row)
    session.commit()
    return _execution_public(row, schedule)


def list_executions(session: Session, name: str, *, limit: int) -> list[ExecutionPublic]:
    """The schedule's runs, newest first."""
    schedule = _schedule(session, name)
    rows = session.scalars(
        select(MonitoringExecution)
        .where(MonitoringExecution.schedule_id == schedule.id)
        .order_by(MonitoringExecution.created_at.desc())
        .limit(limit)
    )
    return [_execution_public(row, schedule) for row in rows]


def get_execution(session: Session, name: str, execution_id: str) -> ExecutionPublic:
    schedule = _schedule(session, name)
    row = session.get(MonitoringExecution, execution_id)
    if row is None or row.schedule_id != schedule.id:
        raise NotFound(f"schedule {name!r} has no execution {execution_id!r}")
    return _execution_public(row, schedule)


# --- metrics --------------------------------------------------------------------------------


def violation_counts(session: Session) -> Counter[tuple[str, str]]:
    """(endpoint, check) → violations in the latest finished run of each schedule on it;
    every check of a monitored endpoint is present, 0 when clean."""
    finished = (ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED_WITH_VIOLATIONS)
    latest = (
        select(
            MonitoringExecution.schedule_id,
            func.max(MonitoringExecution.created_at).label("created_at"),
        )
        .where(MonitoringExecution.status.in_(finished))
        .group_by(MonitoringExecution.schedule_id)
        .subquery()
    )
    rows = session.execute(
        select(MonitoringSchedule.endpoint, MonitoringExecution.violations)
        .join(MonitoringExecution, MonitoringExecution.schedule_id == MonitoringSchedule.id)
        .join(
            latest,
            (latest.c.schedule_id == MonitoringExecution.schedule_id)
            & (latest.c.created_at == MonitoringExecution.created_at),
        )
        .where(MonitoringExecution.status.in_(finished))
    ).all()
    counts: Counter[tuple[str, str]] = Counter()
    for endpoint, violations in rows:
        for check in CHECKS:
            counts[(endpoint, check)] += 0
        for violation in violations or []:
            counts[(endpoint, violation["check"])] += 1
    return counts

"""The monitoring loop's SQL: take baselines and runs, queue due runs, record outcomes.

Each function is one short transaction in the caller's session. "Take" is a
conditional UPDATE (still pending, or running under an expired lease), so two
schedulers never run the same baseline or execution at once, and one that dies
mid-run leaves work that is taken again once its lease runs out. A run's
window is fixed when it is first taken, in the same transaction that moves the
schedule's `window_end` on: a retried run keeps its window, and consecutive
runs never overlap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.outbox import record_monitoring_event, rfc3339
from core.states import BaselineStatus, ExecutionStatus
from core.tables import (
    Endpoint,
    MonitoringBaseline,
    MonitoringExecution,
    MonitoringSchedule,
)
from scheduler.monitoring import decisions


@dataclass(frozen=True, slots=True)
class BaselineWork:
    id: str
    name: str
    dataset: str
    content_type: str
    header: bool
    statistics_location: str
    constraints_location: str
    quality_thresholds: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class ExecutionWork:
    id: str
    schedule: str
    endpoint: str
    window_start: dt.datetime | None
    window_end: dt.datetime
    destination: str | None  # the endpoint's capture destination, if it captures
    baseline: str
    baseline_status: str | None  # None: no such baseline any more
    statistics_location: str
    constraints_location: str
    ground_truth_prefix: str | None
    problem_type: str | None
    report_prefix: str
    alert_topic: str | None


def _takeable(model: Any, now: dt.datetime) -> Any:
    return or_(
        model.status == "pending",
        (model.status == "running") & (model.lease_until < now),
    )


def claim_baseline(session: Session, *, now: dt.datetime, lease_s: float) -> BaselineWork | None:
    """Take the oldest baseline waiting to be computed (or abandoned by a dead scheduler)."""
    row = session.scalar(
        select(MonitoringBaseline)
        .where(_takeable(MonitoringBaseline, now))
        .order_by(MonitoringBaseline.created_at)
        .limit(1)
    )
    if row is None:
        return None
    taken = session.execute(
        update(MonitoringBaseline)
        .where(MonitoringBaseline.id == row.id, _takeable(MonitoringBaseline, now))
        .values(
            status=BaselineStatus.RUNNING,
            started_at=now,
            lease_until=now + dt.timedelta(seconds=lease_s),
        )
        .returning(MonitoringBaseline.id)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        return None
    return BaselineWork(
        id=row.id,
        name=row.name,
        dataset=row.dataset,
        content_type=row.content_type,
        header=row.header,
        statistics_location=row.statistics_location,
        constraints_location=row.constraints_location,
        quality_thresholds=row.quality_thresholds,
    )


def finish_baseline(
    session: Session,
    baseline_id: str,
    *,
    now: dt.datetime,
    item_count: int | None = None,
    error: str | None = None,
) -> None:
    """Record a computed baseline (its row count) or why it failed."""
    session.execute(
        update(MonitoringBaseline)
        .where(MonitoringBaseline.id == baseline_id)
        .values(
            status=BaselineStatus.FAILED if error else BaselineStatus.COMPLETED,
            item_count=item_count,
            error=error,
            finished_at=now,
            lease_until=None,
        )
    )


def retry_later(session: Session, model: Any, work_id: str, *, at: dt.datetime) -> None:
    """Leave a baseline or execution running but free to be taken again at `at` (S3 down)."""
    session.execute(update(model).where(model.id == work_id).values(lease_until=at))


def queue_due_runs(session: Session, *, now: dt.datetime) -> int:
    """Add a pending execution for each schedule whose time has come; move it to its next."""
    due = session.scalars(
        select(MonitoringSchedule).where(MonitoringSchedule.next_run_at <= now)
    ).all()
    for schedule in due:
        session.add(
            MonitoringExecution(
                schedule_id=schedule.id,
                trigger="schedule",
                status=ExecutionStatus.PENDING,
                violations=[],
                created_at=now,
            )
        )
        schedule.next_run_at = decisions.next_run_at(schedule.next_run_at, schedule.interval_s, now)
    return len(due)


def claim_execution(session: Session, *, now: dt.datetime, lease_s: float) -> ExecutionWork | None:
    """Take the oldest pending run (or one abandoned by a dead scheduler), fixing its window."""
    row = session.scalar(
        select(MonitoringExecution)
        .where(_takeable(MonitoringExecution, now))
        .order_by(MonitoringExecution.created_at)
        .limit(1)
    )
    if row is None:
        return None
    taken = session.execute(
        update(MonitoringExecution)
        .where(MonitoringExecution.id == row.id, _takeable(MonitoringExecution, now))
        .values(
            status=ExecutionStatus.RUNNING,
            started_at=now,
            lease_until=now + dt.timedelta(seconds=lease_s),
        )
        .returning(MonitoringExecution.id)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        return None
    schedule = session.get(MonitoringSchedule, row.schedule_id)
    assert schedule is not None  # executions are deleted with their schedule
    if row.window_end is None:
        start = schedule.window_end if schedule.window_end else None
        end = decisions.window_end(now)
        if start is not None and end < start:
            end = start
        row.window_start, row.window_end = start, end
        schedule.window_end = end
    session.flush()
    baseline = session.scalar(
        select(MonitoringBaseline).where(MonitoringBaseline.name == schedule.baseline)
    )
    capture = session.scalar(
        select(Endpoint.data_capture).where(Endpoint.name == schedule.endpoint)
    )
    return ExecutionWork(
        id=row.id,
        schedule=schedule.name,
        endpoint=schedule.endpoint,
        window_start=row.window_start,
        window_end=row.window_end,
        destination=(capture or {}).get("destination"),
        baseline=schedule.baseline,
        baseline_status=baseline.status if baseline else None,
        statistics_location=baseline.statistics_location if baseline else "",
        constraints_location=baseline.constraints_location if baseline else "",
        ground_truth_prefix=schedule.ground_truth_prefix,
        problem_type=schedule.problem_type,
        report_prefix=f"{schedule.output_prefix}{row.id}/",
        alert_topic=schedule.alert_topic,
    )


def finish_execution(
    session: Session,
    work: ExecutionWork,
    *,
    now: dt.datetime,
    records: int,
    violations: list[decisions.Violation],
    quality: dict[str, Any] | None,
    report_location: str | None,
    error: str | None = None,
) -> None:
    """Record a run's outcome; with violations and an alert topic, its outbox event too
    (same transaction: the alert goes out exactly when the outcome is stored)."""
    if error:
        status = ExecutionStatus.FAILED
    elif violations:
        status = ExecutionStatus.COMPLETED_WITH_VIOLATIONS
    else:
        status = ExecutionStatus.COMPLETED
    session.execute(
        update(MonitoringExecution)
        .where(MonitoringExecution.id == work.id)
        .values(
            status=status,
            records_analyzed=records,
            violations=[v.to_json() for v in violations],
            quality=quality,
            report_location=report_location,
            error=error,
            finished_at=now,
            lease_until=None,
        )
    )
    if violations and work.alert_topic:
        record_monitoring_event(
            session,
            execution_id=work.id,
            topic=work.alert_topic,
            payload={
                "type": "MonitoringViolations",
                "schedule": work.schedule,
                "endpoint": work.endpoint,
                "execution_id": work.id,
                "records_analyzed": records,
                "violations": [v.to_json() for v in violations],
                "report_location": report_location,
                "window_start": rfc3339(work.window_start),
                "window_end": rfc3339(work.window_end),
                "finished_at": rfc3339(now),
            },
        )

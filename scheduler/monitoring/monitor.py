"""The monitoring loop: computes baselines and runs monitoring schedules, in the scheduler.

Every `monitoring_interval_s` (2 s), and at once again while there is work, one
step (SQL in store.py, decisions in decisions.py, S3 in capture_io.py):

1. queues a run for each schedule whose interval came round;
2. computes one waiting baseline: streams the dataset in blocks of
   `BLOCK_ROWS` rows into a `Profile`, writes statistics.json and
   constraints.json; or else
3. runs one waiting execution: streams the window's capture records through a
   `Profile` (and, with ground truth, a `QualitySample`), checks them against
   the baseline's constraints, writes the report objects, and records the
   outcome — with a `MonitoringViolations` outbox event for the alert topic
   when it found any, so the notifier signs and delivers it like any other.

A run's memory is one block of rows plus the sketches, whatever the number of
captured records (bench/monitoring.py: a million records, flat RSS). While the
object store is unreachable a baseline or run is retried every
`RETRY_S`; a dataset that cannot be read fails its baseline with the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from core.config import Settings
from core.db import session_scope
from core.errors import SluicewayError, StorageError, describe
from core.states import BaselineStatus
from core.storage import ObjectStore, get_store
from core.tables import MonitoringBaseline, MonitoringExecution, utcnow
from scheduler.loop import start_loop
from scheduler.monitoring import capture_io, decisions, store
from scheduler.monitoring.quality import QualitySample, parse_predictions
from scheduler.monitoring.statistics import Profile

logger = logging.getLogger(__name__)

BLOCK_ROWS = 20_000
LEASE_S = 3600.0  # a run longer than this is taken again by another scheduler
RETRY_S = 30.0


class MonitoringLoop:
    """Baselines and monitoring runs (a `scheduler.loop.ControlLoop`)."""

    name = "monitoring"

    def __init__(
        self,
        settings: Settings,
        *,
        objects: ObjectStore | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self._objects = objects
        self.clock = clock

    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            self._objects = get_store()
        return self._objects

    # --- the loop --------------------------------------------------------------------

    def step(self) -> bool:
        """Queue due runs, then compute one baseline or run one execution. True if it did."""
        now = self.clock()
        with session_scope() as session:
            store.queue_due_runs(session, now=now)
            baseline = store.claim_baseline(session, now=now, lease_s=LEASE_S)
        if baseline is not None:
            self.compute_baseline(baseline)
            return True
        with session_scope() as session:
            execution = store.claim_execution(session, now=self.clock(), lease_s=LEASE_S)
        if execution is not None:
            self.run_execution(execution)
            return True
        return False

    def idle(self, stop: threading.Event) -> None:
        stop.wait(self.settings.monitoring_interval_s)

    def close(self) -> None:
        pass

    # --- baselines ----------------------------------------------------------------------

    def compute_baseline(self, work: store.BaselineWork) -> None:
        started = self.clock()
        try:
            profile = self.profile_dataset(work)
            capture_io.write_json(self.objects, work.statistics_location, profile.statistics_json())
            capture_io.write_json(
                self.objects,
                work.constraints_location,
                decisions.suggest_constraints(profile, work.quality_thresholds),
            )
        except StorageError as exc:
            self._retry(MonitoringBaseline, work.id, f"baseline {work.name}", exc)
            return
        except (SluicewayError, ValueError, UnicodeError) as exc:
            reason = exc.detail if isinstance(exc, SluicewayError) else describe(exc)
            logger.warning("baseline %s failed: %s", work.name, reason)
            with session_scope() as session:
                store.finish_baseline(session, work.id, now=self.clock(), error=reason)
            return
        with session_scope() as session:
            store.finish_baseline(session, work.id, now=self.clock(), item_count=profile.item_count)
        logger.info(
            "baseline %s: %d rows, %d features in %.1f s",
            work.name,
            profile.item_count,
            len(profile.features),
            (self.clock() - started).total_seconds(),
        )

    def profile_dataset(self, work: store.BaselineWork) -> Profile:
        names, blocks = capture_io.dataset_rows(
            self.objects,
            work.dataset,
            content_type=work.content_type,
            header=work.header,
            block_rows=BLOCK_ROWS,
        )
        profile = Profile(names)
        for block in blocks:
            profile.add_rows(block)
        if profile.item_count == 0:
            raise ValueError(f"the dataset {work.dataset} holds no rows")
        return profile

    # --- runs -------------------------------------------------------------------------------

    def run_execution(self, work: store.ExecutionWork) -> None:
        try:
            outcome = self.analyze(work)
        except StorageError as exc:
            self._retry(MonitoringExecution, work.id, f"run {work.id} of {work.schedule}", exc)
            return
        except Exception as exc:
            reason = exc.detail if isinstance(exc, SluicewayError) else describe(exc)
            if not isinstance(exc, SluicewayError | ValueError):
                logger.exception("run %s of %s failed", work.id, work.schedule)
            with session_scope() as session:
                store.finish_execution(
                    session,
                    work,
                    now=self.clock(),
                    records=0,
                    violations=[],
                    quality=None,
                    report_location=None,
                    error=reason,
                )
            return
        records, violations, quality, report = outcome
        with session_scope() as session:
            store.finish_execution(
                session,
                work,
                now=self.clock(),
                records=records,
                violations=violations,
                quality=quality,
                report_location=report,
            )
        logger.info(
            "run %s of %s: %d records, %d violation(s)",
            work.id,
            work.schedule,
            records,
            len(violations),
        )

    def analyze(
        self, work: store.ExecutionWork
    ) -> tuple[int, list[decisions.Violation], dict[str, Any] | None, str]:
        """Check the window's captured records; returns (records, violations, quality, report)."""
        if work.baseline_status is None:
            raise ValueError(f"baseline {work.baseline!r} no longer exists")
        if work.baseline_status != BaselineStatus.COMPLETED:
            raise ValueError(f"baseline {work.baseline!r} is {work.baseline_status}, not completed")
        if work.destination is None:
            raise ValueError(f"endpoint {work.endpoint!r} has no data capture destination")
        statistics = capture_io.read_json(self.objects, work.statistics_location)
        constraints = capture_io.read_json(self.objects, work.constraints_location)
        features = decisions.baseline_features(statistics, constraints)
        profile = Profile([f.name for f in features])
        sample = labels = None
        if work.ground_truth_prefix and work.problem_type:
            labels = capture_io.ground_truth(self.objects, work.ground_truth_prefix)
            sample = QualitySample(work.problem_type)
        locations = capture_io.capture_objects(
            self.objects,
            destination=work.destination,
            endpoint=work.endpoint,
            start=work.window_start,
            end=work.window_end,
        )
        records = 0
        block: list[Any] = []
        for record in capture_io.iter_records(self.objects, locations):
            records += 1
            block.extend(capture_io.input_rows(record))
            if sample is not None and labels is not None:
                self._match(sample, labels, record)
            if len(block) >= BLOCK_ROWS:
                profile.add_rows(block)
                block = []
        profile.add_rows(block)
        violations = decisions.data_quality_violations(
            features, profile, constraints.get("monitoring_config", {})
        )
        quality = sample.metrics() if sample is not None else None
        if quality is not None:
            violations += decisions.quality_violations(quality, constraints)
        report = self.write_report(work, profile, records, violations, quality, len(locations))
        return records, violations, quality, report

    @staticmethod
    def _match(sample: QualitySample, labels: dict[str, Any], record: dict[str, Any]) -> None:
        inference_id = capture_io.inference_id(record)
        predictions = parse_predictions(capture_io.output_data(record))
        if inference_id is None or inference_id not in labels:
            sample.unmatched += len(predictions)
            return
        sample.add(labels[inference_id], predictions)

    def write_report(
        self,
        work: store.ExecutionWork,
        profile: Profile,
        records: int,
        violations: list[decisions.Violation],
        quality: dict[str, Any] | None,
        objects: int,
    ) -> str:
        """statistics.json, constraint_violations.json (Model Monitor's shapes) and
        report.json (everything of the run) under the run's folder; returns report.json's URI."""
        prefix = work.report_prefix
        capture_io.write_json(self.objects, f"{prefix}statistics.json", profile.statistics_json())
        capture_io.write_json(
            self.objects,
            f"{prefix}constraint_violations.json",
            {"violations": [v.sagemaker_json() for v in violations]},
        )
        report = f"{prefix}report.json"
        capture_io.write_json(
            self.objects,
            report,
            {
                "execution_id": work.id,
                "schedule": work.schedule,
                "endpoint": work.endpoint,
                "baseline": work.baseline,
                "window_start": work.window_start.isoformat() if work.window_start else None,
                "window_end": work.window_end.isoformat(),
                "capture_objects": objects,
                "records_analyzed": records,
                "rows_analyzed": profile.item_count,
                "violations": [v.to_json() for v in violations],
                "quality": quality,
                "statistics_location": f"{prefix}statistics.json",
            },
        )
        return report

    def _retry(self, model: Any, work_id: str, what: str, exc: StorageError) -> None:
        logger.warning("%s: %s; retrying in %.0f s", what, exc.detail, RETRY_S)
        with session_scope() as session:
            store.retry_later(
                session, model, work_id, at=self.clock() + dt.timedelta(seconds=RETRY_S)
            )


def start_monitoring(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run the monitoring loop on its own thread until `stop` is set."""
    return start_loop(MonitoringLoop(settings), stop)

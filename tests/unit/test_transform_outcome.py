"""How a transform job ends once its outputs are written: the failed-records threshold."""

from __future__ import annotations

import pytest

from scheduler.transform.outcome import failure_reason

PREFIX = "s3://data/out/"


@pytest.mark.parametrize(
    ("total", "failed", "max_percent"),
    [(272, 0, 0), (272, 2, 1), (8, 1, 12.5), (4, 4, 100), (0, 0, 0)],
    ids=["none-failed", "under", "exactly-at", "all-allowed", "empty-job"],
)
def test_a_job_succeeds_up_to_its_threshold(total: int, failed: int, max_percent: float) -> None:
    assert (
        failure_reason(total=total, failed=failed, max_percent=max_percent, output_prefix=PREFIX)
        is None
    )


def test_a_job_in_which_every_record_failed_fails_naming_threshold_and_share() -> None:
    """Regression: a transform whose handler failed all 4 records ended `succeeded`
    (an output of blank lines and a TransformSucceeded event)."""
    reason = failure_reason(total=4, failed=4, max_percent=0, output_prefix=PREFIX)
    assert reason is not None
    assert reason.startswith("4 of 4 records failed (100%); more than max_failed_records_percent 0")
    assert PREFIX in reason


@pytest.mark.parametrize(
    ("total", "failed", "max_percent", "share"),
    [(272, 2, 0, "(0.735%)"), (70, 60, 50, "(85.7%)"), (3, 1, 33.3, "(33.3%)")],
)
def test_over_the_threshold_fails_with_the_measured_share(
    total: int, failed: int, max_percent: float, share: str
) -> None:
    reason = failure_reason(
        total=total, failed=failed, max_percent=max_percent, output_prefix=PREFIX
    )
    assert reason is not None and share in reason
    assert f"max_failed_records_percent {max_percent:g}" in reason

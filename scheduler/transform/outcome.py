"""How a transform job ends once every object's output is written: a pure decision.

A job succeeds when at most `max_failed_records_percent` of its records
failed, and fails otherwise, with an error that names the threshold and the
measured share. The outputs are written either way (a failed record keeps its
line, and is listed in the `.err` object beside its output), so nothing done
is lost; the status says whether the run as a whole did its job.

The default threshold is 0, as SageMaker batch transform: a bad record fails
the input it is in, and so the job, while the other inputs are still
processed and written. Worked numbers:

- 4 of 4 records failed, threshold 0   → failed: "4 of 4 records failed (100%);
  more than max_failed_records_percent 0 allows ..."
- 2 of 272 failed, threshold 0         → failed (0.735% > 0%)
- 2 of 272 failed, threshold 1         → succeeded (0.735% <= 1%)
- 0 of 0 (every object empty), any     → succeeded: nothing failed
- 1 of 8 failed, threshold 12.5        → succeeded (exactly 12.5% is allowed)
"""

from __future__ import annotations


def failure_reason(
    *, total: int, failed: int, max_percent: float, output_prefix: str
) -> str | None:
    """Why a job whose outputs are all written fails, or None when it succeeds.

    `total` and `failed` are record counts; `max_percent` is the job's
    `max_failed_records_percent` (0 to 100). Compared in integers-times-100, so
    a share exactly at the threshold passes.
    """
    if failed == 0 or failed * 100 <= max_percent * total:
        return None
    share = failed * 100 / total if total else 100.0
    return (
        f"{failed} of {total} records failed ({share:.3g}%); more than "
        f"max_failed_records_percent {max_percent:g} allows. Every output is written: "
        f"each failed record is listed in the .err object beside its .out under {output_prefix}"
    )

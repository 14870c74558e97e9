"""The live progress bar of `TransformJob.wait(progress=True)` (and `sluice transform --wait`).

Records done of the total, the rate rich measures over the last updates, time
left and elapsed, then a note: status, failed records, objects done of listed.
Drawn on stderr by default, so stdout stays clean for data.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from sluiceway.types import TransformJobInfo


class RateColumn(ProgressColumn):
    """Records per second, as rich measures it over the last updates."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "- rec/s", style="progress.data.speed")


def note(job: TransformJobInfo) -> str:
    """`running, 3 failed, 2/20 objects` (or `running, listing` before the objects are known)."""
    parts = [job.status]
    if job.failed_records:
        parts.append(f"{job.failed_records:,} failed")
    if job.input_objects is not None:
        parts.append(f"{job.completed_objects}/{job.input_objects} objects")
    elif job.status == "running":
        parts.append("listing")
    return ", ".join(parts)


class TransformProgress:
    """A context manager whose `update(job)` redraws the bar for the job's latest state."""

    def __init__(self, description: str, *, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("records"),
            RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.task: TaskID = self.progress.add_task(description, total=None, note="")

    def update(self, job: TransformJobInfo) -> None:
        self.progress.update(
            self.task, total=job.total_records, completed=job.processed_records, note=note(job)
        )

    def __enter__(self) -> TransformProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

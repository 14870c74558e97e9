"""A monitoring run over many captured records: time and peak memory (RSS).

Writes N capture records (SageMaker format, 4 numeric features per request,
10,000 records per object, as workers would) to a local SeaweedFS, a baseline
of 5,000 rows beside them, then runs the monitoring analysis on them in a
fresh child process per N and reports its wall time and peak RSS. Streaming
means the RSS stays flat as N grows.

    .venv/bin/python -m bench.monitoring [--records 100000 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from core.config import Settings
from core.storage import ObjectStore, S3Location
from devstack.servers import SeaweedServer
from scheduler.monitoring import capture_io, decisions
from scheduler.monitoring.monitor import MonitoringLoop
from scheduler.monitoring.statistics import Profile
from scheduler.monitoring.store import ExecutionWork

BUCKET = "monitor-bench"
PER_OBJECT = 10_000


def write_capture(store: ObjectStore, endpoint: str, records: int) -> None:
    rng = np.random.default_rng(1)
    for first in range(0, records, PER_OBJECT):
        rows = rng.normal(size=(min(PER_OBJECT, records - first), 4)).round(4).tolist()
        lines = []
        for i, row in enumerate(rows):
            body = orjson.dumps({"instances": [row]}).decode()
            lines.append(
                orjson.dumps(
                    {
                        "captureData": {
                            "endpointInput": {
                                "observedContentType": "application/json",
                                "mode": "INPUT",
                                "data": body,
                                "encoding": "JSON",
                            },
                            "endpointOutput": {
                                "observedContentType": "application/json",
                                "mode": "OUTPUT",
                                "data": '{"predictions":[0.5]}',
                                "encoding": "JSON",
                            },
                        },
                        "eventMetadata": {
                            "eventId": f"e{first + i}",
                            "inferenceId": f"i{first + i}",
                            "inferenceTime": "2026-01-01T00:00:00.000Z",
                        },
                        "eventVersion": "0",
                    }
                )
            )
        location = S3Location(BUCKET, f"capture/{endpoint}/a/2026/01/01/00/{first:09d}.jsonl")
        store.put_bytes(location, b"\n".join(lines) + b"\n", "application/jsonlines")


def analyze(settings: Settings, work: ExecutionWork, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = ObjectStore(settings)
    started = time.perf_counter()
    records, violations, _quality, _report = MonitoringLoop(settings, objects=store).analyze(work)
    out.put(
        (
            records,
            len(violations),
            time.perf_counter() - started,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="sluiceway-monitor-bench-"))
    with SeaweedServer(home / "s3", access_key="bench", secret_key="bench-secret") as s3:
        settings = Settings(**{k[10:].lower(): v for k, v in s3.settings_env().items()})
        store = ObjectStore(settings)
        baseline = Profile()
        baseline.add_rows(np.random.default_rng(0).normal(size=(5000, 4)).tolist())
        base = f"s3://{BUCKET}/baseline/"
        capture_io.write_json(store, f"{base}statistics.json", baseline.statistics_json())
        capture_io.write_json(
            store, f"{base}constraints.json", decisions.suggest_constraints(baseline)
        )
        lines = ["| captured records | run time s | records/s | peak RSS MiB | violations |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for count in args.records:
            endpoint = f"ep{count}"
            write_capture(store, endpoint, count)
            work = ExecutionWork(
                id=f"bench-{count}",
                schedule="bench",
                endpoint=endpoint,
                window_start=None,
                window_end=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
                destination=f"s3://{BUCKET}/capture/",
                baseline="bench",
                baseline_status="completed",
                statistics_location=f"{base}statistics.json",
                constraints_location=f"{base}constraints.json",
                ground_truth_prefix=None,
                problem_type=None,
                report_prefix=f"s3://{BUCKET}/reports/{count}/",
                alert_topic=None,
            )
            context = multiprocessing.get_context("spawn")
            out = context.Queue()
            child = context.Process(target=analyze, args=(settings, work, out))
            child.start()
            records, violations, seconds, rss = out.get()
            child.join()
            lines.append(
                f"| {records:,} | {seconds:.1f} | {records / seconds:,.0f} | {rss:.0f} "
                f"| {violations} |"
            )
            print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()

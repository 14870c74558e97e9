"""The demo's batch-transform step: score a small S3 prefix and check every output line.

It writes its input straight to the object store, so it needs the store's
address: SLUICEWAY_S3_ENDPOINT (and keys), or the `stack.json` that `sluice up`
writes into SLUICEWAY_HOME while it runs (as under `make demo`).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from core.config import Settings, get_settings

if TYPE_CHECKING:
    from cli.demo_tour import Tour

OBJECTS = {"in/day-1.csv": 40, "in/nested/day-2.csv": 25, "in/nested/empty.csv": 0}
TIMEOUT_S = 120.0


def object_store_settings() -> Settings | None:
    settings = get_settings()
    if settings.s3_endpoint:
        return settings
    stack_file = settings.home / "stack.json"
    if stack_file.exists():
        endpoint = json.loads(stack_file.read_text()).get("s3_endpoint")
        if endpoint:
            return settings.model_copy(update={"s3_endpoint": endpoint})
    return None


def step_transform(tour: Tour) -> str:
    """A transform job for the xgboost model over three objects, output checked line by line."""
    from cli.demo import DemoFailure, check_predictions
    from core.storage import ObjectStore, S3Location

    settings = object_store_settings()
    if settings is None:
        raise DemoFailure(
            "the object store's address is unknown: set SLUICEWAY_S3_ENDPOINT (and keys), "
            "or run the demo against `sluice up` on this machine"
        )
    store = ObjectStore(settings)
    bucket = f"sluiceway-demo-{tour.suffix}"
    inputs: dict[str, list[list[float]]] = {}
    for key, count in OBJECTS.items():
        rows = tour.rows(count)
        inputs[key] = rows
        text = "".join(",".join(str(v) for v in row) + "\n" for row in rows)
        store.put_bytes(S3Location(bucket, key), text.encode(), "text/csv")
    model, version = tour.registered["xgboost"]
    spec: dict[str, Any] = {
        "model": model,
        "model_version": version,
        "input_prefix": f"s3://{bucket}/in/",
        "output_prefix": f"s3://{bucket}/out/",
        "content_type": "text/csv",
    }
    job = tour.api.request("POST", "/v1/transform-jobs", json=spec).json()
    tour.say(f"transform job {job['job_id'][:8]}: {spec['input_prefix']} → {spec['output_prefix']}")
    deadline = time.monotonic() + TIMEOUT_S
    while job.get("status") not in ("succeeded", "failed", "stopped"):
        if time.monotonic() > deadline:
            raise DemoFailure(f"transform job still {job.get('status')} after {TIMEOUT_S:.0f} s")
        time.sleep(0.3)
        job = tour.api.get_json(f"/v1/transform-jobs/{job['job_id']}")
    if job["status"] != "succeeded":
        raise DemoFailure(f"transform job {job['status']}: {job.get('error')}")
    for key, rows in inputs.items():
        out = S3Location(bucket, "out/" + key.removeprefix("in/") + ".out")
        lines = store.get_bytes(out).decode().splitlines()
        if len(lines) != len(rows):
            raise DemoFailure(f"{out} has {len(lines)} lines for {len(rows)} records")
        if rows:
            expected = tour.built().predict("xgboost", rows)
            check_predictions([float(line) for line in lines], expected, what=str(out))
        tour.say(f"{out}: {len(lines)} lines, each the model's own prediction")
    return (
        f"{job['processed_records']} records in {job['completed_objects']} objects, "
        "every output line matches"
    )

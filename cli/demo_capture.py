"""The demo's monitoring step: capture an endpoint's traffic, baseline, find the drift.

It turns data capture on for the demo endpoint (PATCH .../data-capture, live),
writes a baseline dataset (ten of the demo's rows, repeated) to the store,
computes its baseline, makes a schedule, then sends traffic whose third
feature is shifted by +3 and runs the schedule at once: the run must report
`baseline_drift` for that feature (`_c2`) and for no other. Every shifted call
is still checked against the model called directly. Capture is turned off
after the run, so the rest of the tour is not recorded.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from cli import api_client as http
from cli.demo_models import DemoFailure, check_predictions
from cli.demo_tour import VARIANTS, field_of, invocation_url, short_id
from cli.demo_transform import object_store_settings

if TYPE_CHECKING:
    from cli.demo_tour import Tour

BASELINE_REPEATS = 20  # 200 rows: the ROWS_PER_CALL rows, 20 times
SHIFTED_FEATURE = 2  # captured as column _c2 (no header: columns by position)
SHIFT = 3.0
ROWS_PER_CALL = 10
MIN_CAPTURED_RECORDS = 5  # requests, so at least 50 rows reach the run
CAPTURE_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 90.0
FINISHED = ("completed", "completed_with_violations", "failed")


def shifted(rows: list[list[float]], feature: int = SHIFTED_FEATURE) -> list[list[float]]:
    """The rows with `feature` moved by SHIFT: traffic that no longer looks like the baseline."""
    return [[v + SHIFT if i == feature else v for i, v in enumerate(row)] for row in rows]


def drifted_features(violations: list[dict[str, Any]]) -> list[str]:
    """The features a run flagged with `baseline_drift`, sorted."""
    return sorted(str(v.get("feature")) for v in violations if v.get("check") == "baseline_drift")


def _poll(tour: Tour, path: str, *, done: tuple[str, ...], timeout_s: float) -> dict[str, Any]:
    """GET `path` until its `status` is one of `done`; DemoFailure after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = tour.api.get_json(path)
        if body.get("status") in done:
            return dict(body)
        if time.monotonic() > deadline:
            raise DemoFailure(f"{path} still {body.get('status')} after {timeout_s:g} s")
        time.sleep(0.5)


def _shifted_call(tour: Tour, baseline_rows: list[list[float]]) -> None:
    rows = shifted(baseline_rows)
    response = tour.api.request(
        "POST", invocation_url(tour, "invocations"), json={"instances": rows}
    )
    variant = response.headers.get("X-Invoked-Variant", "")
    predictions = field_of(response.json(), "predictions", what="a realtime call")
    expected = tour.built().predict(VARIANTS.get(variant, "?"), rows)
    check_predictions(predictions, expected, what=f"a shifted call on variant {variant}")


def step_monitoring(tour: Tour) -> str:
    """Capture → baseline → schedule → shifted traffic → a run that finds the drift."""
    from core.storage import ObjectStore, S3Location

    settings = object_store_settings()
    if settings is None:
        raise DemoFailure("the object store's address is unknown (see the transform step)")
    store = ObjectStore(settings)
    bucket = f"sluiceway-demo-{tour.suffix}"
    store.ensure_bucket(bucket)
    name = f"demo-drift-{tour.suffix}"

    # The baseline repeats the rows every shifted call sends (feature 2 aside), so the
    # captured distribution of every other feature is the baseline's exactly, however
    # many calls are captured: drift shows in feature 2 alone, never by sampling luck.
    rows = tour.rows(ROWS_PER_CALL)
    dataset = S3Location(bucket, "baseline/train.csv")
    lines = [",".join(str(v) for v in row) + "\n" for row in rows]
    store.put_bytes(dataset, "".join(lines * BASELINE_REPEATS).encode(), "text/csv")
    tour.api.request(
        "POST",
        "/v1/monitoring/baselines",
        json={"name": name, "dataset": f"s3://{bucket}/baseline/train.csv"},
    )
    baseline = _poll(
        tour,
        http.path("/v1/monitoring/baselines/{}", name),
        done=("completed", "failed"),
        timeout_s=RUN_TIMEOUT_S,
    )
    if baseline["status"] != "completed":
        raise DemoFailure(f"baseline {name} failed: {baseline.get('error')}")
    rows_read, constraints = baseline.get("item_count"), baseline.get("constraints_location")
    tour.say(f"baseline {name}: {rows_read} rows → {constraints}")

    destination = f"s3://{bucket}/capture/"
    tour.api.request(
        "PATCH",
        http.path("/v1/endpoints/{}/data-capture", tour.endpoint),
        json={"enabled": True, "sampling_percent": 100, "destination": destination},
    )
    tour.say(f"data capture on {tour.endpoint} → {destination} (live, no deployment)")
    tour.api.request(
        "POST",
        "/v1/monitoring/schedules",
        json={"name": name, "endpoint": tour.endpoint, "baseline": name, "interval_s": 3600},
    )
    try:
        captured = _send_until_captured(tour, rows, store, S3Location(bucket, "capture/"))
        tour.say(f"{captured} calls, feature {SHIFTED_FEATURE} + {SHIFT:g}, captured; all match")
        run = _run_schedule(tour, name)
    finally:
        # The run reads the endpoint's capture destination, so capture stops only after it.
        tour.api.request(
            "PATCH",
            http.path("/v1/endpoints/{}/data-capture", tour.endpoint),
            json={"enabled": False},
        )
    tour.say(f"report {run.get('report_location')}")
    return (
        f"run {short_id(run['execution_id'])}: {run.get('records_analyzed')} records, "
        f"baseline_drift on _c{SHIFTED_FEATURE} only"
    )


def _run_schedule(tour: Tour, name: str) -> dict[str, Any]:
    """Run schedule `name` now; its finished execution, which must flag _c2's drift alone."""
    path = http.path("/v1/monitoring/schedules/{}/run", name)
    execution_id = str(field_of(tour.api.request("POST", path).json(), "execution_id", what=path))
    run = _poll(
        tour,
        http.path("/v1/monitoring/schedules/{}/executions/{}", name, execution_id),
        done=FINISHED,
        timeout_s=RUN_TIMEOUT_S,
    )
    if run["status"] == "failed":
        raise DemoFailure(f"monitoring run {execution_id} failed: {run.get('error')}")
    violations = list(run.get("violations") or [])
    for violation in violations:
        check, feature = violation.get("check"), violation.get("feature")
        tour.say(f"{check} {feature}: {violation.get('description')}")
    drifted = drifted_features(violations)
    if drifted != [f"_c{SHIFTED_FEATURE}"]:
        raise DemoFailure(f"expected drift in _c{SHIFTED_FEATURE} alone, the run found {drifted}")
    return run


def _send_until_captured(tour: Tour, rows: list[list[float]], store: Any, prefix: Any) -> int:
    """Shifted calls until MIN_CAPTURED_RECORDS captured requests are in the store.

    Workers pick up the new capture settings and flush their records within
    SLUICEWAY_CAPTURE_FLUSH_S (5 s), so the calls go on until the records show.
    """
    from core.storage import S3Location

    deadline = time.monotonic() + CAPTURE_TIMEOUT_S
    calls = 0
    while True:
        _shifted_call(tour, rows)
        calls += 1
        keys = [key for key, _ in store.iter_objects(prefix)]
        records = sum(
            len(store.get_bytes(S3Location(prefix.bucket, key)).splitlines()) for key in keys
        )
        if records >= MIN_CAPTURED_RECORDS:
            break
        if time.monotonic() > deadline:
            raise DemoFailure(f"{records} captured records after {CAPTURE_TIMEOUT_S:g} s")
        time.sleep(0.5)
    # A run covers objects written before the whole second it starts in.
    newest = max(modified for _, modified in store.iter_objects_modified(prefix))
    while dt.datetime.now(dt.UTC) < newest + dt.timedelta(seconds=1.1):
        time.sleep(0.2)
    return calls

"""Data capture and model monitoring through real parts: API, a worker and a scheduler
process, PostgreSQL, Redis, SeaweedFS, and a webhook receiver on loopback.

One stack for the module (captures flush every 0.3 s, the monitoring loop looks
every 0.3 s); each test makes its own endpoints, so none sees another's capture.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn import metrics as skm

from core.webhooks import verify_signature
from devstack.servers import SeaweedServer
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    drop_postgres_database,
    make_stack,
    new_postgres_database,
    postgres_url,
    register,
    unique,
    wait_for,
    wait_job,
)
from tests.integration.webhook_parts import Receiver, Scheduler
from workers.capture import sampled

pytestmark = pytest.mark.integration

SECRET = "monitoring-secret-0123456789"
FEATURES = ["tenure", "spend", "visits", "age"]


class Monitored:
    def __init__(self, stack: Stack, s3: SeaweedServer, model: str) -> None:
        self.stack = stack
        self.s3 = s3
        self.model = model
        self.bucket = unique("capture")
        s3.client().make_bucket(self.bucket)

    def client(self) -> httpx.Client:
        return self.stack.client()

    def endpoint(self, client: httpx.Client, percent: float = 100) -> str:
        spec = {
            "name": unique("mon"),
            "variants": [{"name": "a", "model": self.model, "batching": {"max_batch_size": 64}}],
            "data_capture": {
                "enabled": True,
                "sampling_percent": percent,
                "destination": f"s3://{self.bucket}/capture/",
            },
        }
        return str(create_endpoint(client, spec)["name"])

    def records(self, endpoint: str) -> list[tuple[str, dict[str, Any]]]:
        """(object key, record) of every capture record of the endpoint, from S3 directly."""
        s3 = self.s3.client()
        out = []
        for obj in s3.list_objects(self.bucket, prefix=f"capture/{endpoint}/", recursive=True):
            response = s3.get_object(self.bucket, obj.object_name)
            try:
                for line in response.read().splitlines():
                    out.append((str(obj.object_name), orjson.loads(line)))
            finally:
                response.close()
                response.release_conn()
        return out

    def wait_records(self, endpoint: str, count: int) -> list[tuple[str, dict[str, Any]]]:
        found: list[tuple[str, dict[str, Any]]] = []

        def enough() -> bool:
            found[:] = self.records(endpoint)
            return len(found) >= count

        wait_for(enough, timeout_s=30, what=f"{count} capture records of {endpoint}", every_s=0.2)
        return found

    def wait_records_analyzable(self, endpoint: str, count: int) -> None:
        """`count` records written, and the second their newest object is stamped in over.

        A run covers objects stamped before the second it starts in (S3 stamps to
        the second), so a run started in that same second would leave them to the next.
        """
        self.wait_records(endpoint, count)
        s3 = self.s3.client()
        newest = max(
            obj.last_modified.timestamp()
            for obj in s3.list_objects(self.bucket, prefix=f"capture/{endpoint}/", recursive=True)
            if obj.last_modified is not None
        )
        wait_for(
            lambda: time.time() >= int(newest) + 1,
            timeout_s=5,
            what="the second of the newest capture object to end",
            every_s=0.05,
        )

    def put(self, key: str, body: bytes) -> str:
        self.s3.client().put_object(self.bucket, key, io.BytesIO(body), len(body))
        return f"s3://{self.bucket}/{key}"

    def baseline(self, client: httpx.Client, dataset: str, **extra: Any) -> dict[str, Any]:
        name = unique("base")
        response = client.post(
            "/v1/monitoring/baselines", json={"name": name, "dataset": dataset, **extra}
        )
        assert response.status_code == 202, response.text
        done: dict[str, Any] = wait_for(
            lambda: _finished(client.get(f"/v1/monitoring/baselines/{name}").json()),
            timeout_s=60,
            what=f"baseline {name}",
            every_s=0.2,
        )
        assert done["status"] == "completed", done
        return done

    def schedule(self, client: httpx.Client, endpoint: str, baseline: str, **extra: Any) -> str:
        name = unique("sched")
        spec = {"name": name, "endpoint": endpoint, "baseline": baseline, **extra}
        response = client.post("/v1/monitoring/schedules", json=spec)
        assert response.status_code == 201, response.text
        return name

    def run_until(self, client: httpx.Client, schedule: str, records: int) -> list[dict[str, Any]]:
        """Run the schedule now, again until its runs have analyzed `records` records.

        A run covers capture objects stamped before the second it starts in, so one
        written in that second waits for the next run: a second run picks it up.
        """
        runs: list[dict[str, Any]] = []

        def one_more() -> bool:
            response = client.post(f"/v1/monitoring/schedules/{schedule}/run")
            assert response.status_code == 202, response.text
            url = (
                f"/v1/monitoring/schedules/{schedule}/executions/{response.json()['execution_id']}"
            )
            done: dict[str, Any] = wait_for(
                lambda: _finished(client.get(url).json()), timeout_s=60, what=f"run of {schedule}"
            )
            assert done["status"] != "failed", done
            runs.append(done)
            return sum(r["records_analyzed"] for r in runs) >= records

        wait_for(one_more, timeout_s=90, what=f"{records} records analyzed by {schedule}")
        assert sum(r["records_analyzed"] for r in runs) == records
        return runs


def _finished(item: dict[str, Any]) -> dict[str, Any] | None:
    return item if item["status"] not in ("pending", "running") else None


@pytest.fixture(scope="module")
def monitored(
    s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]
) -> Iterator[Monitored]:
    database = new_postgres_database()
    stack = make_stack(
        tmp_path_factory.mktemp("monitoring"),
        s3,
        postgres_url(database),
        SLUICEWAY_CAPTURE_FLUSH_S="0.3",
        SLUICEWAY_MONITORING_INTERVAL_S="0.3",
        SLUICEWAY_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
        SLUICEWAY_WEBHOOK_POLL_S="0.1",
        SLUICEWAY_SCALER_BACKEND="none",  # the test starts its worker itself
    )
    scheduler = Scheduler(stack)
    try:
        stack.start_api()
        stack.start_worker()
        scheduler.start()
        stack.wait_workers(1)
        with stack.client() as client:
            model = register(client, unique("xgb"), "xgboost", model_files["xgb"])["name"]
        yield Monitored(stack, s3, model)
    finally:
        scheduler.stop()
        stack.stop()
        drop_postgres_database(database)


def rows_of(seed: int, count: int, *, shift: dict[int, float] | None = None) -> list[list[float]]:
    x = np.random.default_rng(seed).normal(size=(count, len(FEATURES)))
    for column, by in (shift or {}).items():
        x[:, column] += by
    return [[round(v, 6) for v in row] for row in x.tolist()]


def csv_dataset(rows: list[list[float]], header: list[str] | None) -> bytes:
    lines = ([",".join(header)] if header else []) + [",".join(map(str, r)) for r in rows]
    return ("\n".join(lines) + "\n").encode()


# --- capture ------------------------------------------------------------------------------


def test_capture_writes_every_answered_request_in_sagemakers_format(
    monitored: Monitored,
) -> None:
    with monitored.client() as client:
        endpoint = monitored.endpoint(client)
        sent: dict[str, tuple[str, str]] = {}  # inference id → (input, output)
        for i in range(20):
            body = json.dumps({"instances": rows_of(i, 2)})
            headers = {"X-Inference-Id": f"rt-{i}"} if i % 2 else {}
            response = client.post(
                f"/v1/endpoints/{endpoint}/invocations", content=body, headers=headers
            )
            assert response.status_code == 200, response.text
            inference_id = response.headers["X-Inference-Id"]
            assert inference_id == (f"rt-{i}" if i % 2 else response.headers["X-Job-Id"])
            sent[inference_id] = (body, response.text)
        for i in range(3):
            response = client.post(
                f"/v1/endpoints/{endpoint}/async-invocations",
                headers={"Content-Type": "text/csv", "X-Inference-Id": f"as-{i}"},
                content="0.1,0.2,0.3,0.4\n",
            )
            assert response.status_code == 202, response.text
            assert (
                response.json()["inference_id"] == response.headers["X-Inference-Id"] == f"as-{i}"
            )
            assert wait_job(client, response.json()["job_id"])["status"] == "succeeded"

    records = monitored.wait_records(endpoint, 23)
    assert len(records) == 23
    by_id = {r["eventMetadata"]["inferenceId"]: (key, r) for key, r in records}
    assert set(by_id) == set(sent) | {"as-0", "as-1", "as-2"}
    key, record = by_id["rt-1"]
    assert key.startswith(f"capture/{endpoint}/a/") and key.endswith(".jsonl")
    assert len(key.split("/")) == 8  # capture/<endpoint>/a/yyyy/mm/dd/hh/<file>
    given = record["captureData"]["endpointInput"]
    answered = record["captureData"]["endpointOutput"]
    assert (given["mode"], given["encoding"], given["observedContentType"]) == (
        "INPUT",
        "JSON",
        "application/json",
    )
    assert (given["data"], answered["data"]) == sent["rt-1"]
    assert answered["mode"] == "OUTPUT" and answered["encoding"] == "JSON"
    assert set(record["eventMetadata"]) == {"eventId", "inferenceId", "inferenceTime"}
    assert record["eventMetadata"]["inferenceTime"].endswith("Z")
    csv_input = by_id["as-0"][1]["captureData"]["endpointInput"]
    assert (csv_input["encoding"], csv_input["data"]) == ("CSV", "0.1,0.2,0.3,0.4\n")


def test_capture_samples_by_inference_id_and_changes_live(monitored: Monitored) -> None:
    with monitored.client() as client:
        endpoint = monitored.endpoint(client, percent=10)
        ids = [f"s-{i}" for i in range(300)]
        for inference_id in ids:
            response = client.post(
                f"/v1/endpoints/{endpoint}/invocations",
                headers={"Content-Type": "text/csv", "X-Inference-Id": inference_id},
                content="0.5,0.5,0.5,0.5\n",
            )
            assert response.status_code == 200, response.text
        expected = sum(sampled(i, 10) for i in ids)
        assert 10 <= expected <= 60  # 10 % of 300, give or take the hash
        records = monitored.wait_records(endpoint, expected)
        assert {r["eventMetadata"]["inferenceId"] for _k, r in records} == {
            i for i in ids if sampled(i, 10)
        }

        patched = client.patch(
            f"/v1/endpoints/{endpoint}/data-capture",
            json={"sampling_percent": 100, "destination": f"s3://{monitored.bucket}/capture/"},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["data_capture"]["sampling_percent"] == 100
        sent = iter(range(10_000))

        def a_new_request_is_captured() -> bool:
            client.post(
                f"/v1/endpoints/{endpoint}/invocations",
                headers={"Content-Type": "text/csv", "X-Inference-Id": f"live-{next(sent)}"},
                content="0.5,0.5,0.5,0.5\n",
            )
            return any(
                r["eventMetadata"]["inferenceId"].startswith("live-")
                for _k, r in monitored.records(endpoint)
            )

        wait_for(a_new_request_is_captured, timeout_s=30, what="capture at 100 % after PATCH")


# --- baselines and monitoring runs -------------------------------------------------------


def test_drift_on_one_feature_is_a_violation_for_it_alone_with_a_signed_webhook(
    monitored: Monitored,
) -> None:
    receiver = Receiver().start()
    try:
        with monitored.client() as client:
            endpoint = monitored.endpoint(client)
            dataset = monitored.put(
                f"data/{unique('train')}.csv", csv_dataset(rows_of(100, 4000), FEATURES)
            )
            baseline = monitored.baseline(client, dataset, header=True)
            assert baseline["item_count"] == 4000
            s3 = monitored.s3.client()
            bucket, key = baseline["statistics_location"][5:].split("/", 1)
            statistics = orjson.loads(s3.get_object(bucket, key).read())
            assert [f["name"] for f in statistics["features"]] == FEATURES
            spend = statistics["features"][1]
            assert spend["inferred_type"] == "Fractional"
            assert abs(spend["numerical_statistics"]["mean"]) < 0.1
            assert len(spend["numerical_statistics"]["distribution"]["kll"]["buckets"]) == 10
            bucket, key = baseline["constraints_location"][5:].split("/", 1)
            constraints = orjson.loads(s3.get_object(bucket, key).read())
            assert constraints["features"][0]["completeness"] == 1.0

            topic = unique("drift")
            assert client.post("/v1/topics", json={"name": topic}).status_code == 201
            subscribed = client.post(
                f"/v1/topics/{topic}/subscriptions",
                json={"url": receiver.url("/drift"), "secret": SECRET},
            )
            assert subscribed.status_code == 201, subscribed.text
            schedule = monitored.schedule(
                client, endpoint, baseline["name"], alert_topic=topic, interval_s=3600
            )

            def send(seed: int, shift: dict[int, float] | None = None) -> None:
                for i in range(20):
                    body = {"instances": rows_of(seed * 100 + i, 100, shift=shift)}
                    response = client.post(f"/v1/endpoints/{endpoint}/invocations", json=body)
                    assert response.status_code == 200, response.text

            send(1)
            monitored.wait_records(endpoint, 20)
            clean = monitored.run_until(client, schedule, 20)
            assert [v for run in clean for v in run["violations"]] == []
            assert {run["status"] for run in clean} <= {"completed"}

            send(2, shift={2: 3.0})  # "visits" moves by 3 standard deviations
            monitored.wait_records(endpoint, 40)
            drifted = monitored.run_until(client, schedule, 20)
            violations = [v for run in drifted for v in run["violations"]]
            assert {(v["feature"], v["check"]) for v in violations} == {
                ("visits", "baseline_drift")
            }
            assert all(v["value"] > 0.5 and v["threshold"] == 0.1 for v in violations)
            flagged = next(run for run in drifted if run["violations"])
            assert flagged["status"] == "completed_with_violations"
            assert flagged["report_location"].endswith("/report.json")
            bucket, key = flagged["report_location"][5:].split("/", 1)
            assert (
                orjson.loads(s3.get_object(bucket, key).read())["violations"]
                == flagged["violations"]
            )

            delivered = wait_for(
                lambda: receiver.received("/drift"), timeout_s=30, what="the drift webhook"
            )
            event = delivered[0].event
            assert event["type"] == "MonitoringViolations"
            assert (event["schedule"], event["endpoint"]) == (schedule, endpoint)
            assert event["violations"] == flagged["violations"]
            assert verify_signature(
                SECRET, delivered[0].body, delivered[0].headers["x-sluiceway-signature"]
            )
            metrics = client.get("/metrics").text
            gauge = (
                f'sluiceway_monitoring_violations{{check="baseline_drift",endpoint="{endpoint}"}}'
            )
            assert f"{gauge} 1.0" in metrics
            listed = client.get(f"/v1/monitoring/schedules/{schedule}/executions").json()
            assert [e["execution_id"] for e in listed][: len(drifted)] == [
                e["execution_id"] for e in reversed(drifted)
            ]
            # The console's endpoint page shows the capture and the schedule's last violation.
            page = client.get(f"/console/endpoints/{endpoint}")
            assert page.status_code == 200, page.text
            assert "Data capture and monitoring" in page.text and schedule in page.text
            assert "<b>visits</b> baseline_drift" in page.text

            # A baseline with a fifth column the traffic never has: missing_column for it.
            wide = monitored.put(
                f"data/{unique('wide')}.csv",
                csv_dataset([[*r, 1.0] for r in rows_of(100, 500)], None),
            )
            wide_baseline = monitored.baseline(client, wide)
            wide_schedule = monitored.schedule(client, endpoint, wide_baseline["name"])
            runs = monitored.run_until(client, wide_schedule, 40)
            found = {(v["feature"], v["check"]) for run in runs for v in run["violations"]}
            assert ("_c4", "missing_column") in found
            assert not any(check == "missing_column" for f, check in found if f != "_c4")
    finally:
        receiver.stop()


def test_ground_truth_gives_sklearns_quality_metrics(monitored: Monitored) -> None:
    with monitored.client() as client:
        endpoint = monitored.endpoint(client)
        rows = rows_of(7, 40)
        labels, scores = [], []
        for i, row in enumerate(rows):
            response = client.post(
                f"/v1/endpoints/{endpoint}/invocations",
                json={"instances": [row]},
                headers={"X-Inference-Id": f"q-{i}"},
            )
            assert response.status_code == 200, response.text
            scores.append(response.json()["predictions"][0])
            labels.append(int(row[0] + 0.5 * row[1] > 0.3))  # not quite what the model learnt
        truth = "\n".join(
            json.dumps({"inferenceId": f"q-{i}", "groundTruthLabel": label})
            for i, label in enumerate(labels)
        )
        monitored.wait_records_analyzable(endpoint, 40)
        prefix = f"truth/{unique('gt')}/"
        monitored.put(f"{prefix}2026/01/01/00/labels.jsonl", truth.encode())
        dataset = monitored.put(f"data/{unique('q')}.csv", csv_dataset(rows_of(3, 500), None))
        baseline = monitored.baseline(client, dataset, quality_thresholds={"accuracy": 0.99})
        schedule = monitored.schedule(
            client,
            endpoint,
            baseline["name"],
            ground_truth_prefix=f"s3://{monitored.bucket}/{prefix}",
            problem_type="binary_classification",
        )
        runs = monitored.run_until(client, schedule, 40)

    # Every capture object was stamped in a second over before the run: one run holds all 40.
    assert len(runs) == 1, [(r["records_analyzed"], r["window_end"]) for r in runs]
    quality = runs[0]["quality"]
    predicted = [int(s >= 0.5) for s in scores]
    expected = {
        "accuracy": skm.accuracy_score(labels, predicted),
        "precision": skm.precision_score(labels, predicted, zero_division=0),
        "recall": skm.recall_score(labels, predicted, zero_division=0),
        "f1": skm.f1_score(labels, predicted, zero_division=0),
        "auc": skm.roc_auc_score(labels, scores),
    }
    assert quality["matched_records"] == 40
    for metric, value in expected.items():
        assert quality[metric] == pytest.approx(value, abs=1e-6), metric
    flagged = [v for v in runs[0]["violations"] if v["check"] == "model_quality"]
    assert [v["feature"] for v in flagged] == (["accuracy"] if expected["accuracy"] < 0.99 else [])


# --- bad inputs ------------------------------------------------------------------------------


def test_bad_monitoring_inputs_are_clear_4xx(monitored: Monitored) -> None:
    s3 = monitored.s3.client()
    locked = unique("locked")
    s3.make_bucket(locked)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{locked}/*"],
            }
        ],
    }
    s3.set_bucket_policy(locked, json.dumps(deny))
    with monitored.client() as client:
        spec = {
            "name": unique("locked"),
            "variants": [{"name": "a", "model": monitored.model}],
            "data_capture": {"destination": f"s3://{locked}/capture/"},
        }
        refused = client.post("/v1/endpoints", json=spec)
        assert refused.status_code == 422, refused.text
        assert "may not write" in refused.json()["detail"]
        assert "AccessDenied" in refused.json()["detail"]
        endpoint = monitored.endpoint(client)
        patched = client.patch(
            f"/v1/endpoints/{endpoint}/data-capture",
            json={"destination": f"s3://{locked}/capture/"},
        )
        assert patched.status_code == 422, patched.text
        assert (
            client.patch(
                "/v1/endpoints/nope-nope/data-capture", json={"enabled": False}
            ).status_code
            == 404
        )
        no_destination = client.patch(f"/v1/endpoints/{endpoint}/data-capture", json={})
        assert no_destination.status_code == 422

        garbage = monitored.put(f"data/{unique('bin')}.csv", bytes(range(256)) * 4)
        for dataset, why in (
            (f"s3://{monitored.bucket}/data/missing.csv", "does not exist"),
            (f"s3://{monitored.bucket}/nothing-here/", "no object"),
            (garbage, "not UTF-8"),
        ):
            response = client.post(
                "/v1/monitoring/baselines", json={"name": unique("b"), "dataset": dataset}
            )
            assert response.status_code == 422, response.text
            assert why in response.json()["detail"]
            assert response.headers["content-type"] == "application/problem+json"

        dataset = monitored.put(f"data/{unique('ok')}.csv", csv_dataset(rows_of(1, 50), None))
        baseline = monitored.baseline(client, dataset)["name"]
        quiet = create_endpoint(
            client,
            {"name": unique("quiet"), "variants": [{"name": "a", "model": monitored.model}]},
        )["name"]
        for spec, why in (
            ({"endpoint": "no-such-endpoint", "baseline": baseline}, "no endpoint"),
            ({"endpoint": quiet, "baseline": baseline}, "does not capture"),
            ({"endpoint": endpoint, "baseline": "no-such-baseline"}, "no baseline"),
            ({"endpoint": endpoint, "baseline": baseline, "alert_topic": "nope"}, "no such topic"),
            (
                {"endpoint": endpoint, "baseline": baseline, "problem_type": "regression"},
                "go together",
            ),
        ):
            response = client.post("/v1/monitoring/schedules", json={"name": unique("s"), **spec})
            assert response.status_code == 422, response.text
            assert why in response.json()["detail"]
        assert client.post("/v1/monitoring/schedules/nope/run").status_code == 404
        assert client.get("/v1/monitoring/baselines/nope").status_code == 404

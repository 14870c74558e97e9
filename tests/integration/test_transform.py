"""Batch transform over S3 prefixes, on real SeaweedFS, Redis, PostgreSQL and processes.

This module runs its own stack: an API, a `sluice scheduler` with
SLUICEWAY_SCALER_BACKEND=none (so the scheduler starts no workers of its own) and workers the
tests start themselves, scoped with `--variant` to the endpoints they are for,
so a test knows exactly which worker holds which chunk. Every output is
checked line by line against the model called directly.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, select

from core.tables import Event, TransformChunk
from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

SMALL_CHUNKS_MB = 0.0005  # ~524 bytes: about 16 rows of 4 features per chunk


@pytest.fixture(scope="module")
def tstack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_stack(
        s3,
        tmp_path_factory.mktemp("transform"),
        SLUICEWAY_SCALER_BACKEND="none",  # the tests start and kill the workers themselves
        SLUICEWAY_TRANSFORM_INTERVAL_S="0.2",
    ) as running:
        scheduler = running._spawn(["scheduler"], "scheduler.log")
        running.workers.append(scheduler)  # stopped (SIGTERM) with the stack
        yield running


@pytest.fixture(scope="module")
def endpoints(tstack: Stack, model_files: dict[str, Path]) -> dict[str, str]:
    """xgb (batches of 32), slow (50 ms per row), slow2 (for the kill) and picky (a torch
    model that raises on any feature below -1000), with names."""
    names = {}
    with tstack.client() as client:
        for label, file, framework, batching in (
            ("xgb", "xgb", "xgboost", {"max_batch_size": 32, "max_delay_ms": 2}),
            ("slow", "slow", "python", {"max_batch_size": 1}),
            ("slow2", "slow", "python", {"max_batch_size": 1}),
            ("picky", "picky", "torch", {"max_batch_size": 8}),
        ):
            model = register(client, unique(label), framework, model_files[file])
            names[label] = unique(label)
            create_endpoint(
                client,
                {
                    "name": names[label],
                    "variants": [{"name": "a", "model": model["name"], "batching": batching}],
                },
            )
    return names


@pytest.fixture(scope="module")
def shared_worker(tstack: Stack, endpoints: dict[str, str]) -> subprocess.Popen[bytes]:
    """One worker for the xgb, slow and picky endpoints (not slow2, not the transform pool)."""
    worker = tstack.start_worker(
        "--variant",
        f"{endpoints['xgb']}/a",
        "--variant",
        f"{endpoints['slow']}/a",
        "--variant",
        f"{endpoints['picky']}/a",
    )
    wait_for(lambda: worker.pid in tstack.heartbeat_pids(), timeout_s=60, what="the worker")
    return worker


# --- helpers ------------------------------------------------------------------------


def csv_text(rows: list[list[float]]) -> str:
    return "".join(",".join(str(v) for v in row) + "\n" for row in rows)


def put(s3: SeaweedServer, bucket: str, key: str, data: bytes) -> None:
    import io

    client = s3.client()
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def get(s3: SeaweedServer, bucket: str, key: str) -> bytes:
    response = s3.client().get_object(bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def keys(s3: SeaweedServer, bucket: str, prefix: str) -> list[str]:
    return sorted(
        str(o.object_name) for o in s3.client().list_objects(bucket, prefix=prefix, recursive=True)
    )


def submit(stack: Stack, spec: dict[str, Any], *, status: int = 202) -> dict[str, Any]:
    with stack.client() as client:
        response = client.post("/v1/transform-jobs", json=spec)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def job(stack: Stack, job_id: str) -> dict[str, Any]:
    with stack.client() as client:
        result: dict[str, Any] = client.get(f"/v1/transform-jobs/{job_id}").json()
    return result


def wait_status(
    stack: Stack, job_id: str, statuses: tuple[str, ...] = ("succeeded",), timeout_s: float = 90
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        current = job(stack, job_id)
        if current["status"] in ("failed", "succeeded", "stopped", *statuses):
            return current
        return None

    result: dict[str, Any] = wait_for(
        reached, timeout_s=timeout_s, what=f"transform job {job_id} to reach {statuses}"
    )
    assert result["status"] in statuses, (result, stack.log("scheduler.log"))
    return result


def backlog(stack: Stack, endpoint: str) -> int:
    with stack.client() as client:
        return int(client.get(f"/v1/endpoints/{endpoint}").json()["variants"][0]["backlog"])


def lines(data: bytes) -> list[str]:
    text = data.decode()
    assert text == "" or text.endswith("\n")
    return text.split("\n")[:-1] if text else []


# --- the tests ------------------------------------------------------------------------


def test_csv_prefix_with_nested_keys_an_empty_object_and_bad_records(
    tstack: Stack,
    s3: SeaweedServer,
    endpoints: dict[str, str],
    shared_worker: Any,
    model_files: dict[str, Path],
) -> None:
    """Small chunks (2 KB) so each object spans several; the output bucket does not exist yet."""
    source, target = unique("in"), unique("out")
    first = models.random_rows(150, seed=1)
    second = models.random_rows(120, seed=2)
    long_line = ",".join(["1.5"] * 800)  # 3,199 bytes: over max_payload_mb
    nested = csv_text(second[:4]) + "1.0,oops,3,4\n\n" + long_line + "\n" + csv_text(second[4:])
    put(s3, source, "data/a.csv", csv_text(first).encode())
    put(s3, source, "data/sub/deeper/b.csv", nested.rstrip("\n").encode())  # no final \n
    put(s3, source, "data/empty.csv", b"")
    put(s3, source, "elsewhere/c.csv", csv_text(first[:3]).encode())  # outside the prefix

    accepted = submit(
        tstack,
        {
            "endpoint": endpoints["xgb"],
            "input_prefix": f"s3://{source}/data/",
            "output_prefix": f"s3://{target}/results",
            "content_type": "text/csv",
            "max_payload_mb": 0.002,
            "max_failed_records_percent": 1,  # 2 of 272 fail: 0.74%
        },
    )
    assert accepted["status"] == "queued" and accepted["output_prefix"].endswith("/")
    done = wait_status(tstack, accepted["job_id"])
    assert done["input_objects"] == done["completed_objects"] == 3
    assert done["total_records"] == done["processed_records"] == 150 + 120 + 2
    assert done["failed_records"] == 2

    assert keys(s3, target, "") == [
        "results/a.csv.out",
        "results/empty.csv.out",
        "results/sub/deeper/b.csv.err",
        "results/sub/deeper/b.csv.out",
    ]
    assert get(s3, target, "results/empty.csv.out") == b""
    expected = models.predict_xgboost(model_files["xgb"], first)
    models.assert_close([float(v) for v in lines(get(s3, target, "results/a.csv.out"))], expected)

    out = lines(get(s3, target, "results/sub/deeper/b.csv.out"))
    assert len(out) == len(nested.rstrip("\n").split("\n"))  # one output line per input line
    assert out[4:7] == ["", "", ""]  # bad record, blank line, oversized record
    good = out[:4] + out[7:]
    models.assert_close(
        [float(v) for v in good], models.predict_xgboost(model_files["xgb"], second)
    )
    errors = lines(get(s3, target, "results/sub/deeper/b.csv.err"))
    assert errors[0].startswith("5\tnot a row of numbers: '1.0,oops,3,4'")
    assert errors[1].startswith("7\tthe record is 3200 bytes, over max_payload_mb 0.002")
    assert len(errors) == 2


def test_join_source_input_for_csv_with_single_record_calls(
    tstack: Stack,
    s3: SeaweedServer,
    endpoints: dict[str, str],
    shared_worker: Any,
    model_files: dict[str, Path],
) -> None:
    source, target = unique("in"), unique("out")
    rows = models.random_rows(40, seed=3)
    text = csv_text(rows[:10]) + "1,2,3\n" + csv_text(rows[10:])  # wrong feature count
    put(s3, source, "x.csv", text.encode())
    accepted = submit(
        tstack,
        {
            "endpoint": endpoints["xgb"],
            "input_prefix": f"s3://{source}/",
            "output_prefix": f"s3://{target}/",
            "batch_strategy": "single_record",
            "join_source": "input",
            "max_failed_records_percent": 5,  # 1 of 41 fails
        },
    )
    done = wait_status(tstack, accepted["job_id"])
    assert (done["processed_records"], done["failed_records"]) == (41, 1)
    out = lines(get(s3, target, "x.csv.out"))
    inputs = text.rstrip("\n").split("\n")
    assert out[10] == "1,2,3,"  # the input, then an empty prediction
    predictions = []
    for line, source_line in zip(out[:10] + out[11:], inputs[:10] + inputs[11:], strict=True):
        assert line.startswith(source_line + ",")
        predictions.append(float(line[len(source_line) + 1 :]))
    models.assert_close(predictions, models.predict_xgboost(model_files["xgb"], rows))
    assert lines(get(s3, target, "x.csv.err")) == [
        "11\tthe record has 3 features; the model expects 4"
    ]


def test_json_lines_on_the_transform_pool_with_and_without_join(
    tstack: Stack, s3: SeaweedServer, model_files: dict[str, Path]
) -> None:
    """A job for a model, not an endpoint: generic workers serve its transform-pool queue."""
    with tstack.client() as client:
        model = register(client, unique("mlp"), "torch", model_files["torch"])
    worker = tstack.start_worker()
    source, target = unique("in"), unique("out")
    rows = models.random_rows(30, seed=4)
    records = [
        orjson.dumps(row) if i % 2 else orjson.dumps({"id": i, "features": row})
        for i, row in enumerate(rows)
    ]
    text = b"\n".join([*records[:5], b"{not json", *records[5:], b'{"features": [1, "2", 3, 4]}'])
    put(s3, source, "nested/part-0.jsonl", text + b"\n")
    try:
        results = {}
        for join in ("none", "input"):
            accepted = submit(
                tstack,
                {
                    "model": model["name"],
                    "input_prefix": f"s3://{source}/nested/",
                    "output_prefix": f"s3://{target}/{join}/",
                    "content_type": "application/jsonlines",
                    "join_source": join,
                    "max_payload_mb": 0.0003,
                    "max_failed_records_percent": 10,  # 2 of 32 fail
                },
            )
            assert accepted["model_version"] == 1
            done = wait_status(tstack, accepted["job_id"])
            assert (done["processed_records"], done["failed_records"]) == (32, 2)
            results[join] = [
                orjson.loads(line) for line in lines(get(s3, target, f"{join}/part-0.jsonl.out"))
            ]
    finally:
        worker.terminate()
        worker.wait(30)
        tstack.workers.remove(worker)

    expected = models.predict_torch(model_files["torch"], rows)
    plain, joined = results["none"], results["input"]
    assert plain[5] is None and plain[-1] is None
    models.assert_close(plain[:5] + plain[6:-1], expected)
    assert joined[5]["input"] == "{not json" and joined[5]["prediction"] is None
    assert "not valid JSON" in joined[5]["error"]
    assert joined[-1]["prediction"] is None and joined[-1]["features"] == [1, "2", 3, 4]
    for i, line in enumerate(joined[:5] + joined[6:-1]):
        assert line["features"] == rows[i]
        if i % 2 == 0:
            assert line["id"] == i
        models.assert_close(line["prediction"], expected[i])
    errors = lines(get(s3, target, "none/part-0.jsonl.err"))
    assert [e.split("\t")[0] for e in errors] == ["6", "32"]


def test_split_type_none_sends_each_object_whole(
    tstack: Stack,
    s3: SeaweedServer,
    endpoints: dict[str, str],
    shared_worker: Any,
    model_files: dict[str, Path],
) -> None:
    source, target = unique("in"), unique("out")
    small, big = models.random_rows(10, seed=5), models.random_rows(60, seed=6)
    put(s3, source, "small.csv", csv_text(small).encode())
    put(s3, source, "big.csv", csv_text(big).encode())  # ~1.7 KB: over 0.001 MB
    accepted = submit(
        tstack,
        {
            "endpoint": endpoints["xgb"],
            "input_prefix": f"s3://{source}/",
            "output_prefix": f"s3://{target}/",
            "split_type": "none",
            "max_payload_mb": 0.001,
            "max_failed_records_percent": 100,  # 60 of 70 fail: accepted anyway
        },
    )
    done = wait_status(tstack, accepted["job_id"])
    assert (done["total_records"], done["failed_records"]) == (70, 60)
    small_out = [float(v) for v in lines(get(s3, target, "small.csv.out"))]
    models.assert_close(small_out, models.predict_xgboost(model_files["xgb"], small))
    assert lines(get(s3, target, "big.csv.out")) == [""] * 60
    errors = lines(get(s3, target, "big.csv.err"))
    assert len(errors) == 60 and errors[0].startswith("1\tthe object is ")


def test_stop_halts_within_seconds_and_the_same_name_resumes(
    tstack: Stack, s3: SeaweedServer, endpoints: dict[str, str], shared_worker: Any
) -> None:
    """50 ms per record, ~16 records per chunk: the job takes ~10 s if left alone."""
    source, target = unique("in"), unique("out")
    data = {f"part-{i}.csv": models.random_rows(64, seed=10 + i) for i in range(3)}
    for key, rows in data.items():
        put(s3, source, key, csv_text(rows).encode())
    spec = {
        "name": unique("resumable"),
        "endpoint": endpoints["slow"],
        "input_prefix": f"s3://{source}/",
        "output_prefix": f"s3://{target}/",
        "max_payload_mb": SMALL_CHUNKS_MB,
    }
    first = submit(tstack, spec)
    wait_for(
        lambda: job(tstack, first["job_id"])["completed_objects"] >= 1,
        timeout_s=60,
        what="the first object to be written",
    )
    submit(tstack, spec, status=409)  # running: the same name is refused
    with tstack.client() as client:  # realtime goes ahead of the queued chunks
        answer = client.post(
            f"/v1/endpoints/{endpoints['slow']}/invocations", json={"instances": [[1, 2, 3, 4]]}
        )
    assert answer.status_code == 200 and answer.json() == {"predictions": [10.0]}
    assert job(tstack, first["job_id"])["status"] == "running"
    with tstack.client() as client:
        stopping = client.post(f"/v1/transform-jobs/{first['job_id']}/stop")
    assert stopping.status_code == 202 and stopping.json()["status"] == "stopping"
    stopped = wait_status(tstack, first["job_id"], ("stopped",), timeout_s=15)
    assert stopped["processed_records"] < stopped["total_records"] == 192
    written = s3.client().stat_object(target, "part-0.csv.out").last_modified
    # Stopped means stopped: the worker drains the job's queued chunks without running them.
    wait_for(
        lambda: backlog(tstack, endpoints["slow"]) == 0, timeout_s=30, what="the queue to drain"
    )
    assert job(tstack, first["job_id"])["processed_records"] == stopped["processed_records"]

    resumed = submit(tstack, spec)
    assert resumed["job_id"] == first["job_id"] and resumed["status"] == "queued"
    done = wait_status(tstack, first["job_id"])
    assert (done["processed_records"], done["failed_records"]) == (192, 0)
    assert s3.client().stat_object(target, "part-0.csv.out").last_modified == written
    for key, rows in data.items():
        models.assert_close(
            [float(v) for v in lines(get(s3, target, f"{key}.out"))], [sum(r) for r in rows]
        )
    assert keys(s3, target, "") == sorted(f"{key}.out" for key in data)
    submit(tstack, spec)  # succeeded: resubmitting is a no-op that returns the job


def test_sigkill_of_a_worker_mid_job_leaves_the_output_exactly_right(
    tstack: Stack, s3: SeaweedServer, endpoints: dict[str, str]
) -> None:
    source, target = unique("in"), unique("out")
    data = {f"k{i}.csv": models.random_rows(48, seed=20 + i) for i in range(2)}
    for key, rows in data.items():
        put(s3, source, key, csv_text(rows).encode())
    variant = f"{endpoints['slow2']}/a"
    victim = tstack.start_worker("--variant", variant)
    wait_for(lambda: victim.pid in tstack.heartbeat_pids(), timeout_s=60, what="the victim")
    accepted = submit(
        tstack,
        {
            "endpoint": endpoints["slow2"],
            "input_prefix": f"s3://{source}/",
            "output_prefix": f"s3://{target}/",
            "max_payload_mb": SMALL_CHUNKS_MB,
        },
    )
    engine = create_engine(tstack.env["SLUICEWAY_DATABASE_URL"])

    def chunks_in_hand() -> list[int] | None:
        """The chunks the victim has claimed and not finished, once it has finished another:
        the one its model runs and the next, prepared meanwhile (workers/consumer.py)."""
        with engine.connect() as connection:
            rows = connection.execute(
                select(TransformChunk.id, TransformChunk.status, TransformChunk.claimed_at).where(
                    TransformChunk.job_id == accepted["job_id"]
                )
            ).all()
        done = any(status == "done" for _, status, _ in rows)
        working = [i for i, status, claimed in rows if status == "pending" and claimed is not None]
        return working if done and len(working) == 2 else None

    try:
        victim_chunks = wait_for(
            chunks_in_hand, timeout_s=60, what="the victim mid-chunk with the next prepared"
        )
        tstack.kill_worker(victim)
        assert job(tstack, accepted["job_id"])["processed_records"] < 96
        tstack.start_worker("--variant", variant)
        done = wait_status(tstack, accepted["job_id"], timeout_s=120)
        with engine.connect() as connection:
            attempts = connection.scalars(
                select(TransformChunk.attempts).where(TransformChunk.id.in_(victim_chunks))
            ).all()
    finally:
        engine.dispose()
    assert attempts == [2, 2], "each chunk the victim held was redone once"
    assert (done["total_records"], done["processed_records"], done["failed_records"]) == (96, 96, 0)
    for key, rows in data.items():
        models.assert_close(
            [float(v) for v in lines(get(s3, target, f"{key}.out"))], [sum(r) for r in rows]
        )


def test_a_realtime_call_overtakes_the_chunk_a_worker_prepared_ahead(
    tstack: Stack, s3: SeaweedServer, endpoints: dict[str, str], shared_worker: Any
) -> None:
    """A worker prepares an endpoint's next transform chunk while the current one runs;
    a realtime call queued meanwhile must still go first, not wait behind that chunk."""
    source, target = unique("in"), unique("out")
    put(s3, source, "k.csv", csv_text(models.random_rows(80, seed=41)).encode())
    accepted = submit(
        tstack,
        {
            "endpoint": endpoints["slow"],  # 50 ms per row, ~16 rows per chunk
            "input_prefix": f"s3://{source}/",
            "output_prefix": f"s3://{target}/",
            "max_payload_mb": SMALL_CHUNKS_MB,
        },
    )
    engine = create_engine(tstack.env["SLUICEWAY_DATABASE_URL"])

    def chunks() -> list[tuple[int, str, Any]]:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    select(TransformChunk.id, TransformChunk.status, TransformChunk.claimed_at)
                    .where(TransformChunk.job_id == accepted["job_id"])
                    .order_by(TransformChunk.claimed_at)
                ).all()
            )

    def just_started() -> int | None:
        """The chunk prepared ahead, right after a chunk finished and the next one began."""
        rows = chunks()
        working = [(i, claimed) for i, status, claimed in rows if status == "pending" and claimed]
        done = sum(status == "done" for _, status, _ in rows)
        if done >= 1 and len(working) == 2 and done > state["done"]:
            return working[-1][0]  # claimed last: the one prepared ahead
        state["done"] = done
        return None

    state = {"done": 0}
    try:
        wait_for(lambda: any(s == "done" for _, s, _ in chunks()), timeout_s=60, what="a chunk")
        state["done"] = sum(s == "done" for _, s, _ in chunks())
        ahead = wait_for(
            just_started, timeout_s=60, what="a chunk begun, the next prepared", every_s=0.01
        )
        with tstack.client() as client:
            answer = client.post(
                f"/v1/endpoints/{endpoints['slow']}/invocations", json={"instances": [[1, 2, 3, 4]]}
            )
        assert answer.status_code == 200, answer.text
        with engine.connect() as connection:
            status = connection.scalar(
                select(TransformChunk.status).where(TransformChunk.id == ahead)
            )
        assert status == "pending", "the prepared chunk ran before the realtime call"
        done = wait_status(tstack, accepted["job_id"], timeout_s=120)
    finally:
        engine.dispose()
    assert (done["processed_records"], done["failed_records"]) == (80, 0)


def test_bad_submissions_are_clear_4xx(tstack: Stack, endpoints: dict[str, str]) -> None:
    source = unique("in")
    base = {"input_prefix": f"s3://{source}/x/", "output_prefix": f"s3://{unique('out')}/"}
    with tstack.client() as client:
        missing = client.post("/v1/transform-jobs", json={**base, "endpoint": endpoints["xgb"]})
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert "no objects under input_prefix" in missing.json()["detail"]
        unknown = client.post("/v1/transform-jobs", json={**base, "endpoint": unique("nope")})
        assert unknown.status_code == 404 and "no endpoint named" in unknown.json()["detail"]
        both = client.post(
            "/v1/transform-jobs", json={**base, "endpoint": endpoints["xgb"], "model": "m"}
        )
        assert both.status_code == 422 and "exactly one of endpoint or model" in both.text
        inside = client.post(
            "/v1/transform-jobs",
            json={
                "endpoint": endpoints["xgb"],
                "input_prefix": f"s3://{source}/",
                "output_prefix": f"s3://{source}/out/",
            },
        )
        assert inside.status_code == 422 and "inside input_prefix" in inside.json()["detail"]
        assert client.get("/v1/transform-jobs/nope").status_code == 404
        too_big = client.post(
            "/v1/transform-jobs", json={**base, "endpoint": endpoints["xgb"], "max_payload_mb": 101}
        )
        assert too_big.status_code == 422


def test_keys_with_hash_a_byte_order_mark_and_numbers_float32_cannot_hold(
    tstack: Stack,
    s3: SeaweedServer,
    endpoints: dict[str, str],
    shared_worker: Any,
    model_files: dict[str, Path],
) -> None:
    """Regressions: over a prefix holding `a.csv` and `f#1.csv` the job failed as a
    whole ("no object at s3://.../in/f": the key was cut at '#') and `a.csv` got no
    output; a UTF-8 BOM failed line 1; `nan` parsed as a number and 1e39 became inf."""
    source, target = unique("in"), unique("out")
    rows = models.random_rows(6, seed=30)
    put(s3, source, "t1/in/a.csv", csv_text(rows[:3]).encode())
    put(s3, source, "t1/in/f#1.csv", b"\xef\xbb\xbf" + csv_text(rows[3:]).encode())
    put(s3, source, "t1/in/bad?.csv", b"1,1,1,nan\n1e39,1,1,1\n" + csv_text(rows[:1]).encode())
    accepted = submit(
        tstack,
        {
            "endpoint": endpoints["xgb"],
            "input_prefix": f"s3://{source}/t1/in/",
            "output_prefix": f"s3://{target}/out#x/",
            "max_failed_records_percent": 50,  # 2 of 9 fail
        },
    )
    done = wait_status(tstack, accepted["job_id"])
    assert (done["input_objects"], done["total_records"], done["failed_records"]) == (3, 9, 2)
    assert keys(s3, target, "") == [
        "out#x/a.csv.out",
        "out#x/bad?.csv.err",
        "out#x/bad?.csv.out",
        "out#x/f#1.csv.out",
    ]
    for key, expected_rows in (("a.csv", rows[:3]), ("f#1.csv", rows[3:])):
        got = [float(v) for v in lines(get(s3, target, f"out#x/{key}.out"))]
        models.assert_close(got, models.predict_xgboost(model_files["xgb"], expected_rows))
    assert lines(get(s3, target, "out#x/bad?.csv.out"))[:2] == ["", ""]
    assert lines(get(s3, target, "out#x/bad?.csv.err")) == [
        "1\tnot a row of numbers: '1,1,1,nan'",
        "2\tcolumn 1: 1e39 is outside float32's range (±3.4028235e+38), the model's input type",
    ]


def test_a_job_in_which_every_record_failed_ends_failed_with_its_event(
    tstack: Stack, s3: SeaweedServer, endpoints: dict[str, str], shared_worker: Any
) -> None:
    """Regression: a transform whose model failed all 4 records ended `succeeded`
    (failed_records 4 of 4, an output of blank lines, a TransformSucceeded event)."""
    source, target = unique("in"), unique("out")
    put(s3, source, "x.csv", b"-5000,1,1,1\n" * 4)  # picky raises on a feature below -1000
    accepted = submit(
        tstack,
        {
            "endpoint": endpoints["picky"],
            "input_prefix": f"s3://{source}/",
            "output_prefix": f"s3://{target}/",
        },
    )
    assert accepted["max_failed_records_percent"] == 0
    failed = wait_status(tstack, accepted["job_id"], ("failed",))
    assert (failed["processed_records"], failed["failed_records"]) == (4, 4)
    assert failed["error"].startswith(
        "4 of 4 records failed (100%); more than max_failed_records_percent 0 allows"
    )
    assert failed["completed_objects"] == 1  # the outputs are written all the same
    assert lines(get(s3, target, "x.csv.out")) == [""] * 4
    assert len(lines(get(s3, target, "x.csv.err"))) == 4
    engine = create_engine(tstack.env["SLUICEWAY_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            events = connection.execute(
                select(Event.type, Event.payload).where(Event.job_id == accepted["job_id"])
            ).all()
    finally:
        engine.dispose()
    assert [kind for kind, _ in events] == ["TransformFailed"]
    assert orjson.loads(events[0][1])["error"] == failed["error"]

    # Accepting the failures after all: the same job, resumed with a higher threshold.
    spec = {
        "name": failed["name"],
        "endpoint": endpoints["picky"],
        "input_prefix": f"s3://{source}/",
        "output_prefix": f"s3://{target}/",
        "max_failed_records_percent": 100,
    }
    assert submit(tstack, spec)["job_id"] == accepted["job_id"]
    done = wait_status(tstack, accepted["job_id"])
    assert (done["failed_records"], done["error"]) == (4, None)

"""Multi-model endpoints on real SeaweedFS, Redis, PostgreSQL and worker processes.

One stack for the module: an API, a scheduler (transform coordinator; its scaler
off) and two workers. Models are XGBoost boosters uploaded under a prefix; every
prediction is checked against the same booster called in this process.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import redis

from core.broker import held_by
from devstack.servers import SeaweedServer
from sluiceway import Client
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    unique,
    wait_for,
    wait_job,
)

pytestmark = pytest.mark.integration

FEATURES = 4
ROWS = np.array([[0.5, -1.2, 0.3, 2.0], [1.0, 0.0, -0.5, 0.1], [-2.0, 1.5, 0.0, 0.7]], "float32")


@pytest.fixture(scope="module")
def mstack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_stack(
        s3,
        tmp_path_factory.mktemp("multi-model"),
        SLUICEWAY_SCALER_BACKEND="none",  # the module runs its own two workers
        SLUICEWAY_TRANSFORM_INTERVAL_S="0.2",
        # Model-affine reserves: a request for a model one worker holds is left to it for
        # up to 2 s (long enough that a slow test machine never steals by accident).
        SLUICEWAY_MODEL_AFFINITY_STEAL_MS="2000",
    ) as running:
        scheduler = running._spawn(["scheduler"], "scheduler.log")
        running.workers.append(scheduler)  # stopped (SIGTERM) with the stack
        running.start_worker()
        running.start_worker()
        running.wait_workers(2)
        yield running


def booster_bytes(seed: int, *, rounds: int = 5, depth: int = 3, features: int = FEATURES) -> bytes:
    """A small regression booster, different for every seed (JSON)."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(2000, features)).astype("float32")
    labels = rows @ rng.normal(size=features) + rng.normal(size=2000) + seed
    booster = xgb.train(
        {"max_depth": depth, "nthread": 1}, xgb.DMatrix(rows, label=labels), num_boost_round=rounds
    )
    return bytes(booster.save_raw("json"))


def expected(model: bytes, rows: np.ndarray = ROWS) -> list[float]:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(model))
    return [float(p) for p in booster.inplace_predict(rows)]


def put(s3: SeaweedServer, bucket: str, key: str, data: bytes) -> None:
    client = s3.client()
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def multi_model_endpoint(
    stack: Stack, bucket: str, prefix: str, *, memory_mb: int | None = None, batch: int = 16
) -> str:
    name = unique("mm")
    variant: dict[str, Any] = {
        "name": "a",
        "multi_model": {"prefix": f"s3://{bucket}/{prefix}", "framework": "xgboost"},
        "batching": {"max_batch_size": batch, "max_delay_ms": 2},
    }
    if memory_mb is not None:
        variant["model_memory_mb"] = memory_mb
    with stack.client() as client:
        created = create_endpoint(client, {"name": name, "variants": [variant]})
    assert created["variants"][0]["multi_model"]["prefix"] == f"s3://{bucket}/{prefix}"
    assert created["variants"][0]["model"] is None
    return name


def invoke(
    client: httpx.Client, endpoint: str, model: str | None, rows: Any = ROWS
) -> httpx.Response:
    headers = {"X-Target-Model": model} if model is not None else {}
    return client.post(
        f"/v1/endpoints/{endpoint}/invocations",
        content=orjson.dumps({"instances": np.asarray(rows).tolist()}),
        headers={"Content-Type": "application/json", **headers},
    )


def predictions(response: httpx.Response) -> list[float]:
    assert response.status_code == 200, response.text
    result: list[float] = response.json()["predictions"]
    return result


def metric(stack: Stack, name: str, endpoint: str) -> float:
    """A multi-model metric of the endpoint's variant `a`, from /metrics (0 when absent)."""
    with stack.client() as client:
        text = client.get("/metrics").text
    pattern = rf'^{name}\{{endpoint="{endpoint}",variant="a"\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_realtime_and_async_serve_every_model_under_the_prefix(
    mstack: Stack, s3: SeaweedServer
) -> None:
    bucket = unique("models")
    cities = {f"{city}.json": booster_bytes(seed) for seed, city in enumerate(("chi", "nyc"))}
    cities["eu/paris.json"] = booster_bytes(7)
    for key, data in cities.items():
        put(s3, bucket, f"cities/{key}", data)
    endpoint = multi_model_endpoint(mstack, bucket, "cities/")
    with mstack.client() as client:
        for key, data in cities.items():
            response = invoke(client, endpoint, key)
            assert predictions(response) == pytest.approx(expected(data), rel=1e-5)
            assert response.headers["X-Invoked-Model"] == key
            assert response.headers["X-Model-Cache"] == "miss"  # nobody held it: loaded
        # async: the job keeps its model
        accepted = client.post(
            f"/v1/endpoints/{endpoint}/async-invocations",
            content=orjson.dumps({"instances": ROWS.tolist()}),
            headers={"Content-Type": "application/json", "X-Target-Model": "eu/paris.json"},
        )
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers["X-Invoked-Model"] == "eu/paris.json"
        job = wait_job(client, accepted.json()["job_id"])
        assert job["status"] == "succeeded", job
        output = client.get(f"/v1/jobs/{job['job_id']}/output").json()["predictions"]
        assert output == pytest.approx(expected(cities["eu/paris.json"]), rel=1e-5)

        # a model added while the endpoint serves is servable at once
        added = booster_bytes(11)
        put(s3, bucket, "cities/la.json", added)
        assert predictions(invoke(client, endpoint, "la.json")) == pytest.approx(
            expected(added), rel=1e-5
        )
        # a replaced object answers with the new model, never the old one
        replaced = booster_bytes(23)
        put(s3, bucket, "cities/chi.json", replaced)
        caches = []
        for _ in range(4):  # whichever worker takes it
            response = invoke(client, endpoint, "chi.json")
            assert predictions(response) == pytest.approx(expected(replaced), rel=1e-5)
            caches.append(response.headers["X-Model-Cache"])
        assert caches[0] == "miss" and "hit" in caches, caches

        listing = client.get(f"/v1/endpoints/{endpoint}/models")
        assert listing.status_code == 200, listing.text
        by_model = {m["model"]: m for m in listing.json()}
        assert sorted(by_model) == ["chi.json", "eu/paris.json", "la.json", "nyc.json"]
        assert by_model["nyc.json"]["size_bytes"] == len(cities["nyc.json"])

        def reported() -> bool:
            entries = client.get(f"/v1/endpoints/{endpoint}/models").json()
            paris = next(m for m in entries if m["model"] == "eu/paris.json")
            return bool(paris["loaded_on"]) and paris["invocations"] >= 2

        wait_for(reported, timeout_s=20, what="the workers' model reports")
        # the SDK: a target_model argument, and the listing with every page
        with Client(mstack.api_url) as sdk:
            handle = sdk.endpoint(endpoint)
            assert handle.predict(ROWS, target_model="nyc.json") == pytest.approx(
                expected(cities["nyc.json"]), rel=1e-5
            )
            assert [m.model for m in handle.models()] == sorted(by_model)
        page = client.get(f"/v1/endpoints/{endpoint}/models", params={"limit": 2})
        assert [m["model"] for m in page.json()] == ["chi.json", "eu/paris.json"]
        assert page.headers["X-Next-After"] == "eu/paris.json"
        rest = client.get(
            f"/v1/endpoints/{endpoint}/models", params={"limit": 2, "after": "eu/paris.json"}
        )
        assert [m["model"] for m in rest.json()] == ["la.json", "nyc.json"]
        assert "X-Next-After" not in rest.headers


def test_errors_fail_alone(mstack: Stack, s3: SeaweedServer) -> None:
    bucket = unique("models")
    good = booster_bytes(3)
    put(s3, bucket, "m/good.json", good)
    put(s3, bucket, "m/broken.json", b"{this is not a booster")
    put(s3, bucket, "m/huge.json", booster_bytes(5, rounds=300, depth=6, features=16))
    endpoint = multi_model_endpoint(mstack, bucket, "m/", memory_mb=1)
    with mstack.client() as client:
        missing = invoke(client, endpoint, None)
        assert missing.status_code == 400
        assert "X-Target-Model" in missing.json()["detail"]
        assert invoke(client, endpoint, "../x.json").status_code == 400
        unknown = invoke(client, endpoint, "nope.json")
        assert unknown.status_code == 404, unknown.text
        assert "nope.json" in unknown.json()["detail"]
        broken = invoke(client, endpoint, "broken.json")
        assert broken.status_code == 422, broken.text
        assert "'broken.json' will not load" in broken.json()["detail"]
        huge = invoke(client, endpoint, "huge.json", np.zeros((1, 16), "float32"))
        assert huge.status_code == 422, huge.text
        assert re.search(r"huge\.json.*1\.\d MB.*1\.0 MB", huge.json()["detail"]), huge.text
        assert predictions(invoke(client, endpoint, "good.json")) == pytest.approx(
            expected(good), rel=1e-5
        )
        no_job = client.post(
            f"/v1/endpoints/{endpoint}/async-invocations",
            content=orjson.dumps({"instances": ROWS.tolist()}),
            headers={"Content-Type": "application/json", "X-Target-Model": "nope.json"},
        )
        assert no_job.status_code == 404, no_job.text
        bad_spec = client.post(
            "/v1/endpoints",
            json={"name": unique("mm"), "variants": [{"name": "a", "model_memory_mb": 8}]},
        )
        assert bad_spec.status_code == 422


def test_the_memory_budget_evicts_and_answers_stay_right(mstack: Stack, s3: SeaweedServer) -> None:
    bucket = unique("models")
    # ~380 KB loaded each: a 1 MB budget holds two per worker, four in all: six must evict.
    shop = {f"s{i}.json": booster_bytes(i, rounds=100, depth=6, features=16) for i in range(6)}
    for key, data in shop.items():
        put(s3, bucket, f"shop/{key}", data)
    endpoint = multi_model_endpoint(mstack, bucket, "shop/", memory_mb=1)
    rows = np.random.default_rng(0).normal(size=(3, 16)).astype("float32")
    with mstack.client() as client:
        for _ in range(2):
            for key, data in shop.items():
                got = predictions(invoke(client, endpoint, key, rows))
                assert got == pytest.approx(expected(data, rows), rel=1e-5)
        wait_for(
            lambda: metric(mstack, "sluiceway_model_evictions_total", endpoint) > 0,
            timeout_s=10,
            what="evictions in /metrics",
        )
        for entry in client.get(f"/v1/endpoints/{endpoint}/models").json():
            if entry["memory_bytes"] is not None:
                assert 0 < entry["memory_bytes"] < 1_048_576


def test_fifty_concurrent_requests_for_a_cold_model_load_it_once_per_worker(
    mstack: Stack, s3: SeaweedServer
) -> None:
    bucket = unique("models")
    data = booster_bytes(42, rounds=50, depth=6)
    put(s3, bucket, "cold/m.json", data)
    endpoint = multi_model_endpoint(mstack, bucket, "cold/", batch=8)
    with mstack.client() as client, ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: invoke(client, endpoint, "m.json"), range(50)))
    want = expected(data)
    for response in answers:
        assert predictions(response) == pytest.approx(want, rel=1e-5)

    def counted() -> float:
        hits = metric(mstack, "sluiceway_model_cache_hits_total", endpoint)
        misses = metric(mstack, "sluiceway_model_cache_misses_total", endpoint)
        return hits + misses >= 50 and metric(mstack, "sluiceway_model_loads_total", endpoint)

    loads = wait_for(counted, timeout_s=10, what="all 50 requests in /metrics")
    assert 1 <= loads <= 2  # two workers: one load each at most
    assert metric(mstack, "sluiceway_model_cache_misses_total", endpoint) == loads


def test_requests_go_to_the_worker_holding_their_model(mstack: Stack, s3: SeaweedServer) -> None:
    """Two workers, six models: each is loaded once, on one worker, however often it is asked."""
    bucket = unique("models")
    shelf = {f"k{i}.json": booster_bytes(100 + i) for i in range(6)}
    for key, data in shelf.items():
        put(s3, bucket, f"aff/{key}", data)
    endpoint = multi_model_endpoint(mstack, bucket, "aff/")
    with mstack.client() as client:
        for key, data in shelf.items():
            assert predictions(invoke(client, endpoint, key)) == pytest.approx(
                expected(data), rel=1e-5
            )

        def holders() -> dict[str, list[str]] | None:
            entries = client.get(f"/v1/endpoints/{endpoint}/models").json()
            held = {m["model"]: m["loaded_on"] for m in entries}
            return held if all(held.values()) else None

        first = wait_for(holders, timeout_s=10, what="every model reported loaded")
        for _ in range(3):
            for key, data in shelf.items():
                assert predictions(invoke(client, endpoint, key)) == pytest.approx(
                    expected(data), rel=1e-5
                )
        assert metric(mstack, "sluiceway_model_loads_total", endpoint) == 6
        assert all(len(workers) == 1 for workers in first.values()), first


def test_batch_transform_runs_its_target_model(mstack: Stack, s3: SeaweedServer) -> None:
    bucket = unique("models")
    data = booster_bytes(9)
    put(s3, bucket, "t/m.json", data)
    put(s3, bucket, "t/other.json", booster_bytes(10))
    endpoint = multi_model_endpoint(mstack, bucket, "t/")
    lines = "\n".join(",".join(str(v) for v in row) for row in ROWS.tolist()) + "\n"
    put(s3, bucket, "in/x.csv", lines.encode())
    spec = {
        "endpoint": endpoint,
        "input_prefix": f"s3://{bucket}/in/",
        "output_prefix": f"s3://{bucket}/out/",
    }
    with mstack.client() as client:
        without = client.post("/v1/transform-jobs", json=spec)
        assert without.status_code == 400, without.text
        unknown = client.post("/v1/transform-jobs", json={**spec, "target_model": "nope.json"})
        assert unknown.status_code == 404, unknown.text
        submitted = client.post("/v1/transform-jobs", json={**spec, "target_model": "m.json"})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]
        assert submitted.json()["target_model"] == "m.json"

        def done() -> dict[str, Any] | None:
            job: dict[str, Any] = client.get(f"/v1/transform-jobs/{job_id}").json()
            return job if job["status"] in ("succeeded", "failed") else None

        job = wait_for(done, timeout_s=60, what="the transform job")
        assert job["status"] == "succeeded", job
    response = s3.client().get_object(bucket, "out/x.csv.out")
    try:
        got = [float(line) for line in response.read().decode().split()]
    finally:
        response.close()
        response.release_conn()
    assert got == pytest.approx(expected(data), rel=1e-5)


def test_a_worker_killed_while_loading_a_model_loses_nothing(
    mstack: Stack, s3: SeaweedServer
) -> None:
    """SIGKILL a worker holding requests for a model it is loading (a 40 MB artifact:
    the model padded with whitespace, slow to download and parse); every job succeeds.
    Runs last: it leaves the module one worker."""
    bucket = unique("models")
    data = booster_bytes(77)
    put(s3, bucket, "slow/m.json", data + b" " * 40_000_000)
    endpoint = multi_model_endpoint(mstack, bucket, "slow/")
    with mstack.client() as client:
        job_ids = []
        for _ in range(5):
            accepted = client.post(
                f"/v1/endpoints/{endpoint}/async-invocations",
                content=orjson.dumps({"instances": ROWS.tolist()}),
                headers={"Content-Type": "application/json", "X-Target-Model": "m.json"},
            )
            assert accepted.status_code == 202, accepted.text
            job_ids.append(accepted.json()["job_id"])
        workers = [p for p in mstack.workers if mstack.heartbeat_pids() & {p.pid}]
        holder = wait_for(
            lambda: next((w for w in workers if _holds_work(mstack, w)), None),
            timeout_s=30,
            what="a worker to take the jobs",
            every_s=0.01,
        )
        mstack.kill_worker(holder)
        for job_id in job_ids:
            job = wait_job(client, job_id, timeout_s=60)
            assert job["status"] == "succeeded", job
            output = client.get(f"/v1/jobs/{job_id}/output").json()["predictions"]
            assert output == pytest.approx(expected(data), rel=1e-5)


def _holds_work(stack: Stack, process: Any) -> bool:
    client = redis.Redis.from_url(stack.env["SLUICEWAY_REDIS_URL"])
    return bool(held_by(client, stack.namespace, stack.worker_id(process)))

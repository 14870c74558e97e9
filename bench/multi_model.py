"""Multi-model endpoints: 1,000 small XGBoost models behind one endpoint, Zipf traffic.

    .venv/bin/python -m bench.multi_model [--seconds 25] [--models 1000] [--concurrency 16]

1,000 XGBoost models (20 trees, depth 4, 16 features; ten trained boosters,
each copied 100 times with its first tree's leaves shifted, so every object
predicts differently) under one prefix; a `model_memory_mb` that holds about
100 of them per worker; two workers; an asyncio client at concurrency 16 whose
requests pick their model from a Zipf distribution (s = 1.1, rank 1 the most
popular). Run twice, model affinity on and off (SLUICEWAY_MODEL_AFFINITY, a
fresh stack each), after a warm-up; side by side with the affine run — during
its measured seconds, on the same workers — the hottest model as an ordinary
one-model endpoint at the same concurrency, then that endpoint alone. Hits and
misses are told apart by each answer's `X-Model-Cache`.

Prints one table (bench/README.md keeps the latest): requests/s, p50/p99
overall and of hits and misses, hit rate, loads/s and evictions (the workers'
counters), distinct models held per worker and in all, and each worker's RSS
idle and at the end. The warm-up requests the models the two budgets could
hold once each, then runs `--warmup` seconds of Zipf traffic, so a run on a
slow machine starts near the steady state a fast one reaches in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import redis

from bench.harness import LocalStack
from core.broker import live_workers, queue_name, read_models

FEATURES = 16
MB = 1_048_576
ZIPF_S = 1.1
BUCKET = "models"
PREFIX = "mm/"
BATCHING = {"max_batch_size": 16, "max_delay_ms": 2}


def build_models(count: int) -> tuple[list[bytes], int]:
    """`count` distinct XGBoost models (JSON) and the memory one holds loaded (UBJ bytes)."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(512, FEATURES)).astype("float32")
    bases = []
    for _ in range(10):
        booster = xgb.train(
            {"max_depth": 4, "nthread": 1},
            xgb.DMatrix(rows, label=rows @ rng.normal(size=FEATURES)),
            num_boost_round=20,
        )
        bases.append(orjson.loads(booster.save_raw("json")))
    memory = len(booster.save_raw("ubj"))
    models = []
    for index in range(count):
        doc = orjson.loads(orjson.dumps(bases[index % len(bases)]))
        tree = doc["learner"]["gradient_booster"]["model"]["trees"][0]
        for node, left in enumerate(tree["left_children"]):
            if left == -1:  # a leaf: shift its value, so this copy predicts its own numbers
                tree["split_conditions"][node] += index * 0.01
                tree["base_weights"][node] += index * 0.01
        models.append(orjson.dumps(doc))
    return models, memory


def zipf_ranks(count: int, draws: int, seed: int = 1) -> np.ndarray:
    """`draws` model indexes drawn from a Zipf distribution (s = 1.1) over `count` models."""
    weights = 1.0 / np.arange(1, count + 1) ** ZIPF_S
    return np.random.default_rng(seed).choice(count, size=draws, p=weights / weights.sum())


def upload(stack: LocalStack, models: list[bytes]) -> None:
    client = stack.s3.client()
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)

    def put(index: int) -> None:
        data = models[index]
        client.put_object(BUCKET, f"{PREFIX}m{index:04d}.json", io.BytesIO(data), len(data))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(len(models))))


async def load(
    url: str, models: list[str], *, concurrency: int, seconds: float, count: int | None = None
) -> list[tuple[float, str]]:
    """Closed loop: `concurrency` callers, each sending the next request on an answer, for
    `seconds` (or until `count` requests were sent). Each request's (latency s, cache
    outcome), the model names taken in turn from `models`."""
    body = orjson.dumps({"instances": [[0.1 * k for k in range(FEATURES)]]})
    results: list[tuple[float, str]] = []
    turn = iter(range(10**9))
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def caller() -> None:
            while time.perf_counter() < deadline or count is not None:
                sent = next(turn)
                if count is not None and sent >= count:
                    return
                model = models[sent % len(models)]
                headers = {"Content-Type": "application/json"}
                if model:
                    headers["X-Target-Model"] = model
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text}")
                results.append((elapsed, response.headers.get("X-Model-Cache", "single")))

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return results


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return float(np.percentile(values, q)) * 1000


def worker_rss(stack: LocalStack) -> list[float]:
    client = redis.Redis.from_url(stack.redis_url)
    workers = sorted(live_workers(client, stack.namespace), key=lambda w: w.id)
    return [w.stats.get("rss_bytes", 0.0) / MB for w in workers]


def held(stack: LocalStack, endpoint: str) -> tuple[list[int], int]:
    """Models each live worker holds now, and distinct models held in all."""
    client = redis.Redis.from_url(stack.redis_url)
    workers = sorted(w.id for w in live_workers(client, stack.namespace))
    holders, _ = read_models(
        client, stack.namespace, queue_name(stack.namespace, endpoint, "a"), workers
    )
    per_worker = Counter(h.worker_id for entries in holders.values() for h in entries)
    return [per_worker.get(w, 0) for w in workers], len(holders)


def run_multi(
    stack: LocalStack,
    names: list[str],
    *,
    budget_mb: int,
    args: argparse.Namespace,
    single_url: str | None = None,
) -> dict[str, Any]:
    with stack.client() as client:
        client.post(
            "/v1/endpoints",
            json={
                "name": "mm",
                "variants": [
                    {
                        "name": "a",
                        "multi_model": {
                            "prefix": f"s3://{BUCKET}/{PREFIX}",
                            "framework": "xgboost",
                        },
                        "model_memory_mb": budget_mb,
                        "batching": BATCHING,
                    }
                ],
            },
        ).raise_for_status()
    time.sleep(2)  # workers pick up the new variant and report their idle RSS
    idle_rss = worker_rss(stack)
    url = f"{stack.api_url}/v1/endpoints/mm/invocations"
    # Warm-up: the models both workers' budgets could hold, coldest first, once each (so a
    # slow machine starts near the steady state a fast one reaches in seconds), then Zipf.
    top = [f"m{index:04d}.json" for index in reversed(range(2 * args.per_worker))]
    asyncio.run(load(url, top, concurrency=args.concurrency, seconds=0, count=len(top)))
    asyncio.run(load(url, names, concurrency=args.concurrency, seconds=args.warmup))
    before = stack.worker_counters("mm", "a")
    measured = names[len(names) // 2 :]  # not the warm-up's draws

    async def side_by_side() -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
        """The multi-model traffic and, at the same time, the one-model endpoint's."""
        multi = load(url, measured, concurrency=args.concurrency, seconds=args.seconds)
        if single_url is None:
            return await multi, []
        alone = load(single_url, [""], concurrency=args.concurrency, seconds=args.seconds)
        both = await asyncio.gather(multi, alone)
        return both[0], both[1]

    results, single = asyncio.run(side_by_side())
    after = stack.worker_counters("mm", "a")
    time.sleep(1.5)  # the workers' next heartbeat carries their RSS
    per_worker, distinct = held(stack, "mm")
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    return {
        "results": results,
        "single": single,
        "loads": delta.get("model_loads", 0.0),
        "evictions": delta.get("model_evictions", 0.0),
        "per_worker": per_worker,
        "distinct": distinct,
        "idle_rss": idle_rss,
        "end_rss": worker_rss(stack),
    }


def create_single(stack: LocalStack, model: bytes) -> str:
    """The hottest model as an ordinary one-model endpoint, warmed up; its invocation URL."""
    path = Path(tempfile.mkdtemp()) / "hot.json"
    path.write_bytes(model)
    stack.register("hot", "xgboost", path)
    with stack.client() as client:
        client.post(
            "/v1/endpoints",
            json={
                "name": "single",
                "variants": [{"name": "a", "model": "hot", "batching": BATCHING}],
            },
        ).raise_for_status()
    time.sleep(2)
    url = f"{stack.api_url}/v1/endpoints/single/invocations"
    asyncio.run(load(url, [""], concurrency=4, seconds=1))
    return url


def run_single_again(stack: LocalStack, args: argparse.Namespace) -> list[tuple[float, str]]:
    """The one-model endpoint alone, after the multi-model run (the cores all its own)."""
    url = f"{stack.api_url}/v1/endpoints/single/invocations"
    return asyncio.run(load(url, [""], concurrency=args.concurrency, seconds=args.seconds))


def row(label: str, results: list[tuple[float, str]], seconds: float, extra: dict[str, Any]) -> str:
    every = [latency for latency, _ in results]
    hits = [latency for latency, cache in results if cache == "hit"]
    misses = [latency for latency, cache in results if cache == "miss"]
    multi = hits or misses
    hit_rate = f"{100 * len(hits) / len(results):.1f} %" if multi else ""
    loads = f"{extra['loads'] / seconds:.1f}" if "loads" in extra else ""
    evictions = f"{extra['evictions']:.0f}" if "evictions" in extra else ""
    holding = (
        f"{' + '.join(map(str, extra['per_worker']))} = {extra['distinct']} distinct"
        if "per_worker" in extra
        else ""
    )
    rss = (
        " / ".join(
            f"{a:.0f}→{b:.0f}" for a, b in zip(extra["idle_rss"], extra["end_rss"], strict=False)
        )
        if "idle_rss" in extra
        else ""
    )
    cells = [
        label,
        f"{len(results) / seconds:,.0f}",
        f"{percentile(every, 50):.1f}",
        f"{percentile(every, 99):.1f}",
        f"{percentile(hits, 50):.1f}" if multi else "",
        f"{percentile(hits, 99):.1f}" if multi else "",
        f"{percentile(misses, 50):.1f}" if misses else "",
        f"{percentile(misses, 99):.1f}" if misses else "",
        hit_rate,
        loads,
        evictions,
        holding,
        rss,
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-worker", type=int, default=100, help="models a budget holds")
    args = parser.parse_args()
    models, memory = build_models(args.models)
    budget_mb = max(1, round(args.per_worker * memory / MB))
    names = [f"m{index:04d}.json" for index in zipf_ranks(args.models, 400_000)]
    print(
        f"{args.models} models, {statistics.mean(map(len, models)) / 1024:.0f} KB each as JSON, "
        f"{memory / 1024:.0f} KB loaded; model_memory_mb {budget_mb} "
        f"(holds {budget_mb * MB // memory} per worker); 2 workers; concurrency "
        f"{args.concurrency}; Zipf s = {ZIPF_S}; {args.seconds:g} s per run after "
        f"{args.warmup:g} s of warm-up",
        flush=True,
    )
    print(
        "| run | req/s | p50 ms | p99 ms | hit p50 | hit p99 | miss p50 | miss p99 | hit rate "
        "| loads/s | evictions | models held (per worker = distinct) | worker RSS MB idle→end |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for affinity in ("true", "false"):
        env = {"SLUICEWAY_MODEL_AFFINITY": affinity, "SLUICEWAY_LOG_LEVEL": "WARNING"}
        with LocalStack(workers=2, extra_env=env) as stack:
            upload(stack, models)
            # Side by side (the comparison): the one-model endpoint runs during the
            # affine run's measured seconds, on the same workers and cores.
            single_url = create_single(stack, models[0]) if affinity == "true" else None
            outcome = run_multi(stack, names, budget_mb=budget_mb, args=args, single_url=single_url)
            label = f"multi-model, affinity {'on' if affinity == 'true' else 'off'}"
            print(row(label, outcome["results"], args.seconds, outcome), flush=True)
            if affinity == "true":
                print(
                    row(
                        "one-model endpoint, the hottest model, at the same time",
                        outcome["single"],
                        args.seconds,
                        {},
                    ),
                    flush=True,
                )
                alone = run_single_again(stack, args)
                print(row("one-model endpoint alone, after", alone, args.seconds, {}))


if __name__ == "__main__":
    main()

"""Data capture's cost on the realtime hot path, and whether any record is lost.

Two endpoints of the same XGBoost model on one worker, one capturing 100 % of
its traffic to S3 and one not; `wrk` drives each at 64 concurrent callers in
alternating rounds (off, on, off, on, ...), so both see the same machine.
After the last round the capture records in S3 are counted and compared with
the requests the worker answered on the capturing endpoint (its own counter):
a clean run must lose none.

    .venv/bin/python -m bench.capture [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson

from bench.batching import build_xgb
from bench.harness import LocalStack, wrk

CONCURRENCY = 64
BUCKET = "capture-bench"


def count_records(stack: LocalStack, endpoint: str) -> int:
    client = stack.s3.client()
    total = 0
    for obj in client.list_objects(BUCKET, prefix=f"capture/{endpoint}/", recursive=True):
        response = client.get_object(BUCKET, obj.object_name)
        try:
            total += response.read().count(b"\n")
        finally:
            response.close()
            response.release_conn()
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    path, features, _predict = build_xgb(Path(tempfile.mkdtemp()) / "xgb.json")
    body = orjson.dumps({"instances": [[0.5] * features]}).decode()
    batching = {"max_batch_size": 64, "max_delay_ms": 2}
    with LocalStack(workers=1, extra_env={"SLUICEWAY_CAPTURE_FLUSH_S": "1"}) as stack:
        stack.s3.client().make_bucket(BUCKET)
        stack.register("xgb", "xgboost", path)
        capture = {"sampling_percent": 100, "destination": f"s3://{BUCKET}/capture/"}
        with stack.client() as client:
            for name, extra in (("off", {}), ("on", {"data_capture": capture})):
                client.post(
                    "/v1/endpoints",
                    json={
                        "name": name,
                        "variants": [{"name": "a", "model": "xgb", "batching": batching}],
                        **extra,
                    },
                ).raise_for_status()
        urls = {name: f"{stack.api_url}/v1/endpoints/{name}/invocations" for name in ("off", "on")}
        for url in urls.values():
            wrk(url, body, connections=4, seconds=2)  # warm up: model load, routes
        time.sleep(2)  # the warm-up's capture is written before counting starts
        before = count_records(stack, "on")
        served_before = stack.worker_counters("on", "a")
        rates: dict[str, list[float]] = {"off": [], "on": []}
        p99: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(args.rounds):
            for name, url in urls.items():
                result = wrk(url, body, connections=CONCURRENCY, seconds=args.seconds)
                rates[name].append(result["rps"])
                p99[name].append(result["p99_us"] / 1000)
                print(f"capture {name}: {result['rps']:,.0f} req/s", flush=True)
        served = stack.worker_counters("on", "a")
        answered = int(
            served.get("requests", 0)
            - served_before.get("requests", 0)
            - (served.get("errors", 0) - served_before.get("errors", 0))
        )
        deadline = time.monotonic() + 30
        while (records := count_records(stack, "on") - before) < answered:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    off = sum(rates["off"]) / len(rates["off"])
    on = sum(rates["on"]) / len(rates["on"])
    print()
    print("| capture | concurrency | requests/s (mean of rounds) | p99 ms (worst round) |")
    print("| --- | --- | --- | --- |")
    print(f"| off | {CONCURRENCY} | {off:,.0f} | {max(p99['off']):.1f} |")
    print(
        f"| on, 100 % | {CONCURRENCY} | {on:,.0f} ({on / off:.1%} of off) | {max(p99['on']):.1f} |"
    )
    print()
    print(
        f"requests answered on the capturing endpoint: {answered:,}; records written: {records:,}"
    )


if __name__ == "__main__":
    main()

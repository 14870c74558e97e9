"""The batching table's key row, repeated: torch-mlp at 64 connections, batching on and off.

    .venv/bin/python -m bench.realtime64 [--seconds 8] [--rounds 3]

One line per run: requests/s, latency percentiles, mean batch, and the CPU
time the API and the worker process spent per request (from /proc). CPU per
request moves far less than requests/s when other work shares the machine,
so it is the figure to compare two versions of the code by; run two
checkouts at once, each pinned to its own core with its own Redis, to give
both the same neighbours (bench/README.md, "Worker leases").
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import orjson

from bench.batching import MODES, build_mlp
from bench.harness import LocalStack, wrk

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path, features, _predict = build_mlp(Path(tempfile.mkdtemp()) / "mlp.pt")
    body = orjson.dumps({"instances": [[0.5] * features]}).decode()
    with LocalStack(workers=1) as stack, stack.client() as client:
        stack.register("torch-mlp", "torch", path)
        client.post(
            "/v1/endpoints",
            json={
                "name": "torch-mlp",
                "variants": [{"name": "a", "model": "torch-mlp", "batching": MODES["off"]}],
            },
        ).raise_for_status()
        url = f"{stack.api_url}/v1/endpoints/torch-mlp/invocations"
        wrk(url, body, connections=4, seconds=2)  # warm up: model load, JIT
        api, worker = stack.processes[0].pid, stack.processes[1].pid
        print(
            "| round | batching | req/s | p50 ms | p99 ms | mean batch | API CPU/req ms "
            "| worker CPU/req ms |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for round_ in range(args.rounds):
            for mode, batching in MODES.items():
                client.patch(
                    "/v1/endpoints/torch-mlp/variants/a", json={"batching": batching}
                ).raise_for_status()
                time.sleep(2.5)  # workers re-read settings every second
                counters = stack.worker_counters("torch-mlp", "a")
                cpu = cpu_s(api), cpu_s(worker)
                result = wrk(url, body, connections=64, seconds=args.seconds)
                api_ms = (cpu_s(api) - cpu[0]) * 1000 / result["requests"]
                worker_ms = (cpu_s(worker) - cpu[1]) * 1000 / result["requests"]
                after = stack.worker_counters("torch-mlp", "a")
                batches = after.get("batches", 0) - counters.get("batches", 0)
                rows = after.get("batch_rows_sum", 0) - counters.get("batch_rows_sum", 0)
                print(
                    f"| {round_} | {mode} | {result['rps']:,.0f} | {result['p50_us'] / 1000:.1f} "
                    f"| {result['p99_us'] / 1000:.1f} | {rows / batches if batches else 0:.1f} "
                    f"| {api_ms:.3f} | {worker_ms:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Serial-pipeline and batching-handler benchmark: the platform against the same code in-process.

    .venv/bin/python -m bench.pipelines [--seconds 8] [--repeat 1]

A 3-step pipeline — python `prep` (scales the 32 features) → the XGBoost
classifier of bench/batching.py (200 trees, depth 6) → python `post` (turns a
probability into `[p, label]`) — is served as one realtime endpoint on one
worker (`max_batch_size` 64, `max_delay_ms` 2) next to the XGBoost model alone
on a second endpoint of the same worker, and called by closed-loop callers
(`wrk`, one instance per JSON request) at concurrency 1 and 64:
requests/s, p50/p99 latency and the mean batch each step ran. The in-process
rows call the same three functions directly in this process, one request at a
time and 64 rows at a time. Then two python handlers, each once plain (one
`predict_fn` call per request) and once with `batch_predict = "stack"` (one
call per batch), at concurrency 64: one that sums each row (nearly free per
call: it shows the platform's own cost per request) and one that runs a torch
MLP (12 blocks of Linear 1024 → GELU → LayerNorm, ~12.6 M parameters, one
thread, as a custom model in a handler would: its cost per call is the
weights read once, whatever the rows).

Goals (issue 16): at concurrency 64 the pipeline reaches >= 60 % of the
XGBoost endpoint's throughput in the same run, and the batching handler >= 5x
the plain one (the MLP: a handler with a real model). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import io
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.batching import build_xgb
from bench.harness import LocalStack, wrk

PREP = b"""
import numpy as np

batch_predict = "stack"


def predict_fn(rows, model):
    return np.asarray(rows, dtype=np.float32) * 0.5
"""
POST = b"""
def predict_fn(probabilities, model):
    return [[p, int(p > 0.5)] for p in probabilities]
"""
SUM = b"""
import numpy as np
%s

def predict_fn(data, model):
    return np.asarray(data, dtype=float).sum(axis=1).tolist()
"""
MLP = b"""
import numpy as np
import torch
%s

def model_fn(model_dir):
    torch.set_num_threads(1)  # the compute a worker has here
    torch.manual_seed(0)
    layers = []
    for block in range(12):
        layers += [
            torch.nn.Linear(32 if block == 0 else 1024, 1024),
            torch.nn.GELU(),
            torch.nn.LayerNorm(1024),
        ]
    return torch.nn.Sequential(*layers, torch.nn.Linear(1024, 1)).eval()


def predict_fn(data, model):
    with torch.inference_mode():
        rows = torch.as_tensor(np.asarray(data, dtype=np.float32))
        return model(rows)[:, 0].tolist()
"""
FEATURES = 32
BATCHING = {"max_batch_size": 64, "max_delay_ms": 2}


def bundle(path: Path, source: bytes) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("handler.py")
        info.size = len(source)
        archive.addfile(info, io.BytesIO(source))
    return path


def in_process_rps(call: Callable[[np.ndarray], object], rows: int, seconds: float = 1.5) -> float:
    """Requests/s of calling `call` on `rows` rows (one request = `rows` rows' worth)."""
    data = np.random.default_rng(1).normal(size=(rows, FEATURES)).astype(np.float32)
    for _ in range(5):
        call(data)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call(data)
        calls += 1
    return calls * rows / (time.perf_counter() - started)


def errors_of(result: dict[str, Any]) -> str:
    failed = result["non2xx"] + result["socket_errors"]
    return f" ({failed} errors)" if failed else ""


def mean_batch(counters: dict[str, float]) -> float:
    return counters.get("batch_rows_sum", 0.0) / max(counters.get("batches", 0.0), 1.0)


def step_means(counters: dict[str, float], steps: list[str]) -> str:
    """Each step's mean seconds per batch, as `prep 0.3 ms`."""
    out = []
    for step in steps:
        total = counters.get(f"step.{step}_sum", 0.0)
        count = sum(v for k, v in counters.items() if k.startswith(f"step.{step}_le_"))
        out.append(f"{step} {total / max(count, 1) * 1000:.2f} ms")
    return ", ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    xgb_path, _features, predict = build_xgb(folder / "model.json")

    def pipeline_in_process(rows: np.ndarray) -> object:
        probabilities = predict(rows * np.float32(0.5))
        return [[float(p), int(p > 0.5)] for p in np.asarray(probabilities)]

    body = orjson.dumps({"instances": [[0.1] * FEATURES]})
    lines = [
        "| how | concurrency | req/s | p50 ms | p99 ms | mean batch (rows) | per step |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| in-process prep → xgb → post, 1 row per call | 1 | "
        f"{in_process_rps(pipeline_in_process, 1):,.0f} | | | 1 | |",
        f"| in-process prep → xgb → post, 64 rows per call | | "
        f"{in_process_rps(pipeline_in_process, 64):,.0f} rows/s | | | 64 | |",
        f"| in-process xgb alone, 64 rows per call | | "
        f"{in_process_rps(lambda rows: predict(rows), 64):,.0f} rows/s | | | 64 | |",
    ]
    print("\n".join(lines), flush=True)
    handler_lines = [
        "| handler | concurrency | req/s | p50 ms | p99 ms | mean batch (requests) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    with LocalStack(workers=1) as stack:
        stack.register("prep", "python", bundle(folder / "prep.tar.gz", PREP))
        stack.register("xgb", "xgboost", xgb_path)
        stack.register("post", "python", bundle(folder / "post.tar.gz", POST))
        stack.register("plain", "python", bundle(folder / "plain.tar.gz", SUM % b""))
        stack.register(
            "batching", "python", bundle(folder / "b.tar.gz", SUM % b'batch_predict = "stack"')
        )
        stack.register("mlp-plain", "python", bundle(folder / "mlp.tar.gz", MLP % b""))
        stack.register(
            "mlp-batching",
            "python",
            bundle(folder / "mlp-b.tar.gz", MLP % b'batch_predict = "stack"'),
        )
        with stack.client() as client:
            client.post(
                "/v1/models",
                json={
                    "name": "pipe",
                    "framework": "pipeline",
                    "steps": [
                        {"name": "prep", "model": "prep"},
                        {"name": "xgb", "model": "xgb"},
                        {"name": "post", "model": "post"},
                    ],
                },
            ).raise_for_status()
            for endpoint, model in (
                ("pipe", "pipe"),
                ("xgb", "xgb"),
                ("plain", "plain"),
                ("batching", "batching"),
                ("mlp-plain", "mlp-plain"),
                ("mlp-batching", "mlp-batching"),
            ):
                client.post(
                    "/v1/endpoints",
                    json={
                        "name": endpoint,
                        "variants": [{"name": "a", "model": model, "batching": BATCHING}],
                    },
                ).raise_for_status()

        def measure(endpoint: str, concurrency: int) -> tuple[dict[str, Any], float, str]:
            url = f"{stack.api_url}/v1/endpoints/{endpoint}/invocations"
            wrk(url, body.decode(), connections=4, seconds=1)  # load the model
            before = stack.worker_counters(endpoint, "a")
            runs = [
                wrk(url, body.decode(), connections=concurrency, seconds=args.seconds)
                for _ in range(args.repeat)
            ]
            best = max(runs, key=lambda run: run["rps"])
            after = stack.worker_counters(endpoint, "a")
            delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
            steps = step_means(delta, ["prep", "xgb", "post"]) if endpoint == "pipe" else ""
            return best, mean_batch(delta), steps

        rates: dict[tuple[str, int], float] = {}
        for endpoint, label in (("pipe", "platform, pipeline"), ("xgb", "platform, xgb alone")):
            for concurrency in (1, 64):
                result, batch, steps = measure(endpoint, concurrency)
                rates[endpoint, concurrency] = result["rps"]
                lines.append(
                    f"| {label} | {concurrency} | {result['rps']:,.0f}{errors_of(result)} "
                    f"| {result['p50_us'] / 1000:.1f} | {result['p99_us'] / 1000:.1f} "
                    f"| {batch:.1f} | {steps} |"
                )
                print(lines[-1], flush=True)
        labels = {
            "plain": "row sum, plain",
            "batching": "row sum, batching",
            "mlp-plain": "torch MLP, plain",
            "mlp-batching": "torch MLP, batching",
        }
        for endpoint, label in labels.items():
            result, batch, _ = measure(endpoint, 64)
            rates[endpoint, 64] = result["rps"]
            handler_lines.append(
                f"| {label} | 64 | {result['rps']:,.0f}{errors_of(result)} "
                f"| {result['p50_us'] / 1000:.1f} | {result['p99_us'] / 1000:.1f} | {batch:.1f} |"
            )
            print(handler_lines[-1], flush=True)
    print()
    print("\n".join(lines))
    print()
    print(
        f"pipeline / xgb alone at concurrency 64: "
        f"{rates['pipe', 64] / rates['xgb', 64]:.2f} (goal >= 0.60)"
    )
    print()
    print("\n".join(handler_lines))
    print()
    print(
        f"batching / plain handler at concurrency 64: torch MLP "
        f"{rates['mlp-batching', 64] / rates['mlp-plain', 64]:.2f} (goal >= 5); "
        f"row sum {rates['batching', 64] / rates['plain', 64]:.2f}"
    )


if __name__ == "__main__":
    main()

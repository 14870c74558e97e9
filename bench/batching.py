"""Dynamic batching benchmark: the raw model in-process vs the platform's realtime endpoint.

    .venv/bin/python -m bench.batching [--seconds 8]

Builds a torch MLP 256→1024→1024→10 (TorchScript) and an XGBoost classifier
(200 trees, depth 6, 32 features), measures each in-process at batch sizes
1/8/32/128, then serves each behind a realtime endpoint (one worker) and drives
it with `wrk` at 1, 16 and 64 concurrent callers, one instance per JSON request,
with batching off (max_batch_size 1) and on (32, max_delay_ms 5). Prints one
Markdown table; the mean batch size comes from the workers' own counters.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from bench.harness import LocalStack, wrk

BATCH_SIZES = (1, 8, 32, 128)
CONCURRENCY = (1, 16, 64)
MODES = {
    "off": {"max_batch_size": 1, "max_delay_ms": 0},
    "on": {"max_batch_size": 32, "max_delay_ms": 5},
}


def build_mlp(path: Path) -> tuple[Path, int, Callable[[np.ndarray], object]]:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    ).eval()
    scripted = torch.jit.script(model)
    scripted.save(str(path))

    def predict(rows: np.ndarray) -> object:
        with torch.inference_mode():
            return scripted(torch.from_numpy(rows)).numpy()

    return path, 256, predict


def build_xgb(path: Path) -> tuple[Path, int, Callable[[np.ndarray], object]]:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 32)).astype(np.float32)
    y = (x[:, :4].sum(axis=1) > 0).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "nthread": 2},
        xgb.DMatrix(x, label=y),
        num_boost_round=200,
    )
    booster.save_model(str(path))
    return path, 32, lambda rows: booster.inplace_predict(rows)


def raw_rows_per_s(predict: Callable[[np.ndarray], object], features: int, batch: int) -> float:
    rows = np.random.default_rng(1).normal(size=(batch, features)).astype(np.float32)
    for _ in range(5):
        predict(rows)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 1.0:
        predict(rows)
        calls += 1
    return calls * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    models = {
        "torch-mlp": ("torch", *build_mlp(folder / "mlp.pt")),
        "xgboost-200x6": ("xgboost", *build_xgb(folder / "xgb.json")),
    }
    lines = [
        "| model | how | concurrency / batch | requests/s or rows/s | p50 ms | p95 ms | p99 ms "
        "| mean batch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    raw_single: dict[str, float] = {}
    for label, (_fw, _path, features, predict) in models.items():
        for batch in BATCH_SIZES:
            rate = raw_rows_per_s(predict, features, batch)
            if batch == 1:
                raw_single[label] = 1000 / rate
            lines.append(
                f"| {label} | raw in-process | batch {batch} | {rate:,.0f} rows/s | | | | |"
            )
    with LocalStack(workers=1) as stack:
        for label, (framework, path, features, _predict) in models.items():
            stack.register(label, framework, path)
            body = orjson.dumps({"instances": [[0.5] * features]}).decode()
            with stack.client() as client:
                client.post(
                    "/v1/endpoints",
                    json={
                        "name": label,
                        "variants": [{"name": "a", "model": label, "batching": MODES["off"]}],
                    },
                ).raise_for_status()
                url = f"{stack.api_url}/v1/endpoints/{label}/invocations"
                wrk(url, body, connections=4, seconds=2)  # warm up: model load, JIT
                for mode, batching in MODES.items():
                    client.patch(
                        f"/v1/endpoints/{label}/variants/a", json={"batching": batching}
                    ).raise_for_status()
                    time.sleep(2.5)  # workers re-read settings every second
                    for concurrency in CONCURRENCY:
                        before = stack.worker_counters(label, "a")
                        result = wrk(url, body, connections=concurrency, seconds=args.seconds)
                        after = stack.worker_counters(label, "a")
                        batches = after.get("batches", 0) - before.get("batches", 0)
                        rows = after.get("batch_rows_sum", 0) - before.get("batch_rows_sum", 0)
                        failed = result["non2xx"] + result["socket_errors"]
                        errors = f" ({failed} errors)" if failed else ""
                        mean_batch = rows / batches if batches else 0
                        lines.append(
                            f"| {label} | platform, batching {mode} | {concurrency} "
                            f"| {result['rps']:,.0f} req/s{errors} "
                            f"| {result['p50_us'] / 1000:.1f} | {result['p95_us'] / 1000:.1f} "
                            f"| {result['p99_us'] / 1000:.1f} | {mean_batch:.1f} |"
                        )
                        if concurrency == 1:
                            overhead = result["p50_us"] / 1000 - raw_single[label]
                            lines.append(
                                f"| {label} | overhead at concurrency 1 (p50 minus raw batch-1 "
                                f"{raw_single[label]:.2f} ms) | 1 | | {overhead:.1f} | | | |"
                            )
                        print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()

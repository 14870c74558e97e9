"""Python-handler benchmark: what running handlers in the worker's handler host costs.

    .venv/bin/python -m bench.handlers [--seconds 8] [--calls 5000]

A `python` handler (default input_fn and output_fn; predict_fn sums each row
with numpy) is called two ways:

- per call, in this process: `PythonRunner.invoke` directly (the handler as a
  worker ran it before the handler host), then through a `HandlerHost` (a
  child process fed over a socket pair, as a worker runs it now): the
  difference is the host's round trip;
- through the platform: a realtime endpoint on one worker (one API process,
  local Redis and SeaweedFS, SQLite), driven by `wrk` with 1 and 16
  connections, one 4-feature instance per JSON request.

Prints one Markdown table. On a checkout without the handler host the
host row is left out, so the same script measures the code before it.
"""

from __future__ import annotations

import argparse
import io
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bench.harness import LocalStack, wrk

HANDLER = b"""
import numpy as np


def predict_fn(data, model):
    return np.asarray(data, dtype=float).sum(axis=1).tolist()
"""
CONCURRENCY = (1, 16)
BODY = orjson.dumps({"instances": [[0.5, -1.0, 2.0, 0.25]]})


def build_bundle(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        info = tarfile.TarInfo("handler.py")
        info.size = len(HANDLER)
        bundle.addfile(info, io.BytesIO(HANDLER))
    return path


def per_call_us(invoke: Callable[[bytes, str, str | None], object], calls: int) -> float:
    """Mean microseconds of one call, after 200 to warm up."""
    for _ in range(200):
        invoke(BODY, "application/json", None)
    started = time.perf_counter()
    for _ in range(calls):
        invoke(BODY, "application/json", None)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    lines = [
        "| how | concurrency | requests/s or µs per call | p50 ms | p95 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    from workers.runners.python import PythonRunner

    local = PythonRunner(build_bundle(folder / "local.tar.gz"), "cpu")
    lines.append(
        f"| handler in this process | 1 | {per_call_us(local.invoke, args.calls):.1f} µs | | | |"
    )
    try:
        from workers.runners.host import HandlerHost, HostedPythonRunner
    except ImportError:
        pass  # the code before the handler host
    else:
        host = HandlerHost(device="cpu")
        hosted = HostedPythonRunner(host, build_bundle(folder / "hosted.tar.gz"))
        lines.append(
            f"| handler in the handler host | 1 | {per_call_us(hosted.invoke, args.calls):.1f} µs "
            "| | | |"
        )
        host.stop()
    print("\n".join(lines[2:]), flush=True)
    with LocalStack(workers=1) as stack:
        stack.register("handler", "python", build_bundle(folder / "platform.tar.gz"))
        with stack.client() as client:
            client.post(
                "/v1/endpoints",
                json={"name": "handler", "variants": [{"name": "a", "model": "handler"}]},
            ).raise_for_status()
        url = f"{stack.api_url}/v1/endpoints/handler/invocations"
        wrk(url, BODY.decode(), connections=4, seconds=2)  # warm up: model load
        for concurrency in CONCURRENCY:
            result = wrk(url, BODY.decode(), connections=concurrency, seconds=args.seconds)
            failed = result["non2xx"] + result["socket_errors"]
            errors = f" ({failed} errors)" if failed else ""
            lines.append(
                f"| platform, realtime | {concurrency} | {result['rps']:,.0f} req/s{errors} "
                f"| {result['p50_us'] / 1000:.1f} | {result['p95_us'] / 1000:.1f} "
                f"| {result['p99_us'] / 1000:.1f} |"
            )
            print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()

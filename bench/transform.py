"""Batch transform benchmark: rows per second over an S3 prefix vs the raw model in-process.

    .venv/bin/python -m bench.transform [--objects 20] [--rows 50000] [--big-object-mb 0]

Writes `--objects` CSV objects of `--rows` rows each (32 features, 1,000,000
records by default) into a private SeaweedFS, then runs `sluice transform`'s
job for the XGBoost classifier of bench/batching.py (200 trees, depth 6) on
the transform pool: first with one worker, then with two. Each run is timed
from the POST to `succeeded` (listing, splitting, queueing, parsing,
predicting, writing parts, assembling the outputs) and its outputs are checked
against the model called in-process. The raw baselines call the same booster
in this process on the same rows, with the one compute thread a worker has
here: already in memory, and parsed from the same CSV bytes with the workers'
own parser (core/records.py). Each
is the best of `--repeat` runs (the machine is shared). Peak resident memory
of the workers and the scheduler is read from /proc. `--big-object-mb N` adds
a run over one object of N MB, to show memory stays bounded whatever its size.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.batching import build_xgb
from bench.harness import LocalStack
from core.broker import live_workers

FEATURES = 32


def csv_bytes(rows: np.ndarray) -> bytes:
    """Rows with 2 decimals, one per line (the way exported tables usually look)."""
    cells = np.char.mod("%.2f", rows)
    return ("\n".join(",".join(line) for line in cells.tolist()) + "\n").encode()


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has ever held."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_job(stack: LocalStack, spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
    with stack.client() as client:
        started = time.perf_counter()
        response = client.post("/v1/transform-jobs", json=spec)
        response.raise_for_status()
        job_id = response.json()["job_id"]
        while True:
            job: dict[str, Any] = client.get(f"/v1/transform-jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "stopped"):
                elapsed = time.perf_counter() - started
                break
            time.sleep(0.1)
    if job["status"] != "succeeded":
        raise SystemExit(f"transform job ended {job['status']}: {job.get('error')}")
    return job, elapsed


def check_outputs(stack: LocalStack, bucket: str, expected: dict[str, np.ndarray]) -> None:
    client = stack.s3.client()
    for key, predictions in expected.items():
        response = client.get_object(bucket, f"out/{key}.out")
        try:
            got = np.loadtxt(io.BytesIO(response.read()), dtype=np.float64)
        finally:
            response.close()
            response.release_conn()
        np.testing.assert_allclose(got, predictions, rtol=1e-5, atol=1e-6)


def worker_pids(stack: LocalStack) -> list[int]:
    client = redis.Redis.from_url(stack.redis_url)
    return [w.pid for w in live_workers(client, stack.namespace)]


class Repeated(io.RawIOBase):
    """A file that is `block` over and over: a big object uploaded without holding it."""

    def __init__(self, block: bytes, repeats: int) -> None:
        super().__init__()
        self.block, self.left, self.pending = block, repeats, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while len(out) < size and (self.pending or self.left):
            if not self.pending:
                self.pending, self.left = self.block, self.left - 1
            take = self.pending[: size - len(out)]
            out += take
            self.pending = self.pending[len(take) :]
        return bytes(out)


def big_object_run(
    stack: LocalStack, rng: np.random.Generator, megabytes: int, base: dict[str, Any]
) -> tuple[int, int, float]:
    """One object of about `megabytes` MB: (records, bytes, seconds)."""
    block = csv_bytes(rng.normal(size=(20_000, FEATURES)).round(2))
    repeats = max(1, megabytes * 1_000_000 // len(block))
    stack.s3.client().put_object(
        "bench-in", "big/huge.csv", Repeated(block, repeats), -1, part_size=16 * 1024 * 1024
    )
    spec = {**base, "input_prefix": "s3://bench-in/big/", "output_prefix": "s3://bench-big/out/"}
    job, elapsed = run_job(stack, spec)
    assert job["processed_records"] == repeats * 20_000, job
    return repeats * 20_000, repeats * len(block), elapsed


def raw_rates(
    path: Path, data: dict[str, np.ndarray], payloads: dict[str, bytes], repeat: int
) -> tuple[float, float]:
    """Best rows/s of the booster in this process, with one thread like one worker here:
    on rows in memory (batches of 1024, as the platform's calls), and parsing the same
    CSV bytes first with the workers' own parser (core/records.py: pyarrow's CSV
    reader in bulk, falling back to np.loadtxt) — the same parsing."""
    import xgboost as xgb

    from core.codecs import CSV
    from core.records import parse_chunk

    booster = xgb.Booster()
    booster.load_model(str(path))
    booster.set_param({"nthread": 1})
    rows = np.concatenate([r.astype(np.float32) for r in data.values()])
    booster.inplace_predict(rows[:1024])
    in_memory = with_parse = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for start in range(0, len(rows), 1024):
            booster.inplace_predict(rows[start : start + 1024])
        in_memory = max(in_memory, len(rows) / (time.perf_counter() - started))
        started = time.perf_counter()
        for payload in payloads.values():
            parsed = parse_chunk(payload, CSV, FEATURES).rows
            for start in range(0, len(parsed), 1024):
                booster.inplace_predict(parsed[start : start + 1024])
        with_parse = max(with_parse, len(rows) / (time.perf_counter() - started))
    return in_memory, with_parse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--rows", type=int, default=50_000, help="rows per object")
    parser.add_argument("--big-object-mb", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    path, features, _ = build_xgb(folder / "xgb.json")
    assert features == FEATURES
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(path))
    rng = np.random.default_rng(0)
    data = {
        f"day={i // 5}/part-{i:03d}.csv": rng.normal(size=(args.rows, FEATURES)).round(2)
        for i in range(args.objects)
    }
    payloads = {key: csv_bytes(rows) for key, rows in data.items()}
    expected = {key: booster.inplace_predict(r.astype(np.float32)) for key, r in data.items()}
    total_rows = args.objects * args.rows
    total_mb = sum(len(p) for p in payloads.values()) / 1e6
    print(f"{args.objects} objects, {total_rows:,} rows, {total_mb:.0f} MB of CSV", flush=True)
    # One worker computes with one thread here (half of 2 cores, so OpenMP threads
    # never spin against each other): the raw model gets the same one thread.
    in_memory, with_parse = raw_rates(path, data, payloads, args.repeat)
    lines = [
        f"{args.objects} CSV objects, {total_rows:,} records of {FEATURES} features "
        f"({total_mb:.0f} MB); XGBoost 200 trees depth 6; {os.cpu_count()} cores; "
        f"best of {args.repeat}",
        "",
        "| how | rows/s | seconds | vs raw model | vs raw model + CSV parse | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| raw model in-process, 1 thread, rows in memory | {in_memory:,.0f} "
        f"| {total_rows / in_memory:.1f} | 1.00 | | |",
        f"| raw model in-process, 1 thread, parsing the CSV as workers do | {with_parse:,.0f} "
        f"| {total_rows / with_parse:.1f} | {with_parse / in_memory:.2f} | 1.00 | |",
    ]

    def platform_line(label: str, records: int, elapsed: list[float]) -> str:
        rate = records / min(elapsed)
        spread = f" (worst {records / max(elapsed):,.0f})" if len(elapsed) > 1 else ""
        rss = ", ".join(f"{peak_rss_mb(pid):.0f}" for pid in worker_pids(stack))
        rss += f"; scheduler {peak_rss_mb(scheduler.pid):.0f}"
        line = (
            f"| {label} | {rate:,.0f}{spread} | {min(elapsed):.1f} | {rate / in_memory:.2f} "
            f"| {rate / with_parse:.2f} | workers {rss} |"
        )
        print(line, flush=True)
        return line

    with LocalStack(workers=1, extra_env={"SLUICEWAY_SCALER_BACKEND": "none"}) as stack:
        scheduler = stack.spawn("scheduler", log="scheduler.log")
        stack.register("xgb", "xgboost", path)
        client = stack.s3.client()
        client.make_bucket("bench-in")
        for key, payload in payloads.items():
            client.put_object("bench-in", f"in/{key}", io.BytesIO(payload), len(payload))
        warm = payloads[next(iter(payloads))][:10_000].rsplit(b"\n", 1)[0] + b"\n"
        client.put_object("bench-in", "warm/x.csv", io.BytesIO(warm), len(warm))
        base = {"model": "xgb", "content_type": "text/csv", "max_payload_mb": 6}
        for workers in (1, 2):
            if workers == 2:
                stack.spawn("worker", "--device", "cpu", "--name", "bench1", log="worker1.log")
                deadline = time.monotonic() + 60
                while len(worker_pids(stack)) < 2 and time.monotonic() < deadline:
                    time.sleep(0.2)
            # Warm up: every worker loads the model before the timed run.
            for n in range(workers * 2):
                spec = {**base, "input_prefix": "s3://bench-in/warm/"}
                run_job(stack, {**spec, "output_prefix": f"s3://bench-warm/{workers}-{n}/"})
            times = []
            for run in range(args.repeat):
                bucket = f"bench-out-{workers}-{run}"
                spec = {**base, "input_prefix": "s3://bench-in/in/"}
                job, elapsed = run_job(stack, {**spec, "output_prefix": f"s3://{bucket}/out/"})
                assert job["processed_records"] == total_rows and job["failed_records"] == 0
                check_outputs(stack, bucket, expected)
                times.append(elapsed)
            label = f"platform, {args.objects} objects, {workers} worker(s)"
            lines.append(platform_line(label, total_rows, times))
        if args.big_object_mb:
            records, size, elapsed = big_object_run(stack, rng, args.big_object_mb, base)
            label = f"platform, one {size / 1e6:,.0f} MB object, 2 workers"
            lines.append(platform_line(label, records, [elapsed]))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()

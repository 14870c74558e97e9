"""Webhook delivery throughput: events per second from the outbox to one loopback receiver.

What it runs is the real thing minus the model: N finished jobs get their
outbox events through `core.outbox.record_job_events` (exactly the worker's
call), one topic has one subscription pointing at a receiver on 127.0.0.1, and
the scheduler's `Notifier` (fan-out, leasing, signing, HTTP, recording) runs
until every delivery is recorded as delivered. The receiver is a separate
process (uvicorn + a bare ASGI app that checks each signature and answers 204),
so it does not share the notifier's GIL.

    .venv/bin/python -m bench.webhooks --events 5000
    .venv/bin/python -m bench.webhooks --events 5000 --database postgresql

Prints one table: events, seconds, events/s, and per-attempt latency percentiles.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

SECRET = "bench-secret-0123456789abcdef"


def receiver(port: int, counter: Any) -> None:
    """A minimal ASGI receiver: verify the signature, count, answer 204."""
    import uvicorn

    from core.webhooks import verify_signature

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        ok = verify_signature(SECRET, body, headers.get(b"x-sluiceway-signature", b"").decode())
        if ok:
            with counter.get_lock():
                counter.value += 1
        await send({"type": "http.response.start", "status": 204 if ok else 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", http="httptools", loop="uvloop"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    from devstack.servers import free_port

    workdir = Path(tempfile.mkdtemp(prefix="sluiceway-bench-webhooks-"))
    pg_name = None
    if args.database == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        import psycopg

        pg_name = f"sluiceway_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        base = args.pg_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        url = f"{base}/{pg_name}"
    os.environ.update(
        {
            "SLUICEWAY_HOME": str(workdir),
            "SLUICEWAY_DATABASE_URL": url,
            "SLUICEWAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "SLUICEWAY_WEBHOOK_CONCURRENCY": str(args.concurrency),
            "SLUICEWAY_WEBHOOK_POLL_S": "0.05",
        }
    )
    try:
        return run(args, url, free_port())
    finally:
        if pg_name is not None:
            import psycopg

            with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def run(args: argparse.Namespace, url: str, port: int) -> int:
    from sqlalchemy import func, select

    from core.config import get_settings
    from core.db import session_scope, upgrade_schema
    from core.outbox import record_job_events
    from core.tables import Delivery, DeliveryAttempt, Endpoint, Job, Subscription, Topic, utcnow
    from scheduler.loop import start_loop
    from scheduler.webhooks.notifier import Notifier

    upgrade_schema(url)
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    server = context.Process(target=receiver, args=(port, counter), daemon=True)
    server.start()

    topic = f"bench-{uuid.uuid4().hex[:6]}"
    with session_scope() as session:
        session.add(Topic(name=topic))
        session.flush()
        topic_id = session.scalar(select(Topic.id).where(Topic.name == topic))
        session.add(
            Subscription(topic_id=topic_id, url=f"http://127.0.0.1:{port}/hook", secret=SECRET)
        )
        session.add(Endpoint(name=topic, output_prefix="s3://bench/out/", success_topic=topic))
    now = utcnow()
    for start in range(0, args.events, 1000):
        with session_scope() as session:
            ids = [str(uuid.uuid4()) for _ in range(min(1000, args.events - start))]
            session.add_all(
                Job(
                    id=job_id,
                    endpoint=topic,
                    variant="a",
                    status="succeeded",
                    input_location="s3://bench/in",
                    content_type="application/json",
                    output_location=f"s3://bench/out/{job_id}.out",
                    finished_at=now,
                )
                for job_id in ids
            )
            session.flush()
            record_job_events(session, ids)

    import httpx

    deadline = time.monotonic() + 30
    while True:  # the receiver is up when it answers at all
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                print("receiver did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)

    notifier = Notifier(get_settings())
    stop = threading.Event()
    started = time.perf_counter()
    thread = start_loop(notifier, stop)
    deadline = time.monotonic() + 600
    while counter.value < args.events and time.monotonic() < deadline:
        time.sleep(0.02)
    received_s = time.perf_counter() - started
    while time.monotonic() < deadline:
        with session_scope() as session:
            done = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == "delivered")
            )
        if done == args.events:
            break
        time.sleep(0.05)
    recorded_s = time.perf_counter() - started
    stop.set()
    thread.join()
    server.terminate()
    with session_scope() as session:
        latencies = list(session.scalars(select(DeliveryAttempt.latency_ms)))
        attempts = len(latencies)
    print()
    print(f"Webhook delivery, {args.database}, {args.concurrency} sending slots, one receiver")
    print(
        "| events | received in s | all recorded in s | events/s | attempts "
        "| p50 ms | p95 ms | p99 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.events} | {received_s:.2f} | {recorded_s:.2f} | {args.events / recorded_s:.0f} "
        f"| {attempts} | {statistics.median(latencies):.1f} | {percentile(latencies, 0.95):.1f} "
        f"| {percentile(latencies, 0.99):.1f} |"
    )
    return 0 if counter.value >= args.events else 1


if __name__ == "__main__":
    sys.exit(main())

"""Scaling benchmark: a burst of async jobs to a variant at zero workers, and back to zero.

Starts a private stack on this machine (`sluice up`'s `Stack`: API + scheduler,
the configured Redis and S3 store or local ones, a SQLite file in a temporary
home), registers a `python` model that sleeps ~20 ms per call, creates an
endpoint with `min_workers=0, max_workers=2`, sends a burst of async jobs and
samples the variant every 100 ms: queued and reserved messages, live and
desired workers, jobs done. It prints a timeline and the times the issue asks for:
- first job → first worker consuming (target: within 5 s),
- backlog above one worker's target → second worker consuming (within 10 s),
- last job → zero workers (within the idle period + 10 s).

"Consuming" is a worker's heartbeat listing the variant's queue (it publishes
it once subscribed); the first job's `started_at` is printed beside it.

    .venv/bin/python bench/scaling.py [--jobs 2000] [--idle-s 30] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import scaling_state  # noqa: E402
from core.broker import get_redis, queue_loads, workers_per_queue  # noqa: E402
from core.config import Settings, get_settings  # noqa: E402
from devstack.servers import free_port  # noqa: E402
from devstack.supervisor import Stack  # noqa: E402
from tests.integration.models import build_slow_handler  # noqa: E402


@dataclass
class Sample:
    at: float
    queued: int
    reserved: int
    current: int
    desired: int
    done: int


def succeeded(endpoint: str) -> int:
    from sqlalchemy import func, select

    from core.db import session_scope
    from core.tables import Job

    with session_scope() as session:
        count = session.scalar(
            select(func.count()).where(Job.endpoint == endpoint, Job.status == "succeeded")
        )
        return count or 0


class Monitor:
    """Samples the variant every `every_s` in a thread (jobs done every fifth sample)."""

    def __init__(self, namespace: str, endpoint: str, every_s: float = 0.1) -> None:
        self.namespace = namespace
        self.endpoint = endpoint
        self.queue = f"{namespace}.{endpoint}.a"
        self.every_s = every_s
        self.samples: list[Sample] = []
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        redis = get_redis()
        while not self._stop.is_set():
            if len(self.samples) % 5 == 0:
                self.done = succeeded(self.endpoint)
            load = queue_loads(redis, self.namespace, [self.queue])[self.queue]
            self.samples.append(
                Sample(
                    at=time.time(),
                    queued=load.queued,
                    reserved=load.reserved,
                    current=workers_per_queue(redis, self.namespace)[self.queue],
                    desired=scaling_state.desired_workers(redis, self.namespace).get(self.queue, 0),
                    done=self.done,
                )
            )
            time.sleep(self.every_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def first(self, since: float, predicate: object) -> float | None:
        assert callable(predicate)
        for sample in self.samples:
            if sample.at >= since and predicate(sample):
                return sample.at
        return None


async def burst(api_url: str, endpoint: str, jobs: int, concurrency: int) -> list[str]:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:

        async def one(i: int) -> str:
            async with limit:
                response = await client.post(
                    f"/v1/endpoints/{endpoint}/async-invocations",
                    json={"instances": [[i, 1.0, 2.0, 3.0]]},
                )
                response.raise_for_status()
                job_id: str = response.json()["job_id"]
                return job_id

        return list(await asyncio.gather(*(one(i) for i in range(jobs))))


def job_times(job_ids: list[str]) -> tuple[int, float | None, float | None]:
    """Jobs finished, the first `started_at` and the last `finished_at` (epoch seconds)."""
    from sqlalchemy import func, select

    from core.db import session_scope
    from core.tables import Job

    def epoch(value: dt.datetime | None) -> float | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()

    done = 0
    first_start: dt.datetime | None = None
    last_finish: dt.datetime | None = None
    with session_scope() as session:
        for chunk in range(0, len(job_ids), 500):
            ids = job_ids[chunk : chunk + 500]
            n, started, finished = session.execute(
                select(
                    func.count(Job.finished_at),
                    func.min(Job.started_at),
                    func.max(Job.finished_at),
                ).where(Job.id.in_(ids), Job.status == "succeeded")
            ).one()
            done += n
            if started is not None and (first_start is None or started < first_start):
                first_start = started
            if finished is not None and (last_finish is None or finished > last_finish):
                last_finish = finished
    return done, epoch(first_start), epoch(last_finish)


def print_timeline(samples: list[Sample], t0: float) -> None:
    print(f"\n{'t (s)':>7} {'queued':>7} {'reserved':>8} {'desired':>7} {'workers':>7} {'done':>6}")
    last_key: tuple[int, ...] | None = None
    next_at = t0
    for sample in samples:
        if sample.at < t0 - 1:
            continue
        key = (sample.desired, sample.current)
        # Every change of the worker counts; else a row every 2 s while jobs
        # wait, every 10 s while nothing does.
        if sample.at >= next_at or key != last_key:
            print(
                f"{sample.at - t0:7.1f} {sample.queued:7d} {sample.reserved:8d} "
                f"{sample.desired:7d} {sample.current:7d} {sample.done:6d}"
            )
            last_key = key
            next_at = sample.at + (2.0 if sample.queued or sample.reserved else 10.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="model time per call")
    parser.add_argument("--idle-s", type=float, default=30.0, help="scale-to-zero idle period")
    parser.add_argument("--concurrency", type=int, default=32, help="parallel submissions")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sluiceway-bench-"))
    os.environ.update(
        {
            "SLUICEWAY_HOME": str(home),
            "SLUICEWAY_NAMESPACE": f"bench{uuid.uuid4().hex[:8]}",
            "SLUICEWAY_SCALE_TO_ZERO_IDLE_S": str(args.idle_s),
            "SLUICEWAY_LOG_LEVEL": "WARNING",
        }
    )
    get_settings.cache_clear()
    settings = Settings()
    stack = Stack(settings, host="127.0.0.1", port=free_port(), ready_timeout_s=120)
    try:
        stack.start()
        # The bench itself reads Redis and SQL: the same settings as the stack's children.
        os.environ.update({k: v for k, v in stack._env.items() if k.startswith("SLUICEWAY_")})
        get_settings.cache_clear()
        # The load generator yields the CPU to the system it measures (already
        # started, so not niced): on a small machine its HTTP client would
        # otherwise compete with the booting workers. Clients are elsewhere in
        # production.
        os.nice(10)
        return run(stack, args, home)
    finally:
        stack.stop()


def run(stack: Stack, args: argparse.Namespace, home: Path) -> int:
    settings = get_settings()
    endpoint = f"burst-{uuid.uuid4().hex[:6]}"
    bundle = build_slow_handler(home / "slow.tar.gz", delay_s=args.delay_ms / 1000)
    with httpx.Client(base_url=stack.api_url, timeout=60) as client:
        with bundle.open("rb") as f:
            model = client.post(
                "/v1/models",
                data={"name": f"slow-{uuid.uuid4().hex[:6]}", "framework": "python"},
                files={"file": ("slow.tar.gz", f)},
            )
        model.raise_for_status()
        client.post(
            "/v1/endpoints",
            json={
                "name": endpoint,
                "variants": [
                    {"name": "a", "model": model.json()["name"], "min_workers": 0, "max_workers": 2}
                ],
            },
        ).raise_for_status()
        target = client.get(f"/v1/endpoints/{endpoint}").json()["variants"][0][
            "target_backlog_per_worker"
        ]

    monitor = Monitor(settings.namespace, endpoint)
    monitor.start()
    time.sleep(1.0)
    load_before = os.getloadavg()
    t_first = time.time()
    job_ids = asyncio.run(burst(stack.api_url, endpoint, args.jobs, args.concurrency))
    t_submitted = time.time()
    print(f"submitted {len(job_ids)} jobs in {t_submitted - t_first:.1f} s")

    deadline = time.monotonic() + 600
    while True:
        done, first_start, last_finish = job_times(job_ids)
        if done == len(job_ids) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(f"{done} of {len(job_ids)} jobs succeeded")
    zero_at = None
    while time.monotonic() < deadline and last_finish is not None:
        zero_at = monitor.first(last_finish, lambda s: s.current == 0 and s.desired == 0)
        if zero_at is not None:
            break
        time.sleep(0.5)
    time.sleep(1.0)
    monitor.stop()

    t_w1 = monitor.first(t_first, lambda s: s.current >= 1)
    t_over = monitor.first(t_first, lambda s: s.queued + s.reserved > target)
    t_w2 = monitor.first(t_first, lambda s: s.current >= 2)
    print_timeline(monitor.samples, t_first)

    def since(a: float | None, b: float | None) -> str:
        return "never" if a is None or b is None else f"{a - b:5.1f} s"

    with httpx.Client(base_url=stack.api_url, timeout=60) as client:
        events = client.get(f"/v1/endpoints/{endpoint}").json()["variants"][0]["scaling_events"]
    print("\nscaling events (oldest first):")
    for event in reversed(events):
        at = dt.datetime.fromisoformat(event["at"]).timestamp()
        print(f"  +{at - t_first:6.1f} s  {event['from']} → {event['to']}  {event['reason']}")
    print(
        f"\n{args.jobs} jobs, {args.delay_ms:g} ms per call, min 0 / max 2 workers, "
        f"target {target} per worker, idle period {args.idle_s:g} s, "
        f"{os.cpu_count()} CPU cores; load average {load_before[0]:.1f} before the burst, "
        f"{os.getloadavg()[1]:.1f} over the last 5 min"
    )
    rows = [
        ("first job → first worker consuming", since(t_w1, t_first), "≤ 5 s"),
        ("first job → first job started", since(first_start, t_first), ""),
        (f"backlog > {target} → second worker consuming", since(t_w2, t_over), "≤ 10 s"),
        ("first job → second worker consuming", since(t_w2, t_first), ""),
        ("first job → last job done", since(last_finish, t_first), ""),
        ("last job → zero workers", since(zero_at, last_finish), f"≤ {args.idle_s + 10:g} s"),
    ]
    for label, value, goal in rows:
        print(f"  {label:<45} {value:>8}  {goal}")
    return 0 if done == len(job_ids) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The broker's Lua scripts on a real Redis: reserve, acknowledge, renew, and the sweep of
dead workers' reservations (core/broker/scripts.py)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from core import broker
from core.broker import (
    Reservations,
    WorkerLease,
    add_pushes,
    bell_key,
    expire_worker,
    held_by,
    leases_key,
    outgoing,
    priority_lists,
    release_worker,
    release_worker_processes,
    restore_stale_reservations,
    sweep,
    unacked_index_key,
    unacked_key,
)
from core.protocol import Invocation, ModelRef, Reply, unpack
from tests.integration.conftest import REDIS_URL

pytestmark = pytest.mark.integration

MODEL = ModelRef(name="m", version=1, framework="python", artifact_uri="s3://b/m.tar.gz")
ALL_STEPS = (0, 3, 6, 9)
_clock = itertools.count(1)  # enqueue times: each new job is 1 ms younger


@pytest.fixture
def ns() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(REDIS_URL)
    namespace = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield client, namespace
    finally:
        keys = list(client.scan_iter(match=f"{namespace}*"))
        if keys:
            client.delete(*keys)


def queue_of(namespace: str) -> str:
    return broker.queue_name(namespace, "churn", "a")


def publish(client: redis.Redis, namespace: str, *invocations: Invocation) -> None:
    pipe = client.pipeline(transaction=False)
    add_pushes(pipe, [outgoing(invocation, namespace) for invocation in invocations])
    pipe.execute()


def job(mode: str = "async", **extra: Any) -> Invocation:
    return Invocation(
        job_id=str(uuid.uuid4()),
        mode=mode,  # type: ignore[arg-type]
        endpoint="churn",
        variant="a",
        model=MODEL,
        content_type="application/json",
        body=b"[[1]]",
        enqueued_ms=next(_clock),
        **extra,
    )


def worker(
    client: redis.Redis, namespace: str, *, name: str = "w", pid: int = 1, register: bool = True
) -> tuple[WorkerLease, Reservations]:
    worker_id = broker.new_worker_id(name, "host1")
    lease = WorkerLease(
        client,
        namespace,
        worker_id=worker_id,
        lease_s=10,
        info=lambda: {
            "device": "cpu",
            "pid": pid,
            "host": "host1",
            "queues": [queue_of(namespace)],
        },
    )
    if register:
        lease.register()
    return lease, Reservations(client, namespace, worker_id=worker_id)


def take(reservations: Reservations, namespace: str, limit: int = 100) -> list[tuple[str, str]]:
    taken = reservations.take(queue_of(namespace), limit=limit, steps=ALL_STEPS, caps=[limit] * 4)
    assert taken is not None, "the worker has no lease"
    return [(invocation.job_id, tag or "") for invocation, tag in taken]


def waiting(client: redis.Redis, namespace: str) -> int:
    return sum(int(client.llen(key)) for key in priority_lists(queue_of(namespace)))


def test_reserve_takes_realtime_first_and_records_kombus_reservation_and_the_holder(
    ns: tuple[redis.Redis, str],
) -> None:
    client, namespace = ns
    first, second = job(), job()
    call = job("realtime", reply_to="r", deadline_ms=int(time.time() * 1000) + 60_000)
    publish(client, namespace, first, second, call)
    lease, reservations = worker(client, namespace)
    taken = take(reservations, namespace)
    assert [job_id for job_id, _tag in taken] == [call.job_id, first.job_id, second.job_id]
    held = held_by(client, namespace, lease.worker_id)
    assert set(held) == {tag for _job, tag in taken}
    assert held[taken[0][1]] == queue_of(namespace)  # the list it came from
    assert held[taken[1][1]] == priority_lists(queue_of(namespace))[1]
    # kombu's own format: [message, exchange, routing key], indexed by reserve time.
    raw = client.hget(unacked_key(namespace), taken[1][1])
    message, exchange, routing_key = orjson.loads(raw)  # type: ignore[arg-type]
    assert (message["properties"]["correlation_id"], exchange) == (first.job_id, "")
    assert routing_key == queue_of(namespace)
    assert client.zscore(unacked_index_key(namespace), taken[1][1]) == pytest.approx(
        time.time(), abs=5
    )
    assert waiting(client, namespace) == 0


def test_a_worker_without_a_live_lease_takes_nothing(ns: tuple[redis.Redis, str]) -> None:
    client, namespace = ns
    publish(client, namespace, job())
    lease, reservations = worker(client, namespace, register=False)
    assert reservations.take(queue_of(namespace), limit=5, steps=ALL_STEPS, caps=[5] * 4) is None
    lease.register()
    expire_worker(client, namespace, lease.worker_id)  # presumed dead: no more under that id
    assert reservations.take(queue_of(namespace), limit=5, steps=ALL_STEPS, caps=[5] * 4) is None
    assert waiting(client, namespace) == 1
    assert lease.renew() is True  # ended but not swept yet: nobody has its work, it may go on
    assert len(take(reservations, namespace)) == 1


def test_acknowledge_removes_only_what_the_worker_still_holds(ns: tuple[redis.Redis, str]) -> None:
    """A worker presumed dead (paused past its lease) finishes its batch late: its
    acknowledgement must not remove the reservation of the worker that took it over."""
    client, namespace = ns
    publish(client, namespace, job())
    slow_lease, slow = worker(client, namespace, name="slow")
    ((_job, tag),) = take(slow, namespace)
    expire_worker(client, namespace, slow_lease.worker_id)
    assert sweep(client, namespace).requeued == 1
    _lease, other = worker(client, namespace, name="other")
    assert take(other, namespace) == [(_job, tag)]  # the same message, the same tag
    assert slow.settle(queue_of(namespace), done=[tag]) == 0
    assert client.hexists(unacked_key(namespace), tag)
    assert other.settle(queue_of(namespace), done=[tag], counters={"requests": 1}) == 1
    assert not client.hexists(unacked_key(namespace), tag)
    assert client.zcard(unacked_index_key(namespace)) == 0
    assert client.hget(broker.metrics_key(namespace, queue_of(namespace)), "requests") == b"1"


def test_renewal_keeps_held_reservations_fresh_but_not_let_go_ones(
    ns: tuple[redis.Redis, str],
) -> None:
    client, namespace = ns
    publish(client, namespace, job(), job())
    lease, reservations = worker(client, namespace)
    (_a, running), (_b, failed) = take(reservations, namespace)
    reservations.settle(queue_of(namespace), done=[], let_go=[failed])  # a transient failure
    index = unacked_index_key(namespace)
    an_hour_ago = time.time() - 3600
    client.zadd(index, {running: an_hour_ago, failed: an_hour_ago})  # a long job
    assert lease.renew() is True
    assert client.zscore(index, running) == pytest.approx(time.time(), abs=5)
    assert client.zscore(index, failed) == an_hour_ago
    # The stale restore (kombu's, or the reconciler's) only takes the let-go one.
    assert restore_stale_reservations(client, namespace, older_than_s=300) == 1
    assert waiting(client, namespace) == 1
    assert set(held_by(client, namespace, lease.worker_id)) == {running}


def test_the_sweep_puts_a_dead_workers_messages_back_to_go_next(
    ns: tuple[redis.Redis, str],
) -> None:
    client, namespace = ns
    jobs = [job() for _ in range(5)]
    publish(client, namespace, *jobs)
    dead_lease, dead = worker(client, namespace, name="dead")
    taken = take(dead, namespace, limit=2)
    assert [j for j, _t in taken] == [jobs[0].job_id, jobs[1].job_id]
    client.delete(bell_key(namespace, queue_of(namespace)))
    assert sweep(client, namespace).workers == []  # its lease runs: nothing to do
    expire_worker(client, namespace, dead_lease.worker_id)
    report = sweep(client, namespace)
    assert (report.workers, report.requeued, report.answered) == ([dead_lease.worker_id], 2, 0)
    assert client.zscore(leases_key(namespace), dead_lease.worker_id) is None
    assert held_by(client, namespace, dead_lease.worker_id) == {}
    assert client.hlen(unacked_key(namespace)) == 0
    assert client.llen(bell_key(namespace, queue_of(namespace))) >= 1  # idle workers woken
    _lease, other = worker(client, namespace, name="other")
    assert [j for j, _t in take(other, namespace)] == [j.job_id for j in jobs]  # in order
    assert sweep(client, namespace).workers == []


def test_the_sweep_answers_realtime_callers_it_cannot_retry(ns: tuple[redis.Redis, str]) -> None:
    client, namespace = ns
    now_ms = int(time.time() * 1000)
    late = job("realtime", reply_to=f"{namespace}:reply:api1", deadline_ms=now_ms - 1)
    timely = job("realtime", reply_to=f"{namespace}:reply:api1", deadline_ms=now_ms + 60_000)
    publish(client, namespace, late, timely)
    dead_lease, dead = worker(client, namespace, name="dead")
    take(dead, namespace)
    expire_worker(client, namespace, dead_lease.worker_id)
    # No other worker serves the queue: both callers are answered at once.
    assert sweep(client, namespace).answered == 2
    replies = [
        Reply.from_wire(unpack(raw)) for raw in client.lrange(f"{namespace}:reply:api1", 0, -1)
    ]
    assert {r.job_id for r in replies} == {late.job_id, timely.job_id}
    assert {(r.ok, r.error_kind) for r in replies} == {(False, "worker_lost")}
    assert all(dead_lease.worker_id in (r.detail or "") for r in replies)
    assert client.ttl(f"{namespace}:reply:api1") > 0
    assert waiting(client, namespace) == 0

    # With another live worker on the queue, the timely one is retried there.
    publish(client, namespace, timely)
    worker(client, namespace, name="alive")
    second_lease, second = worker(client, namespace, name="second")
    take(second, namespace)
    expire_worker(client, namespace, second_lease.worker_id)
    report = sweep(client, namespace)
    assert (report.requeued, report.answered) == (1, 0)
    assert waiting(client, namespace) == 1


def test_a_lease_renewed_before_the_release_keeps_its_work(ns: tuple[redis.Redis, str]) -> None:
    client, namespace = ns
    publish(client, namespace, job())
    lease, reservations = worker(client, namespace)
    take(reservations, namespace)
    assert release_worker(client, namespace, lease.worker_id) is None  # alive: refused
    expire_worker(client, namespace, lease.worker_id)
    assert lease.renew() is True  # it was only late: renewed before any sweep
    assert sweep(client, namespace).workers == []
    assert len(held_by(client, namespace, lease.worker_id)) == 1


def test_a_released_worker_starts_again_empty_handed(ns: tuple[redis.Redis, str]) -> None:
    client, namespace = ns
    publish(client, namespace, job())
    lease, reservations = worker(client, namespace)
    take(reservations, namespace)
    expire_worker(client, namespace, lease.worker_id)
    sweep(client, namespace)
    assert lease.renew() is False  # released while away: registered again
    assert held_by(client, namespace, lease.worker_id) == {}
    assert len(take(reservations, namespace)) == 1  # and it takes work again


def test_concurrent_sweeps_release_each_message_once(ns: tuple[redis.Redis, str]) -> None:
    client, namespace = ns
    publish(client, namespace, *[job() for _ in range(40)])
    leases = []
    for i in range(4):
        lease, reservations = worker(client, namespace, name=f"dead{i}")
        take(reservations, namespace, limit=10)
        expire_worker(client, namespace, lease.worker_id)
        leases.append(lease)
    reports: list[broker.SweepReport] = []
    start = threading.Barrier(4)

    def sweeper() -> None:
        start.wait()
        reports.append(sweep(redis.Redis.from_url(REDIS_URL), namespace))

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.requeued for r in reports) == 40
    assert sorted(w for r in reports for w in r.workers) == sorted(
        lease.worker_id for lease in leases
    )
    assert waiting(client, namespace) == 40
    assert client.hlen(unacked_key(namespace)) == 0


def test_a_supervisor_releases_the_workers_of_exited_processes_at_once(
    ns: tuple[redis.Redis, str],
) -> None:
    client, namespace = ns
    publish(client, namespace, job(), job())
    gone_lease, gone = worker(client, namespace, name="gone", pid=4242)
    _kept_lease, kept = worker(client, namespace, name="kept", pid=4343)
    take(gone, namespace, limit=1)
    take(kept, namespace, limit=1)
    released = release_worker_processes(client, namespace, host="host1", pids={4242, 99})
    assert released == [gone_lease.worker_id]
    assert waiting(client, namespace) == 1
    assert [w.pid for w in broker.live_workers(client, namespace)] == [4343]


def test_only_the_first_reconciler_may_requeue_a_lost_job(ns: tuple[redis.Redis, str]) -> None:
    client, namespace = ns
    assert broker.claim_requeue(client, namespace, "job-1", ttl_s=30) is True
    assert broker.claim_requeue(client, namespace, "job-1", ttl_s=30) is False
    assert broker.claim_requeue(client, namespace, "job-2", ttl_s=30) is True

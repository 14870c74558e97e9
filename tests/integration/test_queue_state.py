"""The scaler's Redis reads on a real Redis: reserved messages per queue, and arrival times."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu.utils.json import dumps

from core import broker
from core.broker import ArrivalLog, priority_lists, unacked_key
from tests.integration.conftest import REDIS_URL

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(REDIS_URL)
    ns = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield client, ns
    finally:
        keys = list(client.scan_iter(match=f"{ns}*"))
        if keys:
            client.delete(*keys)


def test_reserved_messages_are_counted_per_queue(namespace: tuple[redis.Redis, str]) -> None:
    client, ns = namespace
    a, b = f"{ns}.churn.a", f"{ns}.churn.b"
    # kombu's own format: tag → JSON [message, exchange, routing_key].
    entries = {f"tag-{i}": dumps([{"body": "x" * 2000, "i": i}, "", a]) for i in range(7)}
    entries.update({f"tag-b{i}": dumps([{"body": "y"}, a, b]) for i in range(3)})
    # Compact separators and trailing whitespace read the same.
    entries["compact"] = '[{"body":"z"},"","' + b + '"]\n'
    client.hset(unacked_key(ns), mapping=entries)
    client.rpush(priority_lists(a)[0], "m1", "m2")
    client.rpush(priority_lists(a)[2], "m3")

    assert broker.reserved_counts(client, ns) == {a: 7, b: 4}
    loads = broker.queue_loads(client, ns, [a, b, f"{ns}.other.a"])
    assert loads[a] == broker.QueueLoad(queued=3, reserved=7)
    assert loads[a].backlog == 10
    assert loads[b] == broker.QueueLoad(queued=0, reserved=4)
    assert loads[f"{ns}.other.a"].backlog == 0


def test_arrivals_reach_redis_within_about_a_second(namespace: tuple[redis.Redis, str]) -> None:
    client, ns = namespace
    log = ArrivalLog(REDIS_URL, ns, interval_s=0.1)
    before = time.time()
    log.note(f"{ns}.churn.a")
    deadline = time.monotonic() + 5
    while not (arrivals := broker.last_arrivals(client, ns)):
        assert time.monotonic() < deadline, "the arrival was never written"
        time.sleep(0.05)
    assert before - 0.01 <= arrivals[f"{ns}.churn.a"] <= time.time()

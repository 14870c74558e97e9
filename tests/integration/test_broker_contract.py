"""The broker's contract with kombu's Redis transport, checked against kombu itself.

Sluiceway builds, reserves, acknowledges and restores kombu messages with its own
code (core/broker/) for speed; these tests fail if a kombu upgrade (or a change of
ours) breaks the shared layout — list and key names, the priority lists, the
envelope, the reservation format:

- what Celery's `send_task` publishes, our reserve takes from the list we read, and
  parses to the same invocation;
- what we reserve, kombu's own restore of unacknowledged messages puts back on the
  lists we read (and leaves alone what a live worker renews);
- what we enqueue, kombu's own consumer reads as a Celery task message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from celery import Celery

from core.broker import (
    PRIORITY,
    TASK_NAME,
    Reservations,
    WorkerLease,
    add_pushes,
    expire_worker,
    make_celery,
    outgoing,
    priority_list,
    queue_name,
    sweep,
    unacked_index_key,
    unacked_key,
)
from core.config import Settings
from core.protocol import Invocation, ModelRef
from tests.integration.conftest import REDIS_URL

pytestmark = pytest.mark.integration

MODEL = ModelRef(name="m", version=2, framework="xgboost", artifact_uri="s3://b/m.json")
MODES = ("realtime", "async", "transform")
ALL_STEPS = (0, 3, 6, 9)


@dataclass
class Layout:
    client: redis.Redis
    namespace: str
    queue: str
    app: Celery

    def worker(self, name: str) -> tuple[WorkerLease, Reservations]:
        worker_id = f"{name}-{uuid.uuid4().hex[:6]}@contract"
        lease = WorkerLease(
            self.client,
            self.namespace,
            worker_id=worker_id,
            lease_s=10,
            info=lambda: {"device": "cpu", "pid": 0, "host": "contract", "queues": [self.queue]},
        )
        lease.register()
        return lease, Reservations(self.client, self.namespace, worker_id=worker_id)

    def take(self, reservations: Reservations) -> list[tuple[Invocation, str | None]]:
        taken = reservations.take(self.queue, limit=50, steps=ALL_STEPS, caps=[50] * 4)
        assert taken is not None
        return taken

    def waiting(self) -> dict[str, int]:
        return {
            mode: int(self.client.llen(priority_list(self.queue, PRIORITY[mode]))) for mode in MODES
        }


@pytest.fixture
def layout() -> Iterator[Layout]:
    client = redis.Redis.from_url(REDIS_URL)
    namespace = f"t{uuid.uuid4().hex[:10]}"
    app = make_celery(Settings(namespace=namespace, redis_url=REDIS_URL))
    try:
        yield Layout(client, namespace, queue_name(namespace, "churn", "a"), app)
    finally:
        # kombu keeps its exchange bindings in `_kombu.binding.<exchange>`.
        keys = list(client.scan_iter(match=f"{namespace}*"))
        keys += list(client.scan_iter(match=f"_kombu.binding.{namespace}*"))
        if keys:
            client.delete(*keys)


def invocation(mode: str) -> Invocation:
    return Invocation(
        job_id=str(uuid.uuid4()),
        mode=mode,  # type: ignore[arg-type]
        endpoint="churn",
        variant="a",
        model=MODEL,
        content_type="application/json",
        body=b'{"instances": [[1.5, 2]]}',
        reply_to="r" if mode == "realtime" else None,
        deadline_ms=int(time.time() * 1000) + 60_000 if mode == "realtime" else None,
    )


def test_what_celery_publishes_our_reserve_takes_by_priority(layout: Layout) -> None:
    sent = {mode: invocation(mode) for mode in MODES}
    for mode in ("transform", "async", "realtime"):
        layout.app.send_task(
            TASK_NAME, args=[sent[mode].to_wire()], queue=layout.queue, priority=PRIORITY[mode]
        )
    # kombu put each on the list our priority_list names for its priority...
    assert layout.waiting() == {"realtime": 1, "async": 1, "transform": 1}
    _lease, reservations = layout.worker("w")
    taken = layout.take(reservations)
    # ...and our reserve takes them realtime first, parsed to what was sent.
    assert [inv for inv, _tag in taken] == [sent["realtime"], sent["async"], sent["transform"]]
    tags = [tag for _inv, tag in taken]
    assert all(tags) and len(set(tags)) == 3  # kombu's delivery tags, found by our script
    assert reservations.settle(layout.queue, done=[t for t in tags if t]) == 3
    assert layout.client.hlen(unacked_key(layout.namespace)) == 0


def test_kombus_restore_puts_our_reservations_back_where_we_read(layout: Layout) -> None:
    sent = {mode: invocation(mode) for mode in MODES}
    pipe = layout.client.pipeline()
    add_pushes(pipe, [outgoing(sent[mode], layout.namespace) for mode in MODES])
    pipe.execute()
    first_lease, first = layout.worker("first")
    taken = {inv.mode: tag for inv, tag in layout.take(first)}
    assert set(taken) == set(MODES)
    # Transient failures let the realtime and transform ones go; the async job runs on.
    first.settle(layout.queue, done=[], let_go=[taken["realtime"] or "", taken["transform"] or ""])
    # All three are an hour old: past kombu's visibility timeout (300 s)...
    index = unacked_index_key(layout.namespace)
    layout.client.zadd(index, {tag: time.time() - 3600 for tag in taken.values() if tag})
    first_lease.renew()  # ...but the live worker's renewal makes its own one fresh again.

    with layout.app.connection_for_write() as connection:
        connection.default_channel.qos.restore_visible(num=100)

    # kombu put the two let go back on the lists we read, and left the renewed one alone.
    assert layout.waiting() == {"realtime": 1, "async": 0, "transform": 1}
    assert layout.client.hkeys(unacked_key(layout.namespace)) == [taken["async"].encode()]  # type: ignore[union-attr]
    _second_lease, second = layout.worker("second")
    again = layout.take(second)
    assert sorted((inv.job_id, tag) for inv, tag in again) == sorted(
        (sent[mode].job_id, taken[mode]) for mode in ("realtime", "transform")
    )
    # The first worker dies: our sweep puts its async job back; nothing runs twice.
    expire_worker(layout.client, layout.namespace, first_lease.worker_id)
    assert sweep(layout.client, layout.namespace).requeued == 1
    assert [inv.job_id for inv, _tag in layout.take(second)] == [sent["async"].job_id]


def test_what_we_enqueue_kombus_consumer_reads_as_a_celery_task(layout: Layout) -> None:
    sent = invocation("async")
    pipe = layout.client.pipeline()
    add_pushes(pipe, [outgoing(sent, layout.namespace)])
    pipe.execute()
    with layout.app.connection_for_read() as connection:
        queue = connection.SimpleQueue(layout.queue, accept=["msgpack"])
        try:
            message = queue.get(block=True, timeout=5)
            args, kwargs, embed = message.decode()
            assert Invocation.from_wire(args[0]) == sent
            assert kwargs == {}
            assert embed["callbacks"] is None
            assert message.headers["task"] == TASK_NAME
            assert message.headers["id"] == sent.job_id
            assert message.properties["priority"] == PRIORITY["async"]
            assert message.delivery_info["routing_key"] == layout.queue
            message.ack()
        finally:
            queue.close()
    assert layout.waiting() == {"realtime": 0, "async": 0, "transform": 0}
    assert layout.client.hlen(unacked_key(layout.namespace)) == 0

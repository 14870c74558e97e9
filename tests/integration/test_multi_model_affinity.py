"""Model-affine reserves on a real Redis: the Lua script follows the rule of
core/broker/affinity.py (`choose`), and messages it leaves stay queued, in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from core import broker
from core.broker import Reservations, WorkerLease, add_pushes, outgoing, report_models
from core.broker.affinity import Candidate, choose, model_tag
from core.multi_model import target_ref
from core.protocol import Invocation
from tests.integration.conftest import REDIS_URL

pytestmark = pytest.mark.integration

STEPS = (0, 3, 6, 9)


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


def request(model: str, enqueued_ms: int) -> Invocation:
    return Invocation(
        job_id=str(uuid.uuid4()),
        mode="realtime",
        endpoint="cities",
        variant="a",
        model=target_ref(prefix="s3://models/cities/", framework="xgboost", key=model),
        content_type="application/json",
        body=b'{"instances": [[1]]}',
        enqueued_ms=enqueued_ms,
    )


def test_the_script_follows_the_rule(ns: tuple[redis.Redis, str]) -> None:
    client, namespace = ns
    queue = broker.queue_name(namespace, "cities", "a")
    now_ms = 10_000_000_000_000  # far in the future of every enqueue time below
    # (model, age in ms): m2 is worker B's, m1 ours, m3 nobody's
    sent = [("m2.json", 10), ("m1.json", 9), ("m3.json", 8), ("m2.json", 90_000), ("m1.json", 5)]
    invocations = [request(model, now_ms - age) for model, age in sent]
    pipe = client.pipeline(transaction=False)
    add_pushes(pipe, [outgoing(inv, namespace) for inv in invocations])
    pipe.execute()
    other = broker.new_worker_id("b", "host1")
    report_models(
        client, namespace, queue, worker_id=other, held={"m2.json": (1, 1.0)}, invocations={}
    )
    me = broker.new_worker_id("a", "host1")
    WorkerLease(client, namespace, worker_id=me, lease_s=10, info=lambda: {}).register()
    reservations = Reservations(client, namespace, worker_id=me)

    # The script reads the real clock: enqueue times are relative to it.
    taken = reservations.take_affine(
        queue,
        limit=10,
        steps=STEPS,
        caps=[10] * 4,
        mine=[model_tag("m1.json")],
        others=[other],
        steal_after_ms=60_000,
    )
    assert taken is not None
    messages, left = taken
    expected, expected_left = choose(
        [Candidate(model_tag(inv.model.name), inv.enqueued_ms) for inv in invocations],
        mine={model_tag("m1.json")},
        elsewhere={model_tag("m2.json")},
        now_ms=now_ms,
        steal_after_ms=60_000,
        want=10,
    )
    # Enqueue times far in the future look young to the script, so nothing is stolen:
    # the rule at `now_ms` steals the 90 s-old m2; the script (at the real now) does not.
    assert [inv.job_id for inv, _ in messages] == [
        invocations[i].job_id for i in expected if invocations[i].model.name != "m2.json"
    ]
    assert left == expected_left + 1 == 2
    # what it left is still queued, and a plain reserve takes it, oldest first
    rest = reservations.take(queue, limit=10, steps=STEPS, caps=[10] * 4)
    assert rest is not None
    assert [inv.job_id for inv, _ in rest] == [invocations[0].job_id, invocations[3].job_id]


def test_old_requests_are_stolen_and_an_unknown_holder_does_not_count(
    ns: tuple[redis.Redis, str],
) -> None:
    client, namespace = ns
    queue = broker.queue_name(namespace, "cities", "a")
    old = [request("m2.json", 1_000), request("m2.json", 2_000)]  # enqueued in 1970: old
    pipe = client.pipeline(transaction=False)
    add_pushes(pipe, [outgoing(inv, namespace) for inv in old])
    pipe.execute()
    other = broker.new_worker_id("b", "host1")
    report_models(
        client, namespace, queue, worker_id=other, held={"m2.json": (1, 1.0)}, invocations={}
    )
    me = broker.new_worker_id("a", "host1")
    WorkerLease(client, namespace, worker_id=me, lease_s=10, info=lambda: {}).register()
    taken = Reservations(client, namespace, worker_id=me).take_affine(
        queue, limit=1, steps=STEPS, caps=[1] * 4, mine=[], others=[other], steal_after_ms=50
    )
    assert taken is not None
    messages, left = taken
    assert [inv.job_id for inv, _ in messages] == [old[0].job_id] and left == 0

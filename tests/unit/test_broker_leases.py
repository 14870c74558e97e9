"""Worker leases' pure rules: renewal pace, ids, and what a dead worker's reservations become."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from core.broker import build_message, new_worker_id, renew_every_s
from core.broker.leases import Held, plan_release
from core.protocol import Invocation, ModelRef, Reply, unpack

MODEL = ModelRef(name="m", version=1, framework="python", artifact_uri="s3://b/m.tar.gz")
QUEUE = "sw.churn.a"
NOW_MS = 1_700_000_000_000


def held(
    mode: str, *, deadline_ms: int | None = None, reply_to: str | None = "sw:reply:api1"
) -> Held:
    """A reservation as the reserve script writes it: `[message, "", queue]`."""
    invocation = Invocation(
        job_id=f"00000000-0000-0000-0000-00000000000{len(mode)}",
        mode=mode,  # type: ignore[arg-type]
        endpoint="churn",
        variant="a",
        model=MODEL,
        content_type="application/json",
        body=b"[[1]]",
        reply_to=reply_to if mode == "realtime" else None,
        deadline_ms=deadline_ms,
    )
    source, message = build_message(invocation, QUEUE)
    tag = orjson.loads(message)["properties"]["delivery_tag"]
    return Held(
        tag=tag, source=source, reservation=b"[" + message + b', "", "' + QUEUE.encode() + b'"]'
    )


def test_a_lease_is_renewed_at_least_four_times_before_it_ends() -> None:
    assert renew_every_s(10) == 1.0  # the default: 10 renewals per lease
    assert renew_every_s(60) == 1.0
    assert renew_every_s(2) == pytest.approx(0.4)  # the shortest lease: still five


def test_worker_ids_keep_their_name_and_host_and_never_repeat() -> None:
    ids = {new_worker_id("churn-a", "host1") for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("churn-a-") and i.endswith("@host1") for i in ids)


@pytest.mark.parametrize("mode", ["async", "transform"])
def test_async_and_transform_messages_always_go_back_to_their_list(mode: str) -> None:
    item = held(mode)
    (release,) = plan_release([item], worker_id="w", now_ms=NOW_MS, served=set())
    assert (release.kind, release.target) == ("queue", item.source)
    assert release.digest == hashlib.sha1(item.reservation or b"").hexdigest()
    # The message goes back as it was (re-serialised, same content).
    assert orjson.loads(release.payload) == orjson.loads(item.reservation or b"")[0]


def test_a_realtime_call_with_time_left_and_another_worker_is_retried() -> None:
    item = held("realtime", deadline_ms=NOW_MS + 5_000)
    (release,) = plan_release([item], worker_id="w", now_ms=NOW_MS, served={QUEUE})
    assert (release.kind, release.target) == ("queue", QUEUE)


@pytest.mark.parametrize(
    ("deadline_ms", "served", "reason"),
    [
        (NOW_MS - 1, {QUEUE}, "deadline passed"),
        (NOW_MS, {QUEUE}, "deadline passed"),
        (NOW_MS + 5_000, {"sw.other.a"}, "no other live worker serves variant churn/a"),
    ],
    ids=["deadline-passed", "deadline-now", "no-other-worker"],
)
def test_a_realtime_call_that_cannot_be_retried_is_answered_503(
    deadline_ms: int, served: set[str], reason: str
) -> None:
    item = held("realtime", deadline_ms=deadline_ms)
    (release,) = plan_release([item], worker_id="w-1@h", now_ms=NOW_MS, served=served)
    assert (release.kind, release.target) == ("reply", "sw:reply:api1")
    reply = Reply.from_wire(unpack(release.payload))
    assert (reply.ok, reply.error_kind) == (False, "worker_lost")
    assert "w-1@h" in (reply.detail or "") and reason in (reply.detail or "")


def test_acknowledged_or_unanswerable_reservations_are_only_dropped() -> None:
    gone = Held(tag="t1", source=QUEUE, reservation=None)  # acknowledged before the sweep
    nobody = held("realtime", deadline_ms=NOW_MS - 1, reply_to=None)
    plan = plan_release([gone, nobody], worker_id="w", now_ms=NOW_MS, served=set())
    assert [(r.tag, r.kind) for r in plan] == [("t1", "drop"), (nobody.tag, "drop")]
    assert plan[0].digest == ""  # nothing to compare: the script only forgets the tag

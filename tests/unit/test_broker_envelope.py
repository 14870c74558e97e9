"""The hand-built message is a Celery protocol-2 task message in kombu's Redis format,
and parses back to the same invocation."""

from __future__ import annotations

import base64

import msgpack
import orjson
import pytest

from core.broker import TASK_NAME, build_message, job_id_of, parse_message
from core.broker.envelope import invocation_of, list_of, parse_reservation
from core.protocol import Invocation, ModelRef

MODEL = ModelRef(name="churn", version=3, framework="xgboost", artifact_uri="s3://b/m.json")


def invocation(mode: str = "async", **extra: object) -> Invocation:
    return Invocation(
        job_id="0b7e4bb2-4c0a-4b43-9d55-2b1f1cbb0e3f",
        mode=mode,  # type: ignore[arg-type]
        endpoint="churn",
        variant="a",
        model=MODEL,
        content_type="application/json",
        body=b'{"instances": [[1, 2]]}',
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("mode", "suffix", "priority"),
    [("realtime", "", 0), ("async", "\x06\x163", 3), ("transform", "\x06\x166", 6)],
)
def test_a_message_goes_to_its_modes_priority_list(mode: str, suffix: str, priority: int) -> None:
    key, raw = build_message(invocation(mode), "sw.churn.a")
    assert key == f"sw.churn.a{suffix}"
    envelope = orjson.loads(raw)
    assert envelope["properties"]["priority"] == priority
    assert envelope["properties"]["delivery_info"] == {"exchange": "", "routing_key": "sw.churn.a"}


def test_the_envelope_is_celerys_protocol_2_with_a_msgpack_body() -> None:
    sent = invocation(deadline_ms=1_700_000_000_000, reply_to="sw:reply:x")
    _key, raw = build_message(sent, "sw.churn.a")
    envelope = orjson.loads(raw)
    assert envelope["headers"]["task"] == TASK_NAME
    assert envelope["headers"]["id"] == envelope["properties"]["correlation_id"] == sent.job_id
    assert envelope["content-type"] == "application/x-msgpack"
    assert envelope["properties"]["body_encoding"] == "base64"
    args, kwargs, embed = msgpack.unpackb(base64.b64decode(envelope["body"]), raw=False)
    assert (args, kwargs) == ([sent.to_wire()], {})
    assert set(embed) == {"callbacks", "errbacks", "chain", "chord"}
    # Bytes travel as bytes (msgpack bin), not base64 inside base64.
    assert args[0]["body"] == sent.body


def test_a_message_parses_back_to_the_same_invocation_and_its_own_tag() -> None:
    sent = invocation()
    _key, first = build_message(sent, "sw.churn.a")
    _key, second = build_message(sent, "sw.churn.a")
    got, tag = parse_message(first)
    assert got == sent
    assert tag == orjson.loads(first)["properties"]["delivery_tag"]
    assert tag != parse_message(second)[1]  # every message has its own delivery tag
    assert job_id_of(first) == sent.job_id


def test_a_reservation_reads_back_its_message_queue_and_list() -> None:
    """kombu writes reservations with json.dumps (spaces); the reserve script concatenates."""
    _key, raw = build_message(invocation(), "sw.churn.a")
    for reservation in (
        b"[" + raw + b', "", "sw.churn.a"]',
        orjson.dumps([orjson.loads(raw), "", "sw.churn.a"]),
    ):
        envelope, queue = parse_reservation(reservation)
        assert queue == "sw.churn.a"
        assert list_of(envelope, queue) == "sw.churn.a\x06\x163"
        assert invocation_of(envelope) == invocation()
        assert job_id_of(reservation) == invocation().job_id

"""The message format: a Celery task message (protocol 2, msgpack body) as kombu's Redis
transport stores it.

One invocation is one JSON envelope pushed on a priority list:

    {"body": "<base64 of msgpack [[invocation], {}, {callbacks...}]>",
     "content-encoding": "binary", "content-type": "application/x-msgpack",
     "headers": {"task": "sluiceway.invoke", "id": "<job id>", ...},
     "properties": {"correlation_id": "<job id>", "priority": 3,
                    "delivery_info": {"exchange": "", "routing_key": "sluiceway.churn.a"},
                    "body_encoding": "base64", "delivery_tag": "<uuid4>"}}

A multi-model variant's message also has `"x_model": "<model tag>"` and
`"x_enqueued_ms"` in its headers, for model-affine reserves (core/broker/affinity.py).

A reserved message is kept in kombu's `unacked` hash as the JSON list
`[envelope, "", "sluiceway.churn.a"]` (exchange, routing key = queue), keyed by
its delivery tag. The envelope is built here by hand because it is on the
realtime hot path — kombu's producer costs ~0.3 ms of CPU per message, this a
few microseconds — and it stays byte-compatible with kombu: kombu's own
consumer reads it, kombu's restore puts a reservation of ours back on the list
it came from, and a message published by Celery's `send_task` parses here
(tests/integration/test_broker_contract.py holds both sides to it).
"""

from __future__ import annotations

import base64
import os
import re
import socket
import uuid
from typing import Any

import msgpack
import orjson

from core.broker.affinity import model_tag
from core.broker.priorities import PRIORITY, priority_list
from core.multi_model import is_multi_model
from core.protocol import Invocation

TASK_NAME = "sluiceway.invoke"

_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
# The task id is the job id; it appears as the message's correlation_id.
_JOB_ID = re.compile(rb'"correlation_id": ?"([0-9a-f-]{36})"')


def build_message(invocation: Invocation, queue: str) -> tuple[str, bytes]:
    """The Redis list to push `invocation` to (by its mode's priority) and the message.

    An async invocation for queue `sluiceway.churn.a` goes to the list
    `sluiceway.churn.a\\x06\\x163` with a fresh delivery tag.
    """
    # A shadow copy asks for the lowest step (9) in `extra`; every other message
    # goes at its mode's priority.
    priority = invocation.extra.get("priority", PRIORITY[invocation.mode])
    task_id = invocation.job_id
    body = msgpack.packb(
        [
            [invocation.to_wire()],
            {},
            {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
        ],
        use_bin_type=True,
    )
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "binary",
        "content-type": "application/x-msgpack",
        "headers": {
            "lang": "py",
            "task": TASK_NAME,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": f"<{invocation.mode} {invocation.endpoint}/{invocation.variant}>",
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": True,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": priority,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    if is_multi_model(invocation.model):  # a multi-model variant's: its model, for affinity
        headers: dict[str, Any] = envelope["headers"]  # type: ignore[assignment]
        headers["x_model"] = model_tag(invocation.model.name)
        headers["x_enqueued_ms"] = invocation.enqueued_ms
    return priority_list(queue, priority), orjson.dumps(envelope)


def parse_message(raw: bytes) -> tuple[Invocation, str | None]:
    """The invocation inside a message, and the message's delivery tag (None if it has none).

    Raises ValueError (or a msgpack/orjson error, both ValueErrors) on a message
    that is not a Sluiceway task message.
    """
    envelope = orjson.loads(raw)
    return invocation_of(envelope), envelope["properties"].get("delivery_tag")


def invocation_of(envelope: dict[str, Any]) -> Invocation:
    """The invocation inside a decoded envelope (its base64 msgpack body's first argument)."""
    args = msgpack.unpackb(base64.b64decode(envelope["body"]), raw=False)[0]
    return Invocation.from_wire(args[0])


def parse_reservation(reservation: bytes) -> tuple[dict[str, Any], str]:
    """An `unacked` hash value `[envelope, exchange, queue]` → (envelope, queue)."""
    envelope, _exchange, queue = orjson.loads(reservation)
    return envelope, queue


def list_of(envelope: dict[str, Any], queue: str) -> str:
    """The priority list a reserved message goes back to: its queue at its own priority."""
    return priority_list(queue, envelope["properties"].get("priority") or 0)


def job_id_of(message: bytes) -> str | None:
    """The job id inside a message or a reservation, read without decoding it."""
    match = _JOB_ID.search(message)
    return match.group(1).decode() if match else None

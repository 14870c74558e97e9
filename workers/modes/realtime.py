"""Realtime invocations: a caller is waiting on its API process's reply list.

- prepare: a call whose caller has given up (its `deadline_ms` has passed while
  it queued) is dropped before any compute; the others take the caller's
  deadline as theirs, so a python handler still running when the caller gives
  up is stopped, and a merged call is not started for a caller who is gone.
- complete: every answer of the batch goes out in one pipeline with one RPUSH
  per API process (a batch of 25 answers for 2 API processes: 2 RPUSHes, not
  25). Infrastructure trouble is answered as a 503 at once rather than retried:
  the caller is waiting now.

No SQL and no object store on this path: the payload travels inline.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from core.broker import REPLY_TTL_S
from core.errors import SluicewayError, error_kind
from core.protocol import Reply, pack
from workers.invocation import InFlight
from workers.modes import ModeHandler

logger = logging.getLogger(__name__)


class Realtime(ModeHandler):
    def prepare(self, items: list[InFlight]) -> None:
        now_ms = time.time() * 1000
        for item in items:
            deadline = item.inv.deadline_ms
            if deadline is None:
                continue
            if now_ms > deadline:
                logger.info(
                    "job %s: caller timed out %.0f ms ago; dropped before compute",
                    item.inv.job_id,
                    now_ms - deadline,
                )
                item.skip = True
                continue
            item.deadline_s = deadline / 1000
            item.timeout_s = (deadline - item.inv.enqueued_ms) / 1000

    def complete(self, items: list[InFlight], *, model_ms: float) -> None:
        replies: dict[str, list[bytes]] = defaultdict(list)  # per API process
        for item in items:
            if item.skip:
                continue
            if item.transient:
                # Realtime callers are waiting now: answer 503 rather than retry later.
                item.error = SluicewayError("temporary infrastructure failure; retry")
                item.transient = False
            if item.error is not None:
                reply = Reply(
                    job_id=item.inv.job_id,
                    ok=False,
                    error_kind=error_kind(item.error),
                    detail=item.error.detail,
                )
            else:
                assert item.output is not None
                body, content_type = item.output
                reply = Reply(
                    job_id=item.inv.job_id,
                    ok=True,
                    body=body,
                    content_type=content_type,
                    model_ms=model_ms,
                    model_cache=item.model_cache,
                )
            assert item.inv.reply_to is not None
            replies[item.inv.reply_to].append(pack(reply.to_wire()))
        if not replies:
            return
        pipe = self.io.redis.pipeline(transaction=False)
        for key, packed in replies.items():
            pipe.rpush(key, *packed)
            pipe.expire(key, REPLY_TTL_S)
        pipe.execute()

"""The notifier: delivers every outbox event to every subscription, until 2xx or dead.

It runs in the scheduler process on its own thread (`start_notifier`), so a
slow receiver never delays worker supervision, and workers never wait for it:
their only part is the outbox row (core/outbox.py). Each turn of its loop
(SQL in scheduler/webhooks/delivery_store.py):

1. fans out new events into delivery rows (at once while events keep coming,
   else every `webhook_poll_s`);
2. in one transaction, records the attempts that finished since the last turn,
   scheduling retries with scheduler/webhooks/retry_policy.py, and leases as many due
   deliveries as there are free slots;
3. hands those to a pool of `webhook_concurrency` threads that POST them
   (scheduler/webhooks/webhook_sender.py), up to PREFETCH queued per thread.

An idle loop sleeps `webhook_poll_s` but wakes as soon as an attempt finishes.
A SIGKILL at any point loses nothing: an uncommitted step changed nothing, and
the leases of a dead notifier expire after `lease_s` (65 s with the 10 s
default timeout), when the deliveries are due again. Delivery is therefore at
least once; receivers de-duplicate on X-Sluiceway-Delivery.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import socket
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import sqlalchemy.exc

from core.broker import delivery_outcomes_key, get_redis
from core.config import Settings
from core.db import session_scope
from core.states import DeliveryStatus
from core.tables import utcnow
from core.webhooks import delivery_headers
from scheduler.loop import start_loop
from scheduler.webhooks import delivery_store
from scheduler.webhooks.delivery_store import Claimed, Result
from scheduler.webhooks.retry_policy import RetryPolicy
from scheduler.webhooks.webhook_sender import Outcome, WebhookSender

logger = logging.getLogger(__name__)

FAN_OUT_BATCH = 500
PREFETCH = 2


class Notifier:
    """The webhook loop (a `scheduler.loop.ControlLoop`)."""

    name = "notifier"

    def __init__(
        self,
        settings: Settings,
        *,
        sender: WebhookSender | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}"
        self.policy = RetryPolicy(
            base_s=settings.webhook_backoff_base_s, cap_s=settings.webhook_backoff_cap_s
        )
        self.concurrency = settings.webhook_concurrency
        # Leased deliveries queue up to PREFETCH deep per sending thread, so a
        # thread never idles while the loop is in the database. One attempt
        # takes at most three timeouts (connect, send, the answer's first byte;
        # reading stops at the deadline), so a lease outlasts PREFETCH attempts:
        # 2 x 3 x 10 s + 5 s = 65 s.
        self.slots = self.concurrency * PREFETCH
        self.lease_s = PREFETCH * 3 * settings.webhook_timeout_s + 5
        self._fan_out_hot = True
        self._next_fan_out = 0.0
        self.sender = sender or WebhookSender(
            timeout_s=settings.webhook_timeout_s,
            max_response_bytes=settings.webhook_max_response_kb * 1024,
            allowed=settings.webhook_networks,
            max_connections=settings.webhook_concurrency,
        )
        self.rng = rng or random.Random()
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook")
        self.finished: queue.SimpleQueue[tuple[Claimed, Outcome]] = queue.SimpleQueue()
        self.unrecorded: list[tuple[Claimed, Outcome]] = []
        self.submitted: dict[Future[None], Claimed] = {}  # not yet done, for a clean stop
        self.in_flight = 0
        self.delivered = 0
        self.dead = 0
        logger.info(
            "notifier %s: %d sending slots, timeout %g s, lease %g s, %d attempts max",
            self.owner,
            self.concurrency,
            settings.webhook_timeout_s,
            self.lease_s,
            settings.webhook_max_attempts,
        )

    # --- the loop ------------------------------------------------------------------

    def idle(self, stop: threading.Event) -> None:
        """Nothing to do: wait `webhook_poll_s`, or less when an attempt finishes."""
        self._wait_for_attempts(self.settings.webhook_poll_s)

    def close(self) -> None:
        self._finish_in_flight()

    def step(self) -> bool:
        """One turn: fan out (when due), record finished attempts and lease more, send them.

        True when it did anything (so the loop turns again at once).
        """
        fanned = self._fan_out()
        self._collect()
        results = self._decide(self.unrecorded)
        claimed: list[Claimed] = []
        free = self.slots - (self.in_flight - len(results))
        with session_scope() as session:
            # One transaction: the attempts just made, and the next deliveries leased.
            now = utcnow()
            delivery_store.record(session, results, now=now)
            if free > 0:
                claimed = delivery_store.claim(
                    session,
                    lease=f"{self.owner}/{uuid.uuid4().hex[:12]}",
                    limit=free,
                    lease_s=self.lease_s,
                    now=now,
                    callback_secret=self.settings.webhook_callback_secret or None,
                )
        # Only once committed: after a database error the same results are retried.
        self.in_flight -= len(results)
        self.unrecorded = []
        for result in results:
            self._log(result)
        self._count(results)
        self.submitted = {f: c for f, c in self.submitted.items() if not f.done()}
        for item in claimed:
            self.in_flight += 1
            self.submitted[self.pool.submit(self._attempt, item)] = item
        return bool(fanned or results or claimed)

    def _fan_out(self) -> int:
        """Expand new events: at once while they keep coming, else every `webhook_poll_s`."""
        if not self._fan_out_hot and time.monotonic() < self._next_fan_out:
            return 0
        with session_scope() as session:
            fanned = delivery_store.fan_out(
                session,
                limit=FAN_OUT_BATCH,
                default_max_attempts=self.settings.webhook_max_attempts,
                now=utcnow(),
            )
        self._fan_out_hot = fanned > 0
        self._next_fan_out = time.monotonic() + self.settings.webhook_poll_s
        return fanned

    # --- sending (pool threads) -----------------------------------------------------

    def _attempt(self, item: Claimed) -> None:
        try:
            headers = delivery_headers(
                delivery_id=item.delivery_id,
                event_type=item.event_type,
                attempt=item.attempt,
                body=item.body,
                secret=item.secret,
            )
            outcome = self.sender.send(url=item.url, body=item.body, headers=headers)
        except Exception as exc:  # a bug here must not strand the lease until expiry
            logger.exception("job %s: delivery %s crashed", item.job_id, item.delivery_id)
            outcome = Outcome(started_at=utcnow(), latency_ms=0.0, error=f"notifier error: {exc}")
        self.finished.put((item, outcome))

    # --- recording (loop thread) ----------------------------------------------------

    def _wait_for_attempts(self, timeout_s: float) -> None:
        with contextlib.suppress(queue.Empty):
            self.unrecorded.append(self.finished.get(timeout=timeout_s))

    def _collect(self) -> None:
        while True:
            try:
                self.unrecorded.append(self.finished.get_nowait())
            except queue.Empty:
                return

    def _decide(self, finished: list[tuple[Claimed, Outcome]]) -> list[Result]:
        now = utcnow()
        return [
            Result(
                claimed=item,
                outcome=outcome,
                decision=self.policy.decide(
                    attempt=item.attempt,
                    max_attempts=item.max_attempts,
                    delivered=outcome.delivered,
                    retryable=outcome.retryable,
                    now=now,
                    rand=self.rng.random(),
                ),
            )
            for item, outcome in finished
        ]

    def _count(self, results: list[Result]) -> None:
        """Add the finished deliveries to the Redis counters /metrics shows (alerts watch `dead`).

        Best effort: a Redis blip loses this turn's counts, never a delivery.
        """
        ended = Counter(
            str(r.decision.status)
            for r in results
            if r.decision.status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)
        )
        if not ended:
            return
        try:
            key = delivery_outcomes_key(self.settings.namespace)
            pipe = get_redis().pipeline(transaction=False)
            for outcome, count in ended.items():
                pipe.hincrby(key, outcome, count)
            pipe.execute()
        except Exception as exc:  # Redis down or unreachable: counts are not worth a crash
            logger.warning("could not count %d delivery outcome(s): %s", ended.total(), exc)

    def _log(self, result: Result) -> None:
        item, outcome, decision = result.claimed, result.outcome, result.decision
        if decision.status == DeliveryStatus.DELIVERED:
            self.delivered += 1
            logger.debug(
                "job %s: delivery %s to %s: %s in %.0f ms (attempt %d)",
                item.job_id,
                item.delivery_id,
                item.url,
                outcome.status_code,
                outcome.latency_ms,
                item.attempt,
            )
        elif decision.status == DeliveryStatus.DEAD:
            self.dead += 1
            logger.warning(
                "job %s: delivery %s to %s is dead after attempt %d: %s",
                item.job_id,
                item.delivery_id,
                item.url,
                item.attempt,
                outcome.error,
            )
        else:
            assert decision.next_attempt_at is not None
            logger.info(
                "job %s: delivery %s to %s failed (attempt %d of %d): %s; retry at %s",
                item.job_id,
                item.delivery_id,
                item.url,
                item.attempt,
                item.max_attempts,
                outcome.error,
                decision.next_attempt_at.isoformat(timespec="seconds"),
            )

    def _finish_in_flight(self) -> None:
        """On stop: hand back what was never sent, wait (bounded) for what was, record it."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        never_sent = [item for future, item in self.submitted.items() if future.cancelled()]
        self.in_flight -= len(never_sent)
        deadline = time.monotonic() + self.settings.webhook_timeout_s + 2
        while self.in_flight > len(self.unrecorded) and time.monotonic() < deadline:
            self._wait_for_attempts(0.1)
        self._collect()
        try:
            results = self._decide(self.unrecorded)
            with session_scope() as session:
                delivery_store.record(session, results, now=utcnow())
                # Due again at once for the next notifier, instead of after the lease.
                delivery_store.release(session, never_sent)
            for result in results:
                self._log(result)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            # Not lost: their leases expire and the deliveries are sent again.
            logger.warning("notifier: could not record the last attempts: %s", exc)
        self.sender.close()
        logger.info("notifier stopped: %d delivered, %d dead", self.delivered, self.dead)


def start_notifier(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run a Notifier on its own thread until `stop` is set; join the thread to wait for it."""
    # httpx logs every request at INFO; the notifier logs its own attempts, with job ids.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return start_loop(Notifier(settings), stop)

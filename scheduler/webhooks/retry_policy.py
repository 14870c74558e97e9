"""When to retry a webhook delivery, and when to give up: pure decisions, no I/O.

Exponential backoff with jitter. After failed attempt n (1-based) the next one
waits about `base * 2**(n-1)` seconds, capped at `cap`, then spread by ±20% so a
receiver that comes back is not hit by every retry in the same second. With the
defaults (base 5 s, cap 1 h, 34 attempts): 5, 10, 20, ..., 2560 s (10 retries,
1.4 h) then 23 retries an hour apart, about 24 h in all before a delivery is
dead. A 2xx delivers; a refusal by the URL policy is dead at once (retrying
cannot change it); anything else (network error, timeout, non-2xx) retries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.states import DeliveryStatus

JITTER = 0.2


@dataclass(frozen=True, slots=True)
class Decision:
    status: DeliveryStatus
    next_attempt_at: dt.datetime | None  # set when status is "pending"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float
    cap_s: float
    jitter: float = JITTER

    def nominal_delay_s(self, attempt: int) -> float:
        """The delay after failed attempt `attempt` before jitter: 5, 10, 20 ... capped."""
        # Exponent clamped: 2**64 s is already past any cap, and floats overflow later.
        return min(self.cap_s, self.base_s * 2 ** min(attempt - 1, 64))

    def delay_s(self, attempt: int, rand: float) -> float:
        """The jittered delay; `rand` in [0, 1) maps to [-jitter, +jitter] of the nominal.

        attempt 3, base 5 s: nominal 20 s; rand 0.0 → 16 s, 0.5 → 20 s, 0.99 → 23.9 s.
        """
        return self.nominal_delay_s(attempt) * (1 + self.jitter * (2 * rand - 1))

    def decide(
        self,
        *,
        attempt: int,
        max_attempts: int,
        delivered: bool,
        retryable: bool,
        now: dt.datetime,
        rand: float,
    ) -> Decision:
        """What follows attempt number `attempt` (1-based) of a delivery allowed `max_attempts`."""
        if delivered:
            return Decision(DeliveryStatus.DELIVERED, None)
        if not retryable or attempt >= max_attempts:
            return Decision(DeliveryStatus.DEAD, None)
        return Decision(
            DeliveryStatus.PENDING, now + dt.timedelta(seconds=self.delay_s(attempt, rand))
        )

    def total_nominal_s(self, max_attempts: int) -> float:
        """Seconds from the first attempt to the last when every attempt fails (no jitter)."""
        return sum(self.nominal_delay_s(n) for n in range(1, max_attempts))

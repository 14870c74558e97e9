"""The wire contract of a webhook delivery: headers, and the HMAC-SHA256 signature.

Every delivery is `POST <url>` with the event's JSON body, sent byte for byte as
the outbox stored it, and these headers:

- `X-Sluiceway-Delivery`: the delivery id, the same on every retry, so a
  receiver can drop a repeat it has already handled (delivery is at least once);
- `X-Sluiceway-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with
  the subscription's secret (or `SLUICEWAY_WEBHOOK_CALLBACK_SECRET` for a job's
  X-Callback-Url; without that setting callbacks go unsigned);
- `X-Sluiceway-Event` (the event type) and `X-Sluiceway-Attempt` (1, 2, ...).

`verify_signature` is the receiver's side, exactly as docs/webhooks.md shows it.
"""

from __future__ import annotations

import hashlib
import hmac

DELIVERY_HEADER = "X-Sluiceway-Delivery"
SIGNATURE_HEADER = "X-Sluiceway-Signature"
EVENT_HEADER = "X-Sluiceway-Event"
ATTEMPT_HEADER = "X-Sluiceway-Attempt"
USER_AGENT = "Sluiceway-Webhooks/1"


def sign(secret: str, body: bytes) -> str:
    """The `X-Sluiceway-Signature` value of `body` under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(
    *, delivery_id: str, event_type: str, attempt: int, body: bytes, secret: str | None
) -> dict[str, str]:
    """Every header one delivery attempt carries."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event_type,
        ATTEMPT_HEADER: str(attempt),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


# The receiver's five lines (docs/webhooks.md; tests check the two stay the same).
def verify_signature(secret: str, body: bytes, signature: str) -> bool:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={digest}", signature)

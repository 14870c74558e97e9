"""How long an invocation may run, and how long an async job may wait to start.

SageMaker's async limits: a job runs at most `invocation_timeout_s` (900 s by
default, 3,600 at most; the endpoint's `async.invocation_timeout_s`, or the
request's X-Invocation-Timeout-S), and with X-Request-Ttl-S it must start
within that many seconds (1 to 21,600, six hours) or fail "expired". Kept in a
module of their own, without imports, so the handler host process
(workers/runners/host.py) starts without loading SQLAlchemy.
"""

from __future__ import annotations

DEFAULT_INVOCATION_TIMEOUT_S = 900
MAX_INVOCATION_TIMEOUT_S = 3600
MAX_REQUEST_TTL_S = 21_600

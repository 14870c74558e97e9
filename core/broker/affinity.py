"""Model-affine reserves for multi-model variants: take what you hold, leave others theirs.

A multi-model variant's messages stay on its ordinary priority lists (so
backlogs, the scaler, recovery and kombu's restore see them as any other);
each carries its model's tag (`model_tag`, 16 hex digits of the key's SHA-1)
and its enqueue time in its headers. A worker of such a variant reserves with
`RESERVE_AFFINE` (core/broker/scripts.py), which reads a window of the oldest
messages of each list instead of popping blindly, and takes, oldest first:

1. messages for models it holds (it passes their tags);
2. messages for models no other live worker of the variant holds (their
   reports: core/broker/models.py) — somebody has to load them;
3. messages for models another worker holds, only once they waited
   `steal_after_ms`: an idle worker steals from a busy or dead holder.

It leaves the rest and says how many it left, so the consumer waits no longer
than `steal_after_ms` before looking again. Worked example, window of 6 with
worker A holding m1 and worker B holding m2, steal after 50 ms, at t = 100 ms:
messages (model, enqueued) m2@90, m1@91, m3@92, m2@20, m1@95 → A takes m1@91,
m3@92 (held by nobody), m2@20 (waited 80 ms: stolen), m1@95, and leaves m2@90.
`choose` below is that rule in Python (the script's reference, unit-tested);
the script is the same rule inside Redis, atomically.

Cost: each reserve reads up to `window` messages (LRANGE) and removes the
chosen ones one by one (LREM, O(window) each), so ~64 x 64 element steps at most;
without a multi-model variant none of this runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import NamedTuple

WINDOW = 64  # messages of each list a reserve looks at


def model_tag(key: str) -> str:
    """The tag a message and a worker's report use for a model key (16 hex digits)."""
    return hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


class Candidate(NamedTuple):
    """One waiting message as the rule sees it: its model tag and enqueue time (None: unknown)."""

    tag: str | None
    enqueued_ms: int | None


def choose(
    candidates: Sequence[Candidate],
    *,
    mine: Collection[str],
    elsewhere: Collection[str],
    now_ms: int,
    steal_after_ms: int,
    want: int,
) -> tuple[list[int], int]:
    """Indices (into `candidates`, oldest first) of the messages to take, and how many were
    left for another worker. `elsewhere`: tags other live workers hold."""
    taken: list[int] = []
    left = 0
    for index, candidate in enumerate(candidates):
        if len(taken) >= want:
            break
        tag = candidate.tag
        mine_or_free = tag is None or tag in mine or tag not in elsewhere
        waited = candidate.enqueued_ms is None or now_ms - candidate.enqueued_ms >= steal_after_ms
        if mine_or_free or waited:
            taken.append(index)
        else:
            left += 1
    return taken, left

"""Priorities: which Redis list a message goes to, and in which order workers read the lists.

kombu's Redis transport keeps one list per priority *step* of a queue: the step-0
list is the queue's own name, the others are `<queue>\\x06\\x16<step>`, and a
message's priority is rounded down to a step (priority 4 → step 3). A lower
step is read first. Sluiceway uses three of kombu's four steps, one per mode:

    realtime 0 → `sluiceway.churn.a`
    async    3 → `sluiceway.churn.a\\x06\\x163`
    transform 6 → `sluiceway.churn.a\\x06\\x166`

so a realtime call overtakes queued async jobs, which overtake batch-transform
chunks. Strict order would let a flood of realtime calls starve the rest, so
`pull_order` starts every 8th pull with async and every 32nd with transform:
under a realtime flood, async work still gets at least 1 pull in 8.
"""

from __future__ import annotations

import bisect

PRIORITY: dict[str, int] = {"realtime": 0, "async": 3, "transform": 6}

# kombu's own default steps (kombu.transport.redis.PRIORITY_STEPS); the Celery app
# passes them to kombu explicitly, so both sides round the same way.
PRIORITY_STEPS = (0, 3, 6, 9)

# kombu's separator between a queue's name and its priority step (`Channel.sep`).
PRIORITY_SEP = "\x06\x16"

ASYNC_EVERY = 8
TRANSFORM_EVERY = 32


def priority_list(queue: str, priority: int) -> str:
    """The Redis list holding `queue`'s messages of `priority`, rounded down to a step as
    kombu rounds it: `priority_list("q", 4)` → `"q\\x06\\x163"`, `priority_list("q", 0)` → `"q"`."""
    step = PRIORITY_STEPS[bisect.bisect_right(PRIORITY_STEPS, max(priority, 0)) - 1]
    return queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}"


def priority_lists(queue: str) -> list[str]:
    """Every Redis list holding messages of `queue`, highest priority first."""
    return [priority_list(queue, step) for step in PRIORITY_STEPS]


def pull_order(pull_number: int) -> tuple[int, ...]:
    """Priority steps in the order the `pull_number`-th pull of a worker reads them.

    Pulls 0-6 read (0, 3, 6, 9); pull 7 reads async first (3, 0, 6, 9); pull 31
    reads transform first (6, 3, 0, 9).
    """
    if pull_number % TRANSFORM_EVERY == TRANSFORM_EVERY - 1:
        return (6, 3, 0, 9)
    if pull_number % ASYNC_EVERY == ASYNC_EVERY - 1:
        return (3, 0, 6, 9)
    return PRIORITY_STEPS


def queue_of(list_key: str) -> str:
    """The queue a priority list belongs to: `"q\\x06\\x163"` → `"q"`."""
    return list_key.split(PRIORITY_SEP, 1)[0]

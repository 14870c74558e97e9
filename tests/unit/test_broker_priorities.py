"""A queue's priority lists are named as kombu's Redis transport names them, and workers
read them realtime first without starving the rest."""

from __future__ import annotations

import pytest

from core.broker import PRIORITY, priority_list, priority_lists, pull_order
from core.broker.priorities import queue_of


def test_each_step_has_its_list_highest_first() -> None:
    assert priority_lists("sw.e.a") == [
        "sw.e.a",
        "sw.e.a\x06\x163",
        "sw.e.a\x06\x166",
        "sw.e.a\x06\x169",
    ]
    assert [priority_list("sw.e.a", PRIORITY[m]) for m in ("realtime", "async", "transform")] == (
        priority_lists("sw.e.a")[:3]
    )
    assert {queue_of(key) for key in priority_lists("sw.e.a")} == {"sw.e.a"}


@pytest.mark.parametrize(("priority", "step"), [(-1, 0), (1, 0), (4, 3), (8, 6), (12, 9)])
def test_other_priorities_round_down_to_a_step_like_kombu(priority: int, step: int) -> None:
    assert priority_list("q", priority) == priority_list("q", step)


def test_pull_order_favours_realtime_without_starving_the_rest() -> None:
    firsts = [pull_order(n)[0] for n in range(64)]
    assert firsts.count(0) == 56  # 64 pulls: 8 start elsewhere
    assert firsts.count(3) == 6  # every 8th, except where transform takes the slot
    assert firsts.count(6) == 2  # every 32nd
    assert all(sorted(pull_order(n)) == [0, 3, 6, 9] for n in range(64))

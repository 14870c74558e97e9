"""A queue's priority lists are named as kombu's Redis transport names them."""

from __future__ import annotations

import pytest

from core.protocol import PRIORITY, priority_list, priority_lists


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


@pytest.mark.parametrize(("priority", "step"), [(-1, 0), (1, 0), (4, 3), (8, 6), (12, 9)])
def test_other_priorities_round_down_to_a_step_like_kombu(priority: int, step: int) -> None:
    assert priority_list("q", priority) == priority_list("q", step)

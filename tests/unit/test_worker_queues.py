"""Which live variant queues a worker consumes (SLUICEWAY_WORKER_VARIANTS)."""

from __future__ import annotations

import pytest

from core.broker import queue_name
from workers.celery_app import wanted_queues

NS = "sw"
LIVE = [
    queue_name(NS, "churn", "a"),
    queue_name(NS, "churn", "b"),
    queue_name(NS, "fraud", "a"),
    queue_name(NS, "fraud-v2", "canary"),
]


@pytest.mark.parametrize("only", ["", "   ", "\t\n"])
def test_no_filter_serves_every_live_queue(only: str) -> None:
    assert wanted_queues(LIVE, NS, only) == set(LIVE)


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        ("churn/a", {"sw.churn.a"}),
        ("churn/a,fraud/a", {"sw.churn.a", "sw.fraud.a"}),
        (" churn/b , fraud-v2/canary ", {"sw.churn.b", "sw.fraud-v2.canary"}),
        ("churn/a,,", {"sw.churn.a"}),
        ("churn/a,churn/a", {"sw.churn.a"}),
    ],
)
def test_filter_keeps_the_named_variants(only: str, expected: set[str]) -> None:
    assert wanted_queues(LIVE, NS, only) == expected


@pytest.mark.parametrize(
    "only",
    [
        "churn/z",  # no such variant
        "nope/a",  # no such endpoint
        "churn",  # an endpoint alone names no variant
        "fraud/canary",  # the variant is on another endpoint
        "other.churn/a",  # a namespace is not part of the name
    ],
)
def test_names_that_match_no_live_queue_select_nothing(only: str) -> None:
    assert wanted_queues(LIVE, NS, only) == set()


def test_a_named_variant_that_is_not_live_yet_is_not_consumed() -> None:
    """Workers follow live queues only: a deleted variant's queue is dropped."""
    assert wanted_queues(LIVE[:1], NS, "churn/a,churn/b") == {"sw.churn.a"}


def test_another_namespace_is_never_served() -> None:
    live = [*LIVE, queue_name("other", "churn", "a")]
    assert wanted_queues(live, NS, "churn/a") == {"sw.churn.a"}


def test_no_live_queues_means_nothing_to_consume() -> None:
    assert wanted_queues([], NS, "") == set()
    assert wanted_queues([], NS, "churn/a") == set()


def test_a_worker_dedicated_to_a_variant_serves_its_deployments_new_variant_too() -> None:
    live = [
        queue_name(NS, "churn", "a"),
        queue_name(NS, "churn", "a~2"),
        queue_name(NS, "churn", "ab"),
    ]
    assert wanted_queues(live, NS, "churn/a") == {
        queue_name(NS, "churn", "a"),
        queue_name(NS, "churn", "a~2"),
    }

"""Choosing the variant of a request: X-Target-Variant pinning and the weighted draw."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from api.realtime.routing import EndpointRoute, VariantRoute
from core.errors import BadRequest, NotFound, NotReady
from core.protocol import ModelRef


def _route(**weights: float) -> EndpointRoute:
    variants = tuple(
        VariantRoute(
            name=name,
            weight=weight,
            model=ModelRef(
                name=f"model-{name}",
                version=1,
                framework="xgboost",
                artifact_uri=f"s3://models/{name}/model.json",
            ),
            queue=f"ns.churn.{name}",
        )
        for name, weight in weights.items()
    )
    return EndpointRoute(name="churn", output_prefix="s3://out/churn/", variants=variants)


def _draws(route: EndpointRoute, n: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    return Counter(route.choose(None, rng).name for _ in range(n))


@pytest.mark.parametrize("pinned", ["a", "b", "c"])
def test_pinned_variant_is_returned_whatever_the_weights(pinned: str) -> None:
    route = _route(a=1, b=0, c=5)
    rng = random.Random(0)
    assert all(route.choose(pinned, rng).name == pinned for _ in range(50))


def test_pinning_works_when_every_weight_is_zero() -> None:
    """Weights steer unpinned traffic only; a pinned call still reaches its variant."""
    assert _route(a=0, b=0).choose("b", random.Random(0)).name == "b"


def test_unknown_pinned_variant_is_not_found_and_lists_the_known_ones() -> None:
    with pytest.raises(NotFound) as caught:
        _route(a=1, b=1).choose("zz", random.Random(0))
    assert caught.value.status == 404
    assert "'zz'" in caught.value.detail
    assert "['a', 'b']" in caught.value.detail


@pytest.mark.parametrize(
    ("weights", "name", "share"),
    [
        ({"a": 1, "b": 3}, "a", 0.25),
        ({"a": 1, "b": 1}, "a", 0.5),
        ({"a": 2, "b": 3, "c": 5}, "c", 0.5),
        ({"a": 0.1, "b": 0.9}, "b", 0.9),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_draw_lands_near_the_weight_share(
    weights: dict[str, float], name: str, share: float, seed: int
) -> None:
    """10,000 draws; Binomial sd is at most 50, so ±300 is six sd wide."""
    n = 10_000
    counts = _draws(_route(**weights), n, seed)
    assert abs(counts[name] - share * n) <= 300, counts
    assert set(counts) <= set(weights)


def test_zero_weight_variant_is_never_drawn() -> None:
    counts = _draws(_route(a=1, b=0, c=2), 5_000, seed=7)
    assert counts["b"] == 0
    assert counts["a"] > 0 and counts["c"] > 0


def test_same_seed_gives_the_same_sequence() -> None:
    route = _route(a=1, b=1, c=1)
    rng1, rng2 = random.Random(42), random.Random(42)
    seq1 = [route.choose(None, rng1).name for _ in range(200)]
    seq2 = [route.choose(None, rng2).name for _ in range(200)]
    assert seq1 == seq2
    assert set(seq1) == {"a", "b", "c"}


@pytest.mark.parametrize("weights", [{"a": 0}, {"a": 0, "b": 0}, {"a": 0.0, "b": 0.0, "c": 0.0}])
def test_all_zero_weights_is_not_ready(weights: dict[str, float]) -> None:
    with pytest.raises(NotReady) as caught:
        _route(**weights).choose(None, random.Random(0))
    assert caught.value.status == 503
    assert "'churn'" in caught.value.detail


def test_empty_pin_means_a_weighted_draw() -> None:
    """An empty X-Target-Variant header is treated as absent."""
    assert _route(a=0, b=1).choose("", random.Random(0)).name == "b"


def _with_components(route: EndpointRoute, *names: str) -> EndpointRoute:
    model = ModelRef(name="m", version=1, framework="xgboost", artifact_uri="s3://m/model.json")
    components = tuple(
        VariantRoute(name=f"ic.{n}", weight=0.0, model=model, queue=f"ns.churn.ic.{n}", component=n)
        for n in names
    )
    return EndpointRoute(
        name=route.name,
        output_prefix=route.output_prefix,
        variants=route.variants,
        components=components,
    )


def test_x_target_component_reaches_the_component_queue() -> None:
    route = _with_components(_route(a=1), "small", "big")
    chosen = route.choose(None, random.Random(0), "big")
    assert (chosen.component, chosen.queue) == ("big", "ns.churn.ic.big")
    # Without the header, traffic goes to the variants only.
    assert {route.choose(None, random.Random(i)).name for i in range(20)} == {"a"}


def test_an_unknown_component_is_not_found_and_lists_the_known_ones() -> None:
    route = _with_components(_route(a=1), "small")
    with pytest.raises(NotFound, match=r"no inference component 'zz'; it has \['small'\]"):
        route.choose(None, random.Random(0), "zz")


def test_a_components_only_endpoint_needs_x_target_component() -> None:
    route = _with_components(_route(), "small")
    with pytest.raises(BadRequest, match="X-Target-Component"):
        route.choose(None, random.Random(0))

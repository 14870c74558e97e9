"""Which PUTs apply in place and which are deployments (classify_update)."""

from __future__ import annotations

from typing import Any

import pytest

from api.services.deployments import classify_update, identity


def _record(**variant: Any) -> dict[str, Any]:
    base = {
        "name": "a",
        "model": "churn",
        "model_version": 3,
        "weight": 1,
        "accelerator": "cpu",
        "min_workers": 0,
        "max_workers": 1,
        "batching": {"max_batch_size": 1, "max_delay_ms": 0},
    }
    return {
        "name": "churn",
        "variants": [{**base, **variant}],
        "async": {"output_prefix": "s3://out/churn/", "invocation_timeout_s": 900},
    }


@pytest.mark.parametrize(
    "change",
    [
        {"weight": 3},
        {"min_workers": 2, "max_workers": 4},
        {"batching": {"max_batch_size": 64, "max_delay_ms": 5}},
    ],
)
def test_weights_batching_and_bounds_apply_in_place(change: dict[str, Any]) -> None:
    assert classify_update(identity(_record()), identity(_record(**change))) == "in_place"


@pytest.mark.parametrize(
    "change", [{"model_version": 4}, {"model": "churn-torch"}, {"accelerator": "gpu"}]
)
def test_a_new_model_or_accelerator_is_a_deployment(change: dict[str, Any]) -> None:
    assert classify_update(identity(_record()), identity(_record(**change))) == "deployment"


def test_variants_added_and_an_async_change_are_deployments() -> None:
    current = identity(_record())
    more = _record()
    more["variants"].append({**more["variants"][0], "name": "b"})
    assert classify_update(current, identity(more)) == "deployment"
    moved = _record()
    moved["async"] = {"output_prefix": "s3://elsewhere/", "invocation_timeout_s": 900}
    assert classify_update(current, identity(moved)) == "deployment"

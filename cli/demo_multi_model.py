"""The demo's multi-model step: one variant serving every model under an S3 prefix.

Two XGBoost models (the demo's own and one trained from another seed) are put
under one prefix; an endpoint with a `multi_model` variant serves both, each
call picking its model with X-Target-Model. Both answers are compared with the
very artifacts called directly, and they differ from each other, so the model
each call ran is the one it asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cli import api_client as http
from cli.demo_models import DemoFailure, build_xgboost, check_predictions, rounded
from cli.demo_transform import object_store_settings

if TYPE_CHECKING:
    from cli.demo_tour import Tour

TARGET_MODELS = {"chicago.json": 0, "eu/paris.json": 1}  # key under the prefix → seed offset


def step_multi_model(tour: Tour) -> str:
    """Two target models behind one multi-model variant, each called with X-Target-Model."""
    import numpy as np
    import xgboost as xgb

    from core.storage import ObjectStore, S3Location

    settings = object_store_settings()
    if settings is None:
        raise DemoFailure("the object store's address is unknown (see the transform step)")
    store = ObjectStore(settings)
    bucket = f"sluiceway-demo-{tour.suffix}"
    store.ensure_bucket(bucket)
    boosters: dict[str, xgb.Booster] = {}
    for key, offset in TARGET_MODELS.items():
        path = tour.workdir / key.replace("/", "-")
        if offset == 0:
            path = tour.built().xgboost_path
        else:
            build_xgboost(path, seed=tour_seed(offset))
        store.put_bytes(S3Location(bucket, "mme/" + key), path.read_bytes(), "application/json")
        booster = xgb.Booster()
        booster.load_model(str(path))
        boosters[key] = booster
    prefix = f"s3://{bucket}/mme/"
    name = f"demo-mme-{tour.suffix}"
    tour.api.request(
        "POST",
        "/v1/endpoints",
        json={
            "name": name,
            "variants": [{"name": "a", "multi_model": {"prefix": prefix, "framework": "xgboost"}}],
        },
    )
    tour.say(f"endpoint {name}: one multi-model variant over {prefix} ({len(boosters)} objects)")
    rows = tour.rows(2)
    answers = []
    for key, booster in boosters.items():
        response = tour.api.request(
            "POST",
            http.path("/v1/endpoints/{}/invocations", name),
            json={"instances": rows},
            headers={"X-Target-Model": key},
        )
        invoked = response.headers.get("X-Invoked-Model", "")
        if invoked != key:
            raise DemoFailure(f"X-Target-Model {key!r} was served by {invoked!r}")
        predictions = response.json()["predictions"]
        expected = np.asarray(booster.inplace_predict(np.asarray(rows, dtype=np.float32)))
        check_predictions(predictions, expected.astype(np.float64), what=key)
        cache = response.headers.get("X-Model-Cache", "?")
        tour.say(f"X-Target-Model: {key:14} cache {cache:4} → {rounded(predictions)}  matches")
        answers.append(predictions)
    if answers[0] == answers[1]:
        raise DemoFailure("both target models gave the same answers: they are not two models")
    return f"{name}: {', '.join(TARGET_MODELS)} each served from {prefix}, both match"


def tour_seed(offset: int) -> int:
    """The seed of the extra target model `offset` (the demo's own model is offset 0)."""
    from cli.demo_models import SEED

    return SEED + offset

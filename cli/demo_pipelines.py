"""The demo's pipeline step: a 3-step serial inference pipeline as one model.

`prep` (a python handler that rescales each feature) → the demo's XGBoost model
→ `post` (a python handler that turns the probability into `[probability,
label]`), registered as one `pipeline` model and served by one endpoint. The
answer is compared with the same three steps run here in order. The endpoint is
deleted afterwards, so its worker slot is free again.
"""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from cli import api_client as http
from cli.demo_models import DemoFailure, check_predictions, rounded

if TYPE_CHECKING:
    import numpy as np

    from cli.demo_tour import Tour

SCALE = [0.5, 2.0, 1.0, -1.0]  # prep multiplies feature i by SCALE[i]
CUT = 0.5  # post's label: 1.0 when the probability is above it

PREP = f"""
import numpy as np

SCALE = np.asarray({SCALE}, dtype=np.float32)


def predict_fn(data, model):
    return np.asarray(data, dtype=np.float32) * SCALE
"""

POST = f"""
import numpy as np


def predict_fn(data, model):
    probabilities = np.asarray(data, dtype=np.float64).reshape(-1)
    return [[float(p), float(p > {CUT})] for p in probabilities]
"""


def handler_bundle(path: Path, source: str) -> Path:
    """A python model artifact: a .tar.gz holding `handler.py` with `source`."""
    data = textwrap.dedent(source).encode()
    with tarfile.open(path, "w:gz") as bundle:
        info = tarfile.TarInfo("handler.py")
        info.size = len(data)
        bundle.addfile(info, io.BytesIO(data))
    return path


def expected_answer(tour: Tour, rows: list[list[float]]) -> np.ndarray:
    """prep → xgboost → post, run in this process."""
    import numpy as np

    scaled = (np.asarray(rows, dtype=np.float32) * np.asarray(SCALE, dtype=np.float32)).tolist()
    probabilities = tour.built().predict("xgboost", scaled)
    return np.stack([probabilities, (probabilities > CUT).astype(np.float64)], axis=1)


def _register_handler(tour: Tour, name: str, source: str) -> int:
    artifact = handler_bundle(tour.workdir / f"{name}.tar.gz", source)
    with artifact.open("rb") as handle:
        body = tour.api.request(
            "POST",
            "/v1/models",
            data={"name": name, "framework": "python"},
            files={"file": (artifact.name, handle, "application/gzip")},
        ).json()
    return int(body["version"])


def step_pipeline(tour: Tour) -> str:
    """Register prep and post, chain them around the xgboost model, call the endpoint."""
    prep, post = f"demo-prep-{tour.suffix}", f"demo-post-{tour.suffix}"
    xgb, xgb_version = tour.registered["xgboost"]
    steps = [
        {"name": "prep", "model": prep, "model_version": _register_handler(tour, prep, PREP)},
        {"name": "xgb", "model": xgb, "model_version": xgb_version},
        {"name": "post", "model": post, "model_version": _register_handler(tour, post, POST)},
    ]
    pipeline = f"demo-pipeline-{tour.suffix}"
    tour.api.request(
        "POST", "/v1/models", json={"name": pipeline, "framework": "pipeline", "steps": steps}
    )
    endpoint = f"demo-pipe-{tour.suffix}"
    tour.api.request(
        "POST",
        "/v1/endpoints",
        json={"name": endpoint, "variants": [{"name": "a", "model": pipeline}]},
    )
    tour.say(f"model {pipeline}: prep ({prep}) → xgb ({xgb}) → post ({post}); endpoint {endpoint}")
    rows = tour.rows(3)
    predictions = tour.api.request(
        "POST", http.path("/v1/endpoints/{}/invocations", endpoint), json={"instances": rows}
    ).json()["predictions"]
    check_predictions(predictions, expected_answer(tour, rows), what=f"pipeline {pipeline}")
    tour.say(f"{rounded(predictions)}  matches the three steps run here")
    if len(predictions) != len(rows):
        raise DemoFailure(f"{len(predictions)} answers for {len(rows)} rows")
    tour.api.request("DELETE", http.path("/v1/endpoints/{}", endpoint))
    return f"{pipeline}: 3 steps, {len(rows)} rows, [probability, label] each, matches"

"""What the demo's steps share: the Tour (API, created names, sample rows) and helpers.

Each step module (cli/demo_*.py) takes a Tour and returns a one-line result or
raises DemoFailure; cli/demo.py lists them in order.
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from cli import api_client as http
from cli.demo_models import N_FEATURES, SEED, DemoFailure, DemoModels, check_predictions, rounded

VARIANTS = {"a": "xgboost", "b": "torch"}  # variant name → the framework of its model
BATCHING = {"max_batch_size": 8, "max_delay_ms": 2}


@dataclass
class Tour:
    """State the steps share: the API, what has been created so far, sample rows."""

    api: http.Api
    console: Console
    workdir: Path
    suffix: str = field(default_factory=lambda: secrets.token_hex(2))
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    models: DemoModels | None = None
    registered: dict[str, tuple[str, int]] = field(default_factory=dict)
    endpoint: str = ""

    def rows(self, count: int) -> list[list[float]]:
        """`count` rows of N_FEATURES numbers in [-2, 2], 3 decimals so they print neatly."""
        return [
            [round(self.rng.uniform(-2, 2), 3) for _ in range(N_FEATURES)] for _ in range(count)
        ]

    def built(self) -> DemoModels:
        if self.models is None:
            raise DemoFailure("the models were not built")
        return self.models

    def say(self, text: str) -> None:
        self.console.print(f"  {escape(text)}")


def short_id(job_id: str) -> str:
    """The first 8 characters of a job id, enough to tell the demo's jobs apart on screen."""
    return job_id[:8]


def field_of(body: Any, key: str, *, what: str) -> Any:
    """body[key], or a DemoFailure naming the call and the body when the API left it out."""
    if not isinstance(body, dict) or key not in body:
        raise DemoFailure(f"{what} answered without {key!r}: {body!r}")
    return body[key]


def invocation_url(tour: Tour, kind: str) -> str:
    return http.path("/v1/endpoints/{}/" + kind, tour.endpoint)


def realtime_call(
    tour: Tour, rows: list[list[float]], *, variant: str | None = None
) -> tuple[str, float]:
    """One realtime call, checked against the model called directly → (variant, ms)."""
    headers = {"X-Target-Variant": variant} if variant else {}
    started = time.perf_counter()
    response = tour.api.request(
        "POST", invocation_url(tour, "invocations"), json={"instances": rows}, headers=headers
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    invoked = response.headers.get("X-Invoked-Variant", "")
    if invoked not in VARIANTS:
        raise DemoFailure(f"X-Invoked-Variant is {invoked!r}, expected one of {list(VARIANTS)}")
    predictions = field_of(response.json(), "predictions", what="a realtime call")
    check_predictions(
        predictions, tour.built().predict(VARIANTS[invoked], rows), what=f"variant {invoked}"
    )
    job = short_id(response.headers.get("X-Job-Id", "?"))
    tour.say(
        f"variant {invoked}  {elapsed_ms:6.1f} ms  job {job}  {rounded(predictions)}"
        "  matches the model called directly"
    )
    return invoked, elapsed_ms

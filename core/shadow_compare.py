"""Comparing a shadow variant with production: one pair at a time, then a report.

A *pair* is what the scheduler's comparer keeps for each shadow copy that came
back (scheduler/shadows/comparer.py): both sides' predictions (numbers parsed
from the JSON `predictions` or the CSV lines), both model latencies, and the
shadow's error if it failed. The report over the kept pairs is computed when
asked, at the tolerance asked (`GET /v1/endpoints/{name}/shadow-report`):

- `requests_compared`: pairs where both answered;
- `agreement_rate`: of those, the share where every prediction agrees within
  `tolerance` (|0.7312 - 0.7313| = 1e-4 agrees at 1e-3, not at 1e-6);
- `mean_abs_diff`: the mean |production - shadow| over every prediction compared;
- `errors`: copies the shadow failed;
- p50/p99 of each side's model latency (ms), production over every pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson


def predictions_of(body: bytes, content_type: str | None) -> list[float] | None:
    """The answer's predictions as flat numbers, or None when they are not numbers."""
    try:
        if content_type and "csv" in content_type:
            values: list[Any] = [
                float(cell)
                for line in body.decode().splitlines()
                for cell in line.split(",")
                if cell
            ]
        else:
            data = orjson.loads(body)
            values = list(_flatten(data["predictions"] if isinstance(data, dict) else data))
        return [float(v) for v in values]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, orjson.JSONDecodeError):
        return None


def _flatten(value: Any) -> Any:
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _flatten(value[key])
    else:
        yield value


def make_pair(production: dict[str, Any], shadow: dict[str, Any]) -> dict[str, Any]:
    """One compared pair from the production record and the shadow's reply (both dicts)."""
    return {
        "production": predictions_of(production["body"], production.get("content_type"))
        if production.get("ok")
        else None,
        "production_ms": float(production.get("model_ms") or 0.0),
        "shadow": predictions_of(shadow.get("body") or b"", shadow.get("content_type"))
        if shadow.get("ok")
        else None,
        "shadow_ms": float(shadow.get("model_ms") or 0.0) if shadow.get("ok") else None,
        "shadow_error": None
        if shadow.get("ok")
        else f"{shadow.get('error_kind') or 'error'}: {shadow.get('detail') or ''}".strip(),
    }


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def report(name: str, pairs: Sequence[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """The shadow report of one shadow variant over its kept pairs."""
    compared = agreed = 0
    diffs: list[float] = []
    for pair in pairs:
        production, shadow = pair.get("production"), pair.get("shadow")
        if production is None or shadow is None:
            continue
        compared += 1
        if len(production) != len(shadow):
            continue
        gaps = [abs(p - s) for p, s in zip(production, shadow, strict=True)]
        diffs.extend(g for g in gaps if not math.isnan(g))
        if all(g <= tolerance for g in gaps):
            agreed += 1
    production_ms = [p["production_ms"] for p in pairs if p.get("production") is not None]
    shadow_ms = [p["shadow_ms"] for p in pairs if p.get("shadow_ms") is not None]
    return {
        "name": name,
        "requests_compared": compared,
        "agreement_rate": agreed / compared if compared else None,
        "mean_abs_diff": sum(diffs) / len(diffs) if diffs else None,
        "errors": sum(1 for p in pairs if p.get("shadow_error")),
        "production_p50_ms": _percentile(production_ms, 50),
        "production_p99_ms": _percentile(production_ms, 99),
        "shadow_p50_ms": _percentile(shadow_ms, 50),
        "shadow_p99_ms": _percentile(shadow_ms, 99),
    }

"""Shadow pairs and the shadow report (core/shadow_compare.py)."""

from __future__ import annotations

import orjson
import pytest

from core.shadow_compare import make_pair, predictions_of, report


def _answer(predictions: list[float], ms: float = 5.0) -> dict[str, object]:
    body = orjson.dumps({"predictions": predictions})
    return {"ok": True, "body": body, "content_type": "application/json", "model_ms": ms}


def test_predictions_from_json_and_csv_and_not_numbers() -> None:
    assert predictions_of(b'{"predictions": [[0.1, 0.9], [0.5, 0.5]]}', "application/json") == [
        0.1,
        0.9,
        0.5,
        0.5,
    ]
    assert predictions_of(b"1.5\n2\n", "text/csv") == [1.5, 2.0]
    assert predictions_of(b'{"predictions": ["cat"]}', "application/json") is None


def test_a_failed_shadow_is_an_error_not_a_comparison() -> None:
    failed = {"ok": False, "error_kind": "model_error", "detail": "feature below -1000"}
    pair = make_pair(_answer([1.0]), failed)
    assert pair["shadow"] is None and pair["shadow_error"] == "model_error: feature below -1000"
    got = report("s", [pair], 1e-6)
    assert got["errors"] == 1 and got["requests_compared"] == 0
    assert got["agreement_rate"] is None and got["production_p50_ms"] == 5.0


@pytest.mark.parametrize(("tolerance", "rate"), [(1e-3, 1.0), (1e-6, 0.5)])
def test_agreement_is_every_prediction_within_the_tolerance(tolerance: float, rate: float) -> None:
    pairs = [
        make_pair(_answer([0.7312, 0.2]), _answer([0.7313, 0.2], ms=9.0)),
        make_pair(_answer([0.5]), _answer([0.5], ms=11.0)),
    ]
    got = report("s", pairs, tolerance)
    assert got["requests_compared"] == 2
    assert got["agreement_rate"] == rate
    assert got["mean_abs_diff"] == pytest.approx(1e-4 / 3)
    assert got["shadow_p50_ms"] == 10.0

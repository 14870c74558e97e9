"""Monitoring's pure parts: statistics against numpy, checks, distances, quality against
scikit-learn and hand-checked values, schedule timing, and capture's sampling and flushing."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from scheduler.monitoring import decisions
from scheduler.monitoring.quality import QualitySample, compute_metrics, parse_predictions
from scheduler.monitoring.statistics import Profile
from workers.capture import (
    BufferKey,
    CaptureRecorder,
    Entry,
    capture_record,
    flush_due,
    object_location,
    sampled,
)


def baseline_of(
    rows: np.ndarray, names: list[str] | None = None
) -> list[decisions.BaselineFeature]:
    profile = Profile(names or [])
    profile.add_rows(rows.tolist())
    return decisions.baseline_features(
        profile.statistics_json(), decisions.suggest_constraints(profile)
    )


def current_of(baseline: list[decisions.BaselineFeature], rows: list[Any]) -> Profile:
    profile = Profile([f.name for f in baseline])
    for start in range(0, len(rows), 700):  # several blocks, as a run reads them
        profile.add_rows(rows[start : start + 700])
    return profile


def test_statistics_match_numpy_across_blocks() -> None:
    x = np.random.default_rng(3).normal(loc=5, scale=2, size=(5000, 2))
    profile = Profile(["a", "b"])
    for start in range(0, 5000, 1234):
        profile.add_rows(x[start : start + 1234].tolist())
    stats = profile.statistics_json()
    assert stats["dataset"] == {"item_count": 5000}
    a = stats["features"][0]["numerical_statistics"]
    assert a["mean"] == pytest.approx(x[:, 0].mean())
    assert a["std_dev"] == pytest.approx(x[:, 0].std())
    assert (a["min"], a["max"]) == (x[:, 0].min(), x[:, 0].max())
    assert a["sum"] == pytest.approx(x[:, 0].sum())
    assert sum(b["count"] for b in a["distribution"]["kll"]["buckets"]) == pytest.approx(5000)


def test_types_completeness_and_strings() -> None:
    profile = Profile()
    profile.add_rows([["1", "2.5", "x"], ["2", "", "y"], ["3", "3.5", "x"], ["4", "1"]])
    features = {f["name"]: f for f in profile.statistics_json()["features"]}
    assert [f["inferred_type"] for f in features.values()] == ["Integral", "Fractional", "String"]
    assert features["_c1"]["numerical_statistics"]["common"] == {"num_present": 3, "num_missing": 1}
    strings = features["_c2"]["string_statistics"]
    assert strings["common"] == {"num_present": 3, "num_missing": 1}
    assert strings["distribution"]["categorical"]["buckets"] == [
        {"value": "x", "count": 2},
        {"value": "y", "count": 1},
    ]
    constraints = decisions.suggest_constraints(profile)
    assert [f["completeness"] for f in constraints["features"]] == [1.0, 0.75, 0.75]


def test_same_distribution_has_no_violation_and_a_3_sigma_shift_flags_that_feature_alone() -> None:
    rng = np.random.default_rng(0)
    baseline = baseline_of(rng.normal(size=(4000, 3)))
    same = rng.normal(size=(2000, 3))
    assert (
        decisions.data_quality_violations(baseline, current_of(baseline, same.tolist()), {}) == []
    )
    same[:, 1] += 3
    found = decisions.data_quality_violations(baseline, current_of(baseline, same.tolist()), {})
    assert [(v.feature, v.check) for v in found] == [("_c1", "baseline_drift")]
    # KS of N(0,1) against N(3,1) is Phi(1.5) - Phi(-1.5) = 0.866.
    assert found[0].value == pytest.approx(0.866, abs=0.03)


def test_ks_distance_agrees_with_scipy_on_the_raw_samples() -> None:
    from datasketches import kll_doubles_sketch
    from scipy import stats

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=3000), rng.normal(0.3, 1.2, size=2500)
    sa, sb = kll_doubles_sketch(2048), kll_doubles_sketch(2048)
    sa.update(a)
    sb.update(b)
    assert decisions.ks_distance(sa, sb) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=0.01)


def test_missing_extra_type_and_completeness_checks() -> None:
    baseline = baseline_of(np.arange(300, dtype=float).reshape(100, 3), ["a", "b", "c"])
    rows: list[Any] = [[float(i), i + 0.5] for i in range(50)]  # b is not whole; no c
    rows += [[float(i), None, 1, 2] for i in range(50)]  # an extra 4th column
    found = {
        (v.feature, v.check): v
        for v in decisions.data_quality_violations(
            baseline,
            current_of(baseline, rows),
            {"distribution_constraints": {"perform_comparison": "Disabled"}},
        )
    }
    assert set(found) == {
        ("b", "data_type"),
        ("b", "completeness"),
        ("c", "completeness"),
        ("_c3", "extra_column"),
    }
    assert found[("b", "data_type")].value == 0.0
    assert found[("b", "completeness")].value == 0.5
    only_two = current_of(baseline, [[1.0, 2.0]] * 10)
    missing = decisions.data_quality_violations(baseline, only_two, {})
    assert [(v.feature, v.check) for v in missing if v.check != "baseline_drift"] == [
        ("c", "missing_column")
    ]


def test_linf_distance_of_category_shares() -> None:
    assert decisions.linf_distance(Counter(a=50, b=50), Counter(a=80, b=20)) == pytest.approx(0.3)
    assert decisions.linf_distance(Counter(a=1), Counter()) == 0.0


@pytest.mark.parametrize(
    ("problem", "labels", "predictions"),
    [
        ("binary_classification", [1, 0, 1, 1, 0, 0], [0.9, 0.2, 0.4, 0.8, 0.6, 0.1]),
        ("multiclass_classification", [0, 1, 2, 2, 1, 0], [0, 2, 2, 2, 1, 0]),
        ("regression", [1.0, 2.0, 3.5, 4.0], [1.1, 1.9, 3.0, 4.4]),
    ],
)
def test_quality_metrics_equal_sklearns(
    problem: str, labels: list[Any], predictions: list[Any]
) -> None:
    got = compute_metrics(problem, labels, predictions)
    if problem == "regression":
        expected = {
            "mae": skm.mean_absolute_error(labels, predictions),
            "rmse": skm.mean_squared_error(labels, predictions) ** 0.5,
            "r2": skm.r2_score(labels, predictions),
        }
    elif problem == "binary_classification":
        predicted = [int(p >= 0.5) for p in predictions]
        expected = {
            "accuracy": skm.accuracy_score(labels, predicted),
            "precision": skm.precision_score(labels, predicted),
            "recall": skm.recall_score(labels, predicted),
            "f1": skm.f1_score(labels, predicted),
            "auc": skm.roc_auc_score(labels, predictions),
        }
    else:
        expected = {
            "accuracy": skm.accuracy_score(labels, predictions),
            "f1": skm.f1_score(labels, predictions, average="weighted"),
        }
    for metric, value in expected.items():
        assert got[metric] == pytest.approx(value), metric


def test_binary_quality_by_hand() -> None:
    """The module docstring's example: 4 labels, one positive missed."""
    got = compute_metrics("binary_classification", [1, 0, 1, 1], [0.9, 0.2, 0.4, 0.8])
    assert got == pytest.approx(
        {"accuracy": 0.75, "precision": 1.0, "recall": 2 / 3, "f1": 0.8, "auc": 1.0}
    )


def test_quality_sample_matches_lists_and_counts_the_rest() -> None:
    sample = QualitySample("regression")
    sample.add(2.0, [2.5])
    sample.add([1.0, 3.0], [1.0, 3.0])
    sample.add([1.0], [1.0, 2.0])  # one label for two predictions: not matched
    result = sample.metrics()
    assert (result["matched_records"], result["unmatched_records"]) == (3, 2)
    assert result["mae"] == pytest.approx(0.5 / 3)
    assert parse_predictions({"predictions": [0.1, 0.2]}) == [0.1, 0.2]
    assert parse_predictions("0.5\n1,2\n") == [0.5, [1.0, 2.0]]


def test_quality_violations_follow_the_operator() -> None:
    constraints = decisions.suggest_constraints(Profile(), {"accuracy": 0.8, "rmse": 2.0})
    found = decisions.quality_violations({"accuracy": 0.72, "rmse": 1.5}, constraints)
    assert [(v.feature, v.value, v.threshold) for v in found] == [("accuracy", 0.72, 0.8)]
    found = decisions.quality_violations({"accuracy": 0.9, "rmse": 2.5}, constraints)
    assert [v.feature for v in found] == ["rmse"]


def test_next_run_skips_missed_runs_and_windows_end_on_a_whole_second() -> None:
    noon = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    later = dt.datetime(2026, 1, 1, 14, 30, tzinfo=dt.UTC)
    assert decisions.next_run_at(noon, 3600, later) == dt.datetime(2026, 1, 1, 15, tzinfo=dt.UTC)
    assert decisions.next_run_at(later, 3600, noon) == later
    moment = dt.datetime(2026, 1, 1, 12, 0, 5, 700_000, tzinfo=dt.UTC)
    assert decisions.window_end(moment) == dt.datetime(2026, 1, 1, 12, 0, 5, tzinfo=dt.UTC)


# --- capture's pure parts -------------------------------------------------------------


def test_sampling_is_stable_and_near_its_percentage() -> None:
    ids = [f"id-{i}" for i in range(20_000)]
    share = sum(sampled(i, 10) for i in ids) / len(ids)
    assert 0.09 < share < 0.11
    assert [sampled(i, 10) for i in ids[:50]] == [sampled(i, 10) for i in ids[:50]]
    assert all(sampled(i, 100) for i in ids[:10]) and not any(sampled(i, 0) for i in ids[:10])


def test_flush_rule() -> None:
    assert not flush_due(records=0, first_at_s=0, now_s=99, interval_s=5, max_records=10)
    assert flush_due(records=10, first_at_s=100, now_s=100, interval_s=5, max_records=10)
    assert not flush_due(records=9, first_at_s=100, now_s=104.9, interval_s=5, max_records=10)
    assert flush_due(records=1, first_at_s=100, now_s=105, interval_s=5, max_records=10)


def test_capture_record_and_object_key_follow_sagemakers_format() -> None:
    entry = Entry("req-1", 1_767_268_805.25, b"1,2\n", "text/csv", b"\x00\x01", "application/x-npy")
    record = capture_record(entry)
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "1,2\n",
        "encoding": "CSV",
    }
    assert record["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    assert record["eventMetadata"]["inferenceId"] == "req-1"
    assert record["eventMetadata"]["inferenceTime"] == "2026-01-01T12:00:05.250Z"
    key = BufferKey("s3://bucket/capture/", "churn", "a", "2026/01/01/12")
    location = object_location("s3://bucket/capture/", key, now_s=1_767_268_805.25)
    assert location.key.startswith("capture/churn/a/2026/01/01/12/00-05-250-")


class FakeStore:
    def __init__(self, *, failing: bool = False) -> None:
        self.objects: dict[str, bytes] = {}
        self.failing = failing

    def put_bytes(self, location: Any, data: bytes, content_type: str) -> None:
        if self.failing:
            raise OSError("store down")
        self.objects[str(location)] = data


def test_recorder_writes_one_object_per_variant_and_keeps_records_while_s3_is_down() -> None:
    from workers.capture import CaptureConfig

    now = [1000.0]
    store = FakeStore(failing=True)
    config = CaptureConfig("s3://bucket/capture/", 100, True, True)
    recorder = CaptureRecorder(
        store=store,  # type: ignore[arg-type]
        load_configs=lambda _endpoint: {"churn": config},
        flush_s=5,
        flush_records=100,
        max_buffer_bytes=10_000,
        clock=lambda: now[0],
    )
    for variant in ("a", "a", "b"):
        recorder._add(
            config, "churn", variant, Entry("i", now[0], b"1", "text/csv", b"2", "text/csv")
        )
    now[0] += 5
    assert recorder.flush() == 0  # the store is down: nothing lost, retried later
    store.failing = False
    assert recorder.flush() == 3
    assert sorted(len(body.splitlines()) for body in store.objects.values()) == [1, 2]
    for _ in range(100):  # 10,000 bytes hold about 49 records of ~203 bytes
        recorder._add(config, "churn", "a", Entry("i", now[0], b"1", "text/csv", b"2", "text/csv"))
    assert recorder.dropped == 100 - 10_000 // 203

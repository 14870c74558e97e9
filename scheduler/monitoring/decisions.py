"""Pure decisions of monitoring: constraints from a baseline, violations of a run, when to run.

Checks, per baseline feature (constraints.json's `monitoring_config` holds the limits):

- `missing_column`: the feature's column is in no captured row.
- `extra_column`: a captured column the baseline does not have.
- `data_type`: the share of present values of the baseline's type (Integral ⊂
  Fractional ⊂ String) is below `datatype_check_threshold` (1.0: every value).
  A baseline `Integral` feature receiving 2.5 in 1 row of 200 → 0.995 < 1.0.
- `completeness`: the share of rows with a value is below the feature's
  `completeness` constraint (the baseline's own, 1.0 when it had no gaps).
- `baseline_drift`: the distance between the baseline's and the captured
  distribution exceeds `comparison_threshold` (0.1). Numeric features use the
  Kolmogorov-Smirnov distance, the L∞ norm of the difference of the two CDFs
  read from the KLL sketches; String features the L∞ distance between the two
  category frequency tables. A normal feature shifted by 3 standard deviations
  has a KS distance of about 0.87 (Phi(1.5) - Phi(-1.5)); two samples of 2,000
  rows from the same distribution differ by about 0.03.
- `model_quality`: a quality metric worse than its threshold in
  `model_quality_constraints` (accuracy 0.72 `LessThanThreshold` 0.8).

Runs of a schedule cover consecutive windows of capture-object LastModified
times, [previous end, this end), each end a whole second at or before the
run's start (`window_end`): S3 stamps objects to the second, and an object
stamped with the second a run starts in may still be uploading.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketches import kll_doubles_sketch

from scheduler.monitoring.statistics import FeatureStats, Profile

NUMERIC = ("Integral", "Fractional")
DEFAULT_MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}
HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1", "auc", "r2")
LOWER_IS_BETTER = ("mae", "rmse")


@dataclass(frozen=True, slots=True)
class Violation:
    feature: str
    check: str
    description: str
    value: float | None
    threshold: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "check": self.check,
            "description": self.description,
            "value": self.value,
            "threshold": self.threshold,
        }

    def sagemaker_json(self) -> dict[str, str]:
        """One entry of constraint_violations.json, as Model Monitor writes it."""
        return {
            "feature_name": self.feature,
            "constraint_check_type": f"{self.check}_check",
            "description": self.description,
        }


# --- constraints from a baseline ----------------------------------------------------


def suggest_constraints(
    profile: Profile, quality_thresholds: dict[str, float] | None = None
) -> dict[str, Any]:
    """constraints.json for a baseline: each feature's type and completeness, the
    default monitoring_config, and the model-quality limits given (if any)."""
    features = []
    for stats in profile.features.values():
        entry: dict[str, Any] = {
            "name": stats.name,
            "inferred_type": stats.inferred_type,
            "completeness": completeness(stats, profile.item_count),
        }
        if stats.inferred_type in NUMERIC:
            entry["num_constraints"] = {"is_non_negative": bool(stats.minimum >= 0)}
        features.append(entry)
    constraints: dict[str, Any] = {
        "version": 0.0,
        "features": features,
        "monitoring_config": DEFAULT_MONITORING_CONFIG,
    }
    if quality_thresholds:
        constraints["model_quality_constraints"] = {
            metric: {
                "threshold": threshold,
                "comparison_operator": "GreaterThanThreshold"
                if metric in LOWER_IS_BETTER
                else "LessThanThreshold",
            }
            for metric, threshold in quality_thresholds.items()
        }
    return constraints


def completeness(stats: FeatureStats, rows: int) -> float:
    return stats.num_present / rows if rows else 1.0


# --- the baseline, read back ----------------------------------------------------------


@dataclass(frozen=True)
class BaselineFeature:
    name: str
    inferred_type: str
    completeness: float
    sketch: kll_doubles_sketch | None  # numeric features
    categories: Counter[str]  # String features


def baseline_features(
    statistics: dict[str, Any], constraints: dict[str, Any]
) -> list[BaselineFeature]:
    """The baseline's features in order, types and completeness from constraints.json
    (which a person may have edited), distributions from statistics.json."""
    stats_by_name = {f["name"]: f for f in statistics.get("features", [])}
    out = []
    for feature in constraints.get("features", []):
        stats = stats_by_name.get(feature["name"], {})
        sketch = None
        serialized = (
            stats.get("numerical_statistics", {})
            .get("distribution", {})
            .get("kll", {})
            .get("sketch", {})
            .get("serialized")
        )
        if serialized:
            sketch = kll_doubles_sketch.deserialize(base64.b64decode(serialized))
        buckets = (
            stats.get("string_statistics", {})
            .get("distribution", {})
            .get("categorical", {})
            .get("buckets", [])
        )
        out.append(
            BaselineFeature(
                name=feature["name"],
                inferred_type=feature.get("inferred_type", "Unknown"),
                completeness=float(feature.get("completeness", 1.0)),
                sketch=sketch,
                categories=Counter({b["value"]: b["count"] for b in buckets}),
            )
        )
    return out


# --- distances --------------------------------------------------------------------------


def ks_distance(a: kll_doubles_sketch, b: kll_doubles_sketch) -> float:
    """Kolmogorov-Smirnov distance between two sketched distributions: the largest gap
    between their CDFs, read by the sketches at every item either retains."""
    if a.is_empty() or b.is_empty():
        return 0.0
    points = np.unique(np.concatenate([_items(a), _items(b)])).tolist()
    gaps = np.abs(np.asarray(a.get_cdf(points)) - np.asarray(b.get_cdf(points)))
    return float(gaps.max())


def _items(sketch: kll_doubles_sketch) -> np.ndarray:
    return np.fromiter((item for item, _weight in sketch), dtype=np.float64)


def linf_distance(a: Counter[str], b: Counter[str]) -> float:
    """L∞ distance between two frequency tables: the largest gap in any value's share."""
    total_a, total_b = sum(a.values()), sum(b.values())
    if not total_a or not total_b:
        return 0.0
    return max(abs(a[v] / total_a - b[v] / total_b) for v in set(a) | set(b))


# --- the checks -------------------------------------------------------------------------


def data_quality_violations(
    baseline: list[BaselineFeature], current: Profile, monitoring_config: dict[str, Any]
) -> list[Violation]:
    """Every data-quality violation of `current` (captured rows) against the baseline."""
    if current.item_count == 0:
        return []
    config = {**DEFAULT_MONITORING_CONFIG, **(monitoring_config or {})}
    distribution = {
        **DEFAULT_MONITORING_CONFIG["distribution_constraints"],
        **config.get("distribution_constraints", {}),
    }
    compare = distribution.get("perform_comparison", "Enabled") == "Enabled"
    type_threshold = float(config["datatype_check_threshold"])
    violations: list[Violation] = []
    known = {f.name for f in baseline}
    for feature in baseline:
        stats = current.features.get(feature.name)
        if stats is None:
            violations.append(
                Violation(
                    feature.name,
                    "missing_column",
                    f"baseline feature {feature.name!r} is in none of the "
                    f"{current.item_count} captured rows",
                    0.0,
                    None,
                )
            )
            continue
        violations += _type_violation(feature, stats, type_threshold)
        observed = completeness(stats, current.item_count)
        if observed < feature.completeness - 1e-9:
            violations.append(
                Violation(
                    feature.name,
                    "completeness",
                    f"{observed:.4f} of captured rows have a value; the baseline's "
                    f"constraint is {feature.completeness:.4f}",
                    observed,
                    feature.completeness,
                )
            )
        if compare:
            violations += _drift_violation(feature, stats, distribution)
    for name in current.features:
        if name not in known:
            violations.append(
                Violation(
                    name,
                    "extra_column",
                    f"captured column {name!r} is not in the baseline ({len(baseline)} features)",
                    None,
                    None,
                )
            )
    return violations


def _type_violation(
    feature: BaselineFeature, stats: FeatureStats, threshold: float
) -> list[Violation]:
    present = stats.num_present
    if not present or feature.inferred_type in ("String", "Unknown"):
        return []
    fitting = stats.integral if feature.inferred_type == "Integral" else stats.numeric
    share = fitting / present
    if share >= threshold:
        return []
    return [
        Violation(
            feature.name,
            "data_type",
            f"{present - fitting} of {present} captured values are not "
            f"{feature.inferred_type} (share that fits {share:.4f})",
            share,
            threshold,
        )
    ]


def _drift_violation(
    feature: BaselineFeature, stats: FeatureStats, distribution: dict[str, Any]
) -> list[Violation]:
    if feature.inferred_type in NUMERIC and feature.sketch is not None:
        distance = ks_distance(feature.sketch, stats.sketch)
        threshold = float(distribution["comparison_threshold"])
        method = "Kolmogorov-Smirnov distance"
    elif feature.inferred_type == "String":
        distance = linf_distance(feature.categories, stats.string_counts())
        threshold = float(distribution["categorical_comparison_threshold"])
        method = "L-infinity distance between category frequencies"
    else:
        return []
    if distance <= threshold:
        return []
    return [
        Violation(
            feature.name,
            "baseline_drift",
            f"{method} to the baseline is {distance:.4f}, above {threshold}",
            distance,
            threshold,
        )
    ]


def quality_violations(
    metrics: dict[str, float | None], constraints: dict[str, Any]
) -> list[Violation]:
    """A violation for each metric worse than its `model_quality_constraints` threshold."""
    violations = []
    for metric, rule in (constraints.get("model_quality_constraints") or {}).items():
        value = metrics.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        threshold = float(rule["threshold"])
        below = rule.get("comparison_operator", "LessThanThreshold") == "LessThanThreshold"
        if (value < threshold) if below else (value > threshold):
            relation = "below" if below else "above"
            violations.append(
                Violation(
                    metric,
                    "model_quality",
                    f"{metric} {value:.4f} is {relation} the threshold {threshold}",
                    value,
                    threshold,
                )
            )
    return violations


# --- when to run ------------------------------------------------------------------------


def next_run_at(due_at: dt.datetime, interval_s: int, now: dt.datetime) -> dt.datetime:
    """The next due time after `now`, on the schedule's grid (missed runs are not repeated).

    Due 12:00 every hour, the scheduler back at 14:30 → one run now, the next at 15:00.
    """
    step = dt.timedelta(seconds=interval_s)
    if due_at > now:
        return due_at
    missed = (now - due_at) // step
    return due_at + (missed + 1) * step


def window_end(started: dt.datetime) -> dt.datetime:
    """The end of a run's window: the whole second at or before its start (12:00:05.7 → :05)."""
    return started.replace(microsecond=0)

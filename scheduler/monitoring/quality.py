"""Model quality of captured predictions against ground truth, with scikit-learn's metrics.

Ground truth is JSON Lines `{"inferenceId": "...", "groundTruthLabel": ...}`;
each label is matched with the prediction captured under the same inference
id. A request that carried several instances matches a list of labels of the
same length (one per prediction). What a prediction means depends on the
problem type:

- binary_classification: a number in [0, 1] is the positive class's
  probability (label = probability >= 0.5); a pair `[p0, p1]` likewise with p1;
  0/1 labels are taken as they are. Metrics: accuracy, precision, recall, f1
  (of the positive class 1) and auc (ROC AUC of the probabilities; none while
  the labels hold a single class).
- multiclass_classification: a class label, or a list of class probabilities
  (label = the most probable class's index). precision, recall and f1 are
  weighted by class support; auc is one-vs-rest from the probabilities.
- regression: mae, rmse and r2.

Worked example (binary): labels [1, 0, 1, 1], probabilities [0.9, 0.2, 0.4, 0.8]
→ predicted [1, 0, 0, 1]: accuracy 0.75, precision 1.0, recall 0.667, f1 0.8, auc 1.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn import metrics as skm

PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")


@dataclass
class QualitySample:
    """Matched (label, prediction) pairs of one run, gathered record by record."""

    problem_type: str
    labels: list[Any] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    unmatched: int = 0  # captured predictions with no ground truth (yet)

    def add(self, label: Any, predictions: list[Any]) -> None:
        """Match one captured record's predictions with its ground-truth label(s)."""
        labels = label if isinstance(label, list) else [label]
        if len(labels) != len(predictions):
            self.unmatched += len(predictions)
            return
        self.labels += labels
        self.predictions += predictions

    def metrics(self) -> dict[str, Any]:
        """The problem type's metrics and `matched_records`; metrics None with no match."""
        result = compute_metrics(self.problem_type, self.labels, self.predictions)
        return {**result, "matched_records": len(self.labels), "unmatched_records": self.unmatched}


def compute_metrics(
    problem_type: str, labels: list[Any], predictions: list[Any]
) -> dict[str, float | None]:
    if problem_type == "regression":
        return _regression(labels, predictions)
    if problem_type == "binary_classification":
        return _binary(labels, predictions)
    if problem_type == "multiclass_classification":
        return _multiclass(labels, predictions)
    raise ValueError(f"unknown problem type {problem_type!r}; known: {PROBLEM_TYPES}")


def _regression(labels: list[Any], predictions: list[Any]) -> dict[str, float | None]:
    if not labels:
        return {"mae": None, "rmse": None, "r2": None}
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray([_scalar(x) for x in predictions], dtype=np.float64)
    return {
        "mae": float(skm.mean_absolute_error(y, p)),
        "rmse": float(math.sqrt(skm.mean_squared_error(y, p))),
        "r2": float(skm.r2_score(y, p)) if len(y) > 1 else None,
    }


def _binary(labels: list[Any], predictions: list[Any]) -> dict[str, float | None]:
    if not labels:
        return dict.fromkeys(("accuracy", "precision", "recall", "f1", "auc"))
    y = np.asarray([int(float(x)) for x in labels])
    scores = np.asarray(
        [x[-1] if isinstance(x, list) else _scalar(x) for x in predictions], dtype=np.float64
    )
    predicted = (scores >= 0.5).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "precision": float(skm.precision_score(y, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y, predicted, zero_division=0)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
        "auc": float(skm.roc_auc_score(y, scores)) if len(set(y.tolist())) == 2 else None,
    }


def _multiclass(labels: list[Any], predictions: list[Any]) -> dict[str, float | None]:
    if not labels:
        return dict.fromkeys(("accuracy", "precision", "recall", "f1", "auc"))
    y = np.asarray([_label(x) for x in labels])
    probabilities = all(isinstance(x, list) for x in predictions)
    if probabilities:
        scores = np.asarray(predictions, dtype=np.float64)
        predicted = scores.argmax(axis=1)
    else:
        scores = None
        predicted = np.asarray([_label(_scalar(x)) for x in predictions])
    auc = None
    if scores is not None and len(set(y.tolist())) == scores.shape[1] > 2:
        # One-vs-rest needs every class among the labels, and rows summing to 1.
        normalized = scores / scores.sum(axis=1, keepdims=True)
        auc = float(skm.roc_auc_score(y, normalized, multi_class="ovr"))
    return {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "precision": float(skm.precision_score(y, predicted, average="weighted", zero_division=0)),
        "recall": float(skm.recall_score(y, predicted, average="weighted", zero_division=0)),
        "f1": float(skm.f1_score(y, predicted, average="weighted", zero_division=0)),
        "auc": auc,
    }


def _scalar(value: Any) -> float:
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"expected one number per prediction, got {value!r}")
        value = value[0]
    return float(value)


def _label(value: Any) -> Any:
    """Class labels compare as ints when they are whole numbers ("2", 2.0 and 2 alike)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return int(number) if number.is_integer() else number


def parse_predictions(data: Any) -> list[Any]:
    """The predictions in one captured answer: `{"predictions": [...]}`, a JSON list,
    or CSV text (one prediction per line; a line of several numbers is a list)."""
    if isinstance(data, dict):
        found = data.get("predictions")
        return list(found) if isinstance(found, list) else [found]
    if isinstance(data, list):
        return data
    if isinstance(data, str):
        out: list[Any] = []
        for line in data.splitlines():
            if not line.strip():
                continue
            parts = [float(p) for p in line.split(",")]
            out.append(parts[0] if len(parts) == 1 else parts)
        return out
    return [data]

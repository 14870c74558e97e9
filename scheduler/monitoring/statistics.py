"""Per-feature statistics of a stream of rows, in SageMaker Model Monitor's statistics.json shape.

Rows arrive in blocks (a list of rows: lists of values by position, or dicts
by name); `Profile.add_rows` turns each block into columns and updates one
`FeatureStats` per feature. Nothing grows with the number of rows: counts and
moments are numbers, the distribution of a numeric feature is an Apache
DataSketches KLL sketch (k = 2048, about 0.1 % rank error, a few thousand
numbers whatever the row count), and a string feature keeps the counts of at
most `MAX_CATEGORIES` distinct values. So a million captured rows take the
memory of one block.

Types are inferred as Model Monitor does: a feature whose present values are
all whole numbers is `Integral`, all numbers `Fractional`, anything else
`String`; a feature with no present value is `Unknown`. Worked example, a
column of "3", "4.5", "", "x": 2 numbers (one of them whole), 1 string and
1 missing → inferred `String`, completeness 3/4 = 0.75.

Moments merge block by block with Chan et al.'s parallel formulas (the exact
mean and variance of the union, without keeping the rows): blocks of
(n=2, mean=1, M2=2) and (n=2, mean=3, M2=2) → n=4, mean=2, M2=2+2+4·(2·2/4)=8,
std_dev = sqrt(8/4) = 1.414 (population, as Model Monitor reports).
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from datasketches import kll_doubles_sketch

KLL_K = 2048
KLL_C = 2 / 3  # the compaction factor of DataSketches' KLL
BUCKETS = 10  # Model Monitor materializes a distribution in 10 buckets
MAX_CATEGORIES = 10_000
OTHER = "__other__"  # the bucket of string values beyond MAX_CATEGORIES
NUMBER = "__number__"  # the bucket of the numbers among a String feature's values


class Absent:
    """A column a row does not have at all (a short CSV line, a dict without the key)."""


ABSENT = Absent()


@dataclass(slots=True)
class Column:
    """One block's values of one feature, split by kind."""

    numbers: np.ndarray  # present numeric values, float64
    integral: int  # of those, whole numbers
    strings: list[str]
    missing: int  # empty, null or NaN (absent included)
    absent: int


def to_column(values: Sequence[Any]) -> Column:
    """Split a block's values of one feature into numbers, strings and missing.

    Fast path: the whole block converts to float64 at once (numpy parses numeric
    strings; None becomes NaN); otherwise value by value.

    >>> c = to_column(["3", "4.5", "", "x"])
    >>> (c.numbers.tolist(), c.integral, c.strings, c.missing)
    ([3.0, 4.5], 1, ['x'], 1)
    """
    try:
        numbers = np.asarray(values, dtype=np.float64)
        strings: list[str] = []
        absent = 0
    except (ValueError, TypeError):
        floats: list[float] = []
        strings = []
        absent = 0
        missing_slow = 0
        for value in values:
            if value is ABSENT:
                absent += 1
                missing_slow += 1
            elif value is None or value == "":
                missing_slow += 1
            elif isinstance(value, int | float):  # bool included
                floats.append(float(value))
            elif isinstance(value, str):
                try:
                    floats.append(float(value))
                except ValueError:
                    strings.append(value)
            else:
                strings.append(orjson.dumps(value).decode())
        numbers = np.asarray(floats, dtype=np.float64)
        nan = np.isnan(numbers)
        missing = missing_slow + int(nan.sum())
        numbers = numbers[~nan]
        return Column(numbers, _integral(numbers), strings, missing, absent)
    nan = np.isnan(numbers)
    present = numbers[~nan]
    return Column(present, _integral(present), strings, int(nan.sum()), absent)


def _integral(numbers: np.ndarray) -> int:
    finite = numbers[np.isfinite(numbers)]
    return int(np.count_nonzero(finite == np.floor(finite)))


@dataclass(slots=True)
class Moments:
    """Count, mean and sum of squared deviations (M2), mergeable (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        n_b = len(values)
        mean_b = float(np.mean(values))
        m2_b = float(np.sum((values - mean_b) ** 2))
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    @property
    def std_dev(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else 0.0


@dataclass
class FeatureStats:
    name: str
    num_present: int = 0
    num_missing: int = 0
    integral: int = 0  # present values that are whole numbers
    numeric: int = 0  # present values that are numbers (whole or not)
    strings: int = 0  # present values that are not numbers
    moments: Moments = field(default_factory=Moments)
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    sketch: kll_doubles_sketch = field(default_factory=lambda: kll_doubles_sketch(KLL_K))
    categories: Counter[str] = field(default_factory=Counter)

    def add(self, column: Column) -> None:
        numbers = column.numbers
        present = len(numbers) + len(column.strings)
        self.num_present += present
        self.num_missing += column.missing
        self.numeric += len(numbers)
        self.integral += column.integral
        self.strings += len(column.strings)
        finite = numbers[np.isfinite(numbers)]
        if len(finite):
            self.moments.add(finite)
            self.total += float(np.sum(finite))
            self.minimum = min(self.minimum, float(np.min(finite)))
            self.maximum = max(self.maximum, float(np.max(finite)))
            self.sketch.update(finite)
        if column.strings:
            for value in column.strings:
                if value in self.categories or len(self.categories) < MAX_CATEGORIES:
                    self.categories[value] += 1
                else:
                    self.categories[OTHER] += 1

    @property
    def inferred_type(self) -> str:
        """Integral, Fractional, String, or Unknown (no present value)."""
        if self.num_present == 0:
            return "Unknown"
        if self.strings:
            return "String"
        return "Integral" if self.integral == self.numeric else "Fractional"

    def string_counts(self) -> Counter[str]:
        """Every present value as a string: the distribution of a String feature."""
        counts = Counter(self.categories)
        if self.numeric:
            # The numbers of a String feature count together as one value.
            counts[NUMBER] += self.numeric
        return counts

    def to_json(self) -> dict[str, Any]:
        """This feature in statistics.json's shape (numerical or string statistics)."""
        common = {"num_present": self.num_present, "num_missing": self.num_missing}
        kind = self.inferred_type
        out: dict[str, Any] = {"name": self.name, "inferred_type": kind}
        if kind in ("Integral", "Fractional"):
            out["numerical_statistics"] = {
                "common": common,
                "mean": self.moments.mean,
                "sum": self.total,
                "std_dev": self.moments.std_dev,
                "min": self.minimum,
                "max": self.maximum,
                "distribution": {"kll": kll_json(self.sketch)},
            }
        else:
            counts = self.string_counts()
            out["string_statistics"] = {
                "common": common,
                "distinct_count": len(counts),
                "distribution": {
                    "categorical": {
                        "buckets": [
                            {"value": value, "count": count}
                            for value, count in counts.most_common()
                        ]
                    }
                },
            }
        return out


def kll_json(sketch: kll_doubles_sketch) -> dict[str, Any]:
    """`distribution.kll` of statistics.json: 10 equal-width buckets between min and max,
    the sketch's retained items by level (`data`, Model Monitor's shape), and the
    sketch itself (`serialized`, base64 DataSketches bytes) for exact comparisons."""
    if sketch.is_empty():
        return {"buckets": [], "sketch": {"parameters": {"c": KLL_C, "k": KLL_K}, "data": []}}
    low, high = sketch.get_min_value(), sketch.get_max_value()
    if high > low:
        edges = np.linspace(low, high, BUCKETS + 1)
        masses = sketch.get_pmf(edges[1:-1].tolist())
        buckets = [
            {
                "lower_bound": float(edges[i]),
                "upper_bound": float(edges[i + 1]),
                "count": m * sketch.n,
            }
            for i, m in enumerate(masses)
        ]
    else:
        buckets = [{"lower_bound": low, "upper_bound": high, "count": float(sketch.n)}]
    levels: dict[int, list[float]] = {}
    for item, weight in sketch:
        levels.setdefault(int(weight), []).append(float(item))
    return {
        "buckets": buckets,
        "sketch": {
            "parameters": {"c": KLL_C, "k": KLL_K},
            "data": [sorted(levels[w]) for w in sorted(levels)],
            "serialized": base64.b64encode(sketch.serialize()).decode(),
        },
    }


class Profile:
    """Statistics of a whole dataset, fed block by block.

    Positional rows take their names from `names` (the baseline's features in
    order), and `_c<i>` beyond them: Model Monitor's names for header-less CSV.
    """

    def __init__(self, names: Sequence[str] = ()) -> None:
        self.names = list(names)
        self.features: dict[str, FeatureStats] = {}
        self.item_count = 0  # rows

    def name_of(self, position: int) -> str:
        return self.names[position] if position < len(self.names) else f"_c{position}"

    def add_rows(self, rows: Sequence[Any]) -> None:
        """Add a block of rows: each a list of values, a dict by feature name, or a scalar."""
        if not rows:
            return
        columns: dict[str, Sequence[Any]] = {}
        first = rows[0]
        if isinstance(first, dict) and all(isinstance(r, dict) for r in rows):
            keys = dict.fromkeys(k for r in rows for k in r)
            columns = {str(k): [r.get(k, ABSENT) for r in rows] for k in keys}
        else:
            lists = [r if isinstance(r, list | tuple) else [r] for r in rows]
            width = max(len(r) for r in lists)
            if all(len(r) == width for r in lists):
                columns = {self.name_of(i): col for i, col in enumerate(zip(*lists, strict=True))}
            else:
                columns = {
                    self.name_of(i): [r[i] if i < len(r) else ABSENT for r in lists]
                    for i in range(width)
                }
        for name, values in columns.items():
            self._feature(name).add(to_column(values))
        # Rows without a column at all: missing for features seen before.
        for name, stats in self.features.items():
            if name not in columns:
                stats.num_missing += len(rows)
        self.item_count += len(rows)

    def _feature(self, name: str) -> FeatureStats:
        stats = self.features.get(name)
        if stats is None:
            stats = self.features[name] = FeatureStats(name)
            # Rows before this feature first appeared did not have it.
            stats.num_missing = self.item_count
        return stats

    def statistics_json(self) -> dict[str, Any]:
        """statistics.json: dataset item count and every feature's statistics."""
        return {
            "version": 0.0,
            "dataset": {"item_count": self.item_count},
            "features": [stats.to_json() for stats in self.features.values()],
        }

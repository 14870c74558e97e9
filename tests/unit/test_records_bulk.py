"""Bulk CSV parsing of transform chunks (pyarrow): the same rows as `np.loadtxt`, and every
chunk it does not take whole falls back to the exact paths, so failures stay per record.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from core.codecs import CSV
from core.records import _arrow_rows, parse_chunk


def csv_of(rows: np.ndarray) -> bytes:
    return (
        "\n".join(",".join(line) for line in np.char.mod("%.4g", rows).tolist()) + "\n"
    ).encode()


def test_bulk_rows_equal_loadtxts() -> None:
    rows = np.random.default_rng(3).normal(scale=1e3, size=(2000, 17)).astype(np.float32)
    data = csv_of(rows)
    bulk = _arrow_rows(data, 2000)
    assert bulk is not None and bulk.dtype == np.float32
    expected = np.loadtxt(io.BytesIO(data), delimiter=",", dtype=np.float32, ndmin=2)
    np.testing.assert_array_equal(bulk, expected)
    np.testing.assert_array_equal(parse_chunk(data, CSV, 17).rows, expected)


@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b"1,2,3\n4,,6\n", 2),  # an empty cell is no number, never a NaN
        (b"1,2,3\n4,5\n", 2),  # a ragged row
        (b"1,2,3\n4,5,6\n", 3),  # rows do not number the records
        (b"1,2 3,4\n", 1),  # a space inside a cell
    ],
)
def test_what_the_bulk_parser_does_not_take_whole_it_leaves(data: bytes, records: int) -> None:
    assert _arrow_rows(data, records) is None


def test_a_bad_record_still_fails_alone_with_its_reason() -> None:
    parsed = parse_chunk(b"1,2,3\n4,,6\n7,8,9\n", CSV, 3)
    assert parsed.failures == {1: "not a row of numbers: '4,,6'"}
    np.testing.assert_array_equal(parsed.rows, np.asarray([[1, 2, 3], [7, 8, 9]], np.float32))


def test_a_value_float32_cannot_hold_still_fails_its_record() -> None:
    parsed = parse_chunk(b"1,2\n1e39,2\n3,4\n", CSV, 2)
    assert list(parsed.failures) == [1] and "outside float32's range" in parsed.failures[1]
    assert parsed.rows.shape == (2, 2)

"""Bulk parsing of transform chunks — CSV by pyarrow, JSON Lines with the checks over all
values at once: the same rows as the record-by-record paths, and every chunk the bulk path
does not take whole falls back to the exact paths, so failures stay per record.
"""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import records
from core.codecs import CSV
from core.records import JSON_LINES, _arrow_rows, _jsonl_rows, parse_chunk


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


# --- JSON Lines -------------------------------------------------------------------------


def test_json_lines_bulk_rows_equal_the_record_by_record_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = np.random.default_rng(5).normal(scale=1e3, size=(500, 9)).round(3)
    lines = [orjson.dumps(row) for row in rows.tolist()]
    lines[7] = orjson.dumps({"id": "x", "features": rows[7].tolist()})  # objects mix in
    lines[8] = b"[1, 2, 3, 4, 5, 6, 7, 8, 9]"  # ints too
    data = b"\n".join(lines) + b"\n"
    assert _jsonl_rows(lines) is not None
    bulk = parse_chunk(data, JSON_LINES, 9)
    monkeypatch.setattr(records, "_jsonl_rows", lambda texts: None)
    exact = parse_chunk(data, JSON_LINES, 9)
    assert bulk.rows.dtype == np.float32 and bulk.failures == exact.failures == {}
    np.testing.assert_array_equal(bulk.rows, exact.rows)
    assert bulk.row_of == exact.row_of


@pytest.mark.parametrize(
    "lines",
    [
        [b"[1, 2]", b"[3, true]"],  # a bool is not a number here
        [b"[1, 2]", b'[3, "4"]'],  # nor a string
        [b"[1, 2]", b"[3]"],  # a ragged row
        [b"[1, 2]", b"[3, 4"],  # not JSON
        [b"[1, 2]", b"7"],  # not an array
        [b'{"features": [1, 2]}', b'{"id": 3}'],  # an object without features
        [b"[1, [2]]", b"[3, [4]]"],  # nested
    ],
)
def test_what_the_json_lines_bulk_path_does_not_take_whole_it_leaves(
    lines: list[bytes],
) -> None:
    assert _jsonl_rows(lines) is None


JSON_TOKENS = ["1", "-2.5", "3e4", "true", '"5"', "null", "[1]", "1e39", ".5", "01"]


@given(
    lines=st.lists(
        st.one_of(
            st.lists(st.sampled_from(JSON_TOKENS), min_size=2, max_size=2).map(
                lambda cells: "[" + ",".join(cells) + "]"
            ),
            st.lists(st.sampled_from(JSON_TOKENS), min_size=2, max_size=2).map(
                lambda cells: '{"features": [' + ",".join(cells) + "]}"
            ),
            st.sampled_from(["[1, 2", "7", "{}", "[1, 2, 3]"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_json_lines_chunks_and_their_lines_one_by_one_agree(lines: list[str]) -> None:
    """Bulk or not, a chunk accepts and refuses the same records, for the same reasons."""
    data = ("\n".join(lines) + "\n").encode()
    together = parse_chunk(data, JSON_LINES, 2)
    good = 0
    for record, line in enumerate(lines):
        alone = parse_chunk((line + "\n").encode(), JSON_LINES, 2)
        assert together.failures.get(record) == alone.failures.get(0), line
        if alone.row_of[0] >= 0:
            np.testing.assert_array_equal(together.rows[together.row_of[record]], alone.rows[0])
            good += 1
    assert len(together.rows) == good

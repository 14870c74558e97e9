"""Records of batch transform: parsing lines into rows, and the output and error lines."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.records import (
    count_record_lines,
    error_line,
    failure_line,
    output_line,
    parse_chunk,
    render_chunk,
    split_lines,
)

CSV, JSONL = "text/csv", "application/jsonlines"


def test_split_lines_drops_the_final_newline_and_carriage_returns() -> None:
    assert split_lines(b"a\r\nb\n\nc") == [b"a", b"b", b"", b"c"]
    assert split_lines(b"a\n") == [b"a"]
    assert split_lines(b"") == []


def test_csv_rows_parse_at_once_when_all_are_good() -> None:
    parsed = parse_chunk(b"1,2\n\n3.5,-4\n", CSV, None)
    assert parsed.records == 2 and parsed.row_of == [0, 1] and not parsed.failures
    np.testing.assert_array_equal(parsed.rows, [[1, 2], [3.5, -4]])
    assert parsed.rows.dtype == np.float32


def test_a_bad_csv_record_fails_alone_with_a_reason() -> None:
    parsed = parse_chunk(b"1,2\n3,x\n5,6\n7\n", CSV, None)
    assert parsed.row_of == [0, -1, 1, -1]
    np.testing.assert_array_equal(parsed.rows, [[1, 2], [5, 6]])
    assert parsed.failures == {
        1: "not a row of numbers: '3,x'",
        3: "the record has 1 features; the first record of its chunk has 2",
    }


def test_the_models_feature_count_wins() -> None:
    parsed = parse_chunk(b"1,2\n3,4\n", CSV, 3)
    assert parsed.rows.shape == (0, 3)
    assert set(parsed.failures.values()) == {"the record has 2 features; the model expects 3"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{bad", "not valid JSON"),
        (b'"text"', 'expected an array of numbers or an object with a "features" array'),
        (b"[1, true]", "expected an array of numbers"),
        (b'{"features": [1, "2"]}', "expected an array of numbers"),
        (b'{"x": [1, 2]}', "expected an array of numbers"),
    ],
)
def test_json_lines_records_that_are_not_rows(line: bytes, reason: str) -> None:
    parsed = parse_chunk(b"[1, 2]\n" + line + b"\n", JSONL, None)
    assert parsed.row_of == [0, -1]
    assert reason in parsed.failures[1]


def test_json_lines_take_arrays_and_objects_with_features() -> None:
    parsed = parse_chunk(b'[1, 2.5]\n{"id": "a", "features": [3, 4]}\n', JSONL, 2)
    np.testing.assert_array_equal(parsed.rows, [[1, 2.5], [3, 4]])


def test_render_keeps_one_line_per_input_line_with_failures_and_blanks() -> None:
    parsed = parse_chunk(b"1,2\n\nx\n3,4\n5,6\n", CSV, 2)
    parsed.fail_rows({2: "the model raised ValueError: no"})
    out, errors = render_chunk(
        parsed, [0.5, [0.25, 0.75], None], content_type=CSV, join_source="none", first_line=10
    )
    assert out == b"0.5\n\n\n0.25,0.75\n\n"
    assert errors == (b"12\tnot a row of numbers: 'x'\n14\tthe model raised ValueError: no\n")


def test_render_of_a_chunk_without_lines_is_empty() -> None:
    assert render_chunk(
        parse_chunk(b"", CSV, None), [], content_type=CSV, join_source="none", first_line=1
    ) == (b"", b"")


@pytest.mark.parametrize(
    ("content_type", "join", "line", "prediction", "expected"),
    [
        (CSV, "none", b"1,2", 0.5, b"0.5"),
        (CSV, "none", b"1,2", [1, 0.5], b"1,0.5"),
        (CSV, "input", b"1,2", 0.5, b"1,2,0.5"),
        (JSONL, "none", b"[1,2]", [0.1, 0.9], b"[0.1,0.9]"),
        (
            JSONL,
            "input",
            b'{"id": 7, "features": [1,2]}',
            0.5,
            b'{"id": 7, "features": [1,2],"prediction":0.5}',
        ),
        (JSONL, "input", b"[1,2]", 0.5, b'{"features":[1,2],"prediction":0.5}'),
    ],
)
def test_output_line(
    content_type: str, join: str, line: bytes, prediction: object, expected: bytes
) -> None:
    assert output_line(content_type, join, line, prediction) == expected


def test_failure_lines_keep_their_place() -> None:
    assert failure_line(CSV, "none", b"1,x", "bad") == b""
    assert failure_line(CSV, "input", b"1,x", "bad") == b"1,x,"
    assert failure_line(CSV, "input", None, "too big") == b""
    assert failure_line(JSONL, "none", b"{", "bad") == b"null"
    assert orjson.loads(failure_line(JSONL, "input", b'{"features": [1]}', "width")) == {
        "features": [1],
        "prediction": None,
        "error": "width",
    }
    assert orjson.loads(failure_line(JSONL, "input", b"{oops", "bad json")) == {
        "input": "{oops",
        "prediction": None,
        "error": "bad json",
    }
    assert orjson.loads(failure_line(JSONL, "input", None, "too big")) == {
        "prediction": None,
        "error": "too big",
    }


def test_error_lines_are_one_line_each() -> None:
    assert error_line(7, "a\tb\nc") == b"7\ta b c"


@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b"", 0),
        (b"1\n\n \n2", 2),
        (b"\n\n", 0),
        (b" \t\r\n1\n", 1),
        (b"1\n  ", 1),
        (b"1", 1),
        (b"1\n2\n", 2),
    ],
)
def test_count_record_lines(data: bytes, records: int) -> None:
    assert count_record_lines(data, 0, len(data)) == records
    assert records == sum(1 for line in split_lines(data) if line.strip())


# --- the numbers a record holds: the rules of the realtime payloads ------------------------


@pytest.mark.parametrize("cell", [b"nan", b"inf", b"-Infinity", b"1_000", b"\xd9\xa1"])
def test_csv_records_take_only_decimal_numbers(cell: bytes) -> None:
    """Regression: transform CSV parsed with numpy's loadtxt and float(), which take nan,
    inf and 1_000; realtime JSON cannot carry them. Such a record now fails alone."""
    parsed = parse_chunk(b"1,2\n3," + cell + b"\n5,6\n", CSV, None)
    assert parsed.row_of == [0, -1, 1]
    assert parsed.failures[1].startswith("not a row of numbers")
    np.testing.assert_array_equal(parsed.rows, [[1, 2], [5, 6]])


TOKENS = ["1", "-2.5", "3e4", ".5", "5.", "+1", " 7 ", "nan", "inf", "1_0", "x", "", "1e", "--1"]


@given(lines=st.lists(st.lists(st.sampled_from(TOKENS), min_size=2, max_size=2), min_size=1))
def test_a_chunk_and_its_lines_one_by_one_accept_the_same_records(
    lines: list[list[str]],
) -> None:
    """The whole-chunk fast path (loadtxt) and the record-by-record path agree."""
    data = "".join(",".join(cells) + "\n" for cells in lines).encode()
    together = parse_chunk(data, CSV, 2)
    for record, cells in enumerate(lines):
        alone = parse_chunk((",".join(cells) + "\n").encode(), CSV, 2)
        assert (together.row_of[record] >= 0) == (alone.row_of[0] >= 0), cells


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (b"1,2\n1e39,2\n3,4\n", CSV, "column 1: 1e39 is outside float32's range"),
        (b"1,2\n1, -3.5e38\n3,4\n", CSV, "column 2: -3.5e38 is outside float32's range"),
        (b'[1, 2]\n{"features": [1, 1e39]}\n[3, 4]\n', JSONL, "feature 1: 1e+39 is outside"),
    ],
    ids=["csv", "csv-negative", "jsonl"],
)
def test_a_value_float32_cannot_hold_fails_its_record_alone(
    data: bytes, content_type: str, reason: str
) -> None:
    """Regression: such values became inf in the float32 rows without a word."""
    parsed = parse_chunk(data, content_type, 2)
    assert parsed.row_of == [0, -1, 1]
    assert parsed.failures[1].startswith(reason)
    np.testing.assert_array_equal(parsed.rows, [[1, 2], [3, 4]])


def test_non_finite_predictions_are_written_by_name_never_as_a_failure() -> None:
    parsed = parse_chunk(b"1,2\n3,4\n5,6\n", CSV, 2)
    predictions = [float("nan"), float("inf"), [float("-inf"), 1.0]]
    out, errors = render_chunk(
        parsed, predictions, content_type=CSV, join_source="none", first_line=1
    )
    assert (out, errors) == (b"NaN\nInfinity\n-Infinity,1.0\n", b"")
    parsed = parse_chunk(b"[1,2]\n[3,4]\n", JSONL, 2)
    out, _ = render_chunk(
        parsed, [float("nan"), 0.5], content_type=JSONL, join_source="none", first_line=1
    )
    assert out == b'"NaN"\n0.5\n'
    assert output_line(JSONL, "input", b"[1,2]", float("inf")) == (
        b'{"features":[1,2],"prediction":"Infinity"}'
    )

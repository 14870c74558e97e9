"""Payload codecs: JSON/CSV bodies to rows, predictions back to bytes, content negotiation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core import codecs
from core.codecs import CSV, JSON
from core.errors import BadRequest, InvalidInput, UnsupportedMediaType

# --- media_type ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("application/json", JSON),
        ("application/json; charset=utf-8", JSON),
        ("  Text/CSV ;header=absent", CSV),
        ("APPLICATION/JSON", JSON),
        ("text/plain", "text/plain"),
        ("application/x-npy; q=1", "application/x-npy"),
    ],
)
def test_media_type_strips_parameters_and_case(header: str | None, expected: str) -> None:
    assert codecs.media_type(header) == expected


@pytest.mark.parametrize("content_type", [JSON, CSV])
def test_check_supported_accepts_json_and_csv(content_type: str) -> None:
    codecs.check_supported(content_type)


def test_check_supported_names_the_refused_type() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        codecs.check_supported("text/plain")
    assert "'text/plain'" in caught.value.detail
    assert caught.value.status == 415


# --- decode_instances: JSON ---------------------------------------------------


def test_json_instances_are_returned_as_sent() -> None:
    body = orjson.dumps({"instances": [[1, 2.5], [3, -4]]})
    assert codecs.decode_instances(body, JSON) == [[1, 2.5], [3, -4]]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"instances": [[1, 2]', b"", b"NaN", b'{"instances": [[1e400]]}'],
    ids=["garbage", "truncated", "empty", "nan", "infinite"],
)
def test_malformed_json_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        codecs.decode_instances(body, JSON)
    assert caught.value.status == 400
    assert "malformed JSON" in caught.value.detail


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ([[1, 2]], '{"instances"'),
        ("instances", '{"instances"'),
        (42, '{"instances"'),
        ({"rows": [[1, 2]]}, '{"instances"'),
        ({"instances": "1,2"}, "got str"),
        ({"instances": {"a": 1}}, "got dict"),
        ({"instances": None}, "got NoneType"),
    ],
    ids=["list", "string", "number", "no-instances", "str", "dict", "null"],
)
def test_json_that_is_not_an_instances_object_is_invalid(doc: Any, named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        codecs.decode_instances(orjson.dumps(doc), JSON)
    assert caught.value.status == 422
    assert named in caught.value.detail


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"instances": []}', JSON),
        (b"", CSV),
        (b"\n \n\n", CSV),
    ],
    ids=["json-empty-list", "csv-empty", "csv-blank-lines"],
)
def test_a_payload_without_instances_is_invalid(body: bytes, content_type: str) -> None:
    with pytest.raises(InvalidInput, match="no instances"):
        codecs.decode_instances(body, content_type)
    with pytest.raises(InvalidInput, match="no instances"):
        codecs.decode_numeric(body, content_type, dtype="float32")


# --- decode_instances: CSV ----------------------------------------------------


def test_csv_lines_become_rows_of_floats_and_blank_lines_are_skipped() -> None:
    body = b"1,2,3\n\n4.5,-6,7e2\r\n 8 , 9 ,10\n"
    assert codecs.decode_instances(body, CSV) == [
        [1.0, 2.0, 3.0],
        [4.5, -6.0, 700.0],
        [8.0, 9.0, 10.0],
    ]


@pytest.mark.parametrize(
    ("body", "line", "shown"),
    [
        (b"1,2\n3,x\n", 2, "'3,x'"),
        (b"a,b\n1,2\n", 1, "'a,b'"),
        (b"1,2\n\n\n1,,2\n", 4, "'1,,2'"),
        (b"1,2\n3;4\n", 2, "'3;4'"),
    ],
    ids=["letter", "header-row", "empty-cell-after-blank-lines", "wrong-separator"],
)
def test_csv_non_numeric_line_is_named_by_its_number(body: bytes, line: int, shown: str) -> None:
    """The number counts every line of the body, blank ones included."""
    with pytest.raises(InvalidInput) as caught:
        codecs.decode_instances(body, CSV)
    assert f"CSV line {line} " in caught.value.detail
    assert shown in caught.value.detail


def test_csv_that_is_not_utf8_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="not UTF-8"):
        codecs.decode_instances(b"1,2\n\xff\xfe,3\n", CSV)


def test_decode_of_an_unsupported_type_is_415() -> None:
    with pytest.raises(UnsupportedMediaType, match="text/plain"):
        codecs.decode_instances(b"1,2", "text/plain")


# --- numeric_rows ---------------------------------------------------------------


def test_numeric_rows_accepts_a_rectangle_of_ints_and_floats() -> None:
    rows = [[1, 2.5, -3], [0, 1e-9, 7]]
    assert codecs.numeric_rows(rows) == rows


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1, 2], [3, 4], [5]], "instance 2 has 1 features, instance 0 has 2"),
        ([[1], [2, 3]], "instance 1 has 2 features, instance 0 has 1"),
        ([[1, 2], [3, "4"]], "instance 1 is not a list of numbers"),
        ([[1, 2], [3, None]], "instance 1 is not a list of numbers"),
        ([[True, 2]], "instance 0 is not a list of numbers"),
        ([[1, 2], [3, [4]]], "instance 1 is not a list of numbers"),
        ([5, 6], "instance 0 is not a list of numbers"),
        ([[1, 2], {"a": 1}], "instance 1 is not a list of numbers"),
    ],
    ids=["ragged-short", "ragged-long", "string", "null", "bool", "nested", "scalar", "dict"],
)
def test_numeric_rows_names_the_first_offender(rows: list[Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        codecs.numeric_rows(rows)
    assert message in caught.value.detail


# --- encode_predictions ---------------------------------------------------------


@pytest.mark.parametrize(
    "predictions",
    [[0.25, 0.75], [[0.1, 0.9], [0.8, 0.2]], [1, 0, 1], ["cat", "dog"]],
    ids=["floats", "vectors", "ints", "labels"],
)
def test_encode_json_wraps_predictions(predictions: list[Any]) -> None:
    body, content_type = codecs.encode_predictions(predictions, JSON)
    assert content_type == JSON
    assert orjson.loads(body) == {"predictions": predictions}


def test_encode_json_serializes_numpy_values() -> None:
    body, _ = codecs.encode_predictions([np.array([0.5, 1.5]), np.array([2.0, 3.0])], JSON)
    assert orjson.loads(body) == {"predictions": [[0.5, 1.5], [2.0, 3.0]]}


@pytest.mark.parametrize(
    ("predictions", "expected"),
    [
        ([0.25, 0.1, 2.0], "0.25\n0.1\n2.0\n"),
        ([[0.1, 0.9], [1.0, 0.0]], "0.1,0.9\n1.0,0.0\n"),
        ([1, 0, 3], "1\n0\n3\n"),
        ([0.30000001192092896], "0.30000001192092896\n"),
    ],
    ids=["scalars", "vectors", "ints", "full-float-precision"],
)
def test_encode_csv_writes_one_line_per_prediction(predictions: list[Any], expected: str) -> None:
    body, content_type = codecs.encode_predictions(predictions, CSV)
    assert content_type == CSV
    assert body.decode() == expected


def test_csv_round_trip_keeps_the_values() -> None:
    predictions = [[0.123456789, -1.5], [3.0, 1e-12]]
    body, _ = codecs.encode_predictions(predictions, CSV)
    assert codecs.decode_instances(body, CSV) == predictions


# --- response_type --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "accept", "expected"),
    [
        (JSON, None, JSON),
        (CSV, None, CSV),
        (CSV, "application/json", JSON),
        (CSV, "application/json; charset=utf-8", JSON),
        (JSON, "text/csv", CSV),
        (CSV, "*/*", CSV),
        (JSON, "*/*", JSON),
        (JSON, "text/html", JSON),
        (CSV, "", CSV),
        ("application/x-custom", None, JSON),
        ("application/x-custom", "text/csv", CSV),
    ],
)
def test_response_type_follows_the_input_unless_accept_names_a_supported_type(
    content_type: str, accept: str | None, expected: str
) -> None:
    assert codecs.response_type(content_type, accept) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json, text/plain;q=0.5", JSON),
        ("text/html, application/json;q=0.9", JSON),
    ],
)
def test_response_type_reads_an_accept_list(accept: str, expected: str) -> None:
    """Regression: an Accept header is a list (RFC 9110 §12.5.1); a CSV request whose
    Accept lists application/json among other types got CSV back, because the whole
    header was read as one media type."""
    assert codecs.response_type(CSV, accept) == expected


# --- the numbers a model takes: the same rules for JSON and CSV -------------------------


@pytest.mark.parametrize(
    "cell",
    ["nan", "NaN", "inf", "-inf", "Infinity", "1_000", "0x10", "\u0661\u0662", "1e", "--1", ""],
    ids=[
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "underscore",
        "hex",
        "arabic-digits",
        "bare-exponent",
        "double-sign",
        "empty",
    ],
)
def test_csv_takes_only_what_json_can_write(cell: str) -> None:
    """Regression: CSV cells went through float(), which takes nan, inf, 1_000 and
    non-ASCII digits, while a JSON body cannot hold NaN or Infinity at all."""
    body = f"1,2\n3,{cell}\n".encode()
    with pytest.raises(InvalidInput) as caught:
        codecs.decode_instances(body, CSV)
    assert "CSV line 2 is not all numbers" in caught.value.detail


@pytest.mark.parametrize(
    ("cell", "value"),
    [("1e5", 1e5), ("+1", 1.0), (".5", 0.5), ("5.", 5.0), (" -2.5 ", -2.5), ("\t3E-2", 0.03)],
)
def test_csv_takes_every_decimal_number_form(cell: str, value: float) -> None:
    assert codecs.decode_instances(f"0,{cell}\n".encode(), CSV) == [[0.0, value]]


def test_a_leading_byte_order_mark_is_skipped_in_csv() -> None:
    """Regression: a UTF-8 BOM at the start of a CSV body failed line 1
    ("'\\ufeff1,2,3,4' is not all numbers")."""
    body = b"\xef\xbb\xbf1,2,3,4\n5,6,7,8\n"
    assert codecs.decode_instances(body, CSV) == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    assert codecs.decode_numeric(body, CSV, dtype="float32") == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert codecs.blank_lines(b"\xef\xbb\xbf\n1,2\n") == (0,)


@pytest.mark.parametrize(
    ("body", "content_type", "named"),
    [
        (b'{"instances": [[1e39, 1, 1, 1], [1, 2, 3, 4]]}', JSON, "instance 0, feature 0: 1e+39"),
        (b'{"instances": [[1, 2, 3, 4], [1, 2, -3.5e38, 4]]}', JSON, "instance 1, feature 2"),
        (b'{"instances": [[340282366920938463463374607431768211456]]}', JSON, "feature 0"),
        (b"1,2,3,4\n1,1e39,1,1\n", CSV, "CSV line 2, column 2: 1e+39"),
    ],
    ids=["json", "json-negative", "json-huge-int", "csv"],
)
def test_a_value_float32_cannot_hold_is_a_422_naming_where(
    body: bytes, content_type: str, named: str
) -> None:
    """Regression: 1e39 to a float32 model became inf without a word, and the
    answer was {"predictions": [null, 10.0]}."""
    with pytest.raises(InvalidInput) as caught:
        codecs.decode_numeric(body, content_type, dtype="float32")
    assert named in caught.value.detail
    assert "outside float32's range" in caught.value.detail


def test_the_float32_limit_is_where_numpy_rounds_to_infinity() -> None:
    largest = 3.4028235e38  # float32's largest value, as printed: it rounds to it, not up
    just_over = codecs.INPUT_LIMITS["float32"]
    with np.errstate(over="ignore"):
        assert np.isfinite(np.float32(largest)) and not np.isfinite(np.float32(just_over))
    ok = orjson.dumps({"instances": [[largest, -largest]]})
    assert codecs.decode_numeric(ok, JSON, dtype="float32") == [[largest, -largest]]
    with pytest.raises(InvalidInput):
        codecs.decode_numeric(orjson.dumps({"instances": [[just_over]]}), JSON, dtype="float32")


LIMIT = codecs.INPUT_LIMITS["float32"]


@given(
    rows=st.lists(
        st.lists(
            st.one_of(
                st.floats(min_value=-4e38, max_value=4e38),
                st.sampled_from([LIMIT, -LIMIT, math.nextafter(LIMIT, 0), 3.4028235e38]),
            ),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=4,
    )
)
@example(rows=[[math.nextafter(LIMIT, 0)] * 3])  # the largest double that still fits, thrice
@example(rows=[[3.4e38] * 3, [1.0, 2.0, LIMIT]])
def test_the_api_check_refuses_exactly_what_float32_cannot_hold(rows: list[list[float]]) -> None:
    """The per-row hypot shortcut never lets through a value numpy would turn into inf,
    and never refuses one it keeps."""
    with np.errstate(over="ignore"):
        fits = bool(np.isfinite(np.asarray(rows, dtype=np.float32)).all())
    body = orjson.dumps({"instances": rows})
    try:
        codecs.decode_numeric(body, JSON, dtype="float32")
        accepted = True
    except InvalidInput:
        accepted = False
    assert accepted is fits


@pytest.mark.parametrize(
    "body",
    [b'{"instances": [[1, true]]}', b'{"instances": [[false, 1]], "note": "x"}'],
)
def test_decode_numeric_still_refuses_booleans(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="instance 0 is not a list of numbers"):
        codecs.decode_numeric(body, JSON, dtype="float32")


@pytest.mark.parametrize(
    "instances",
    [[[1, "2"]], [[1, None]], [[1, [2]]], [[1, {"a": 1}]], [5]],
    ids=["string", "null", "nested", "object", "scalar"],
)
def test_decode_numeric_names_a_non_number(instances: list[Any]) -> None:
    with pytest.raises(InvalidInput, match="instance 0 is not a list of numbers"):
        codecs.decode_numeric(orjson.dumps({"instances": instances}), JSON, dtype="float32")


# --- blank lines: the same rule as batch transform ---------------------------------------


def test_a_csv_answer_keeps_the_requests_blank_lines() -> None:
    """Regression: realtime CSV dropped blank lines, so answer line N no longer
    answered request line N, while a transform keeps one output line per input line."""
    body = b"1,2\n\n3,4\n \t\n5,6\n"
    assert codecs.decode_instances(body, CSV) == [[1, 2], [3, 4], [5, 6]]
    blanks = codecs.blank_lines(body)
    assert blanks == (1, 3)
    answer, _ = codecs.encode_predictions([0.5, 1.5, 2.5], CSV, blank_lines=blanks)
    assert answer == b"0.5\n\n1.5\n\n2.5\n"
    as_json, _ = codecs.encode_predictions([0.5, 1.5, 2.5], JSON, blank_lines=blanks)
    assert orjson.loads(as_json) == {"predictions": [0.5, 1.5, 2.5]}


def test_a_body_without_blank_lines_has_none() -> None:
    assert codecs.blank_lines(b"1,2\r\n3,4") == ()


# --- predictions that are not finite --------------------------------------------------------


def test_non_finite_predictions_are_named_in_json_not_nulled() -> None:
    """Regression: NaN and infinite predictions were written as null, which says
    neither which it was nor that it was not a failure."""
    nan, inf = float("nan"), float("inf")
    body, _ = codecs.encode_predictions([nan, 10.0, -inf, [inf, 1.0]], JSON)
    assert body == b'{"predictions":["NaN",10.0,"-Infinity",["Infinity",1.0]]}'
    array, _ = codecs.encode_predictions([np.array([np.nan, 1.0], dtype=np.float32)], JSON)
    assert orjson.loads(array) == {"predictions": [["NaN", 1.0]]}
    labels, _ = codecs.encode_predictions([None, "null", 1.0], JSON)
    assert orjson.loads(labels) == {"predictions": [None, "null", 1.0]}


def test_non_finite_predictions_use_the_same_words_in_csv() -> None:
    nan, inf = float("nan"), float("inf")
    body, _ = codecs.encode_predictions([nan, 10.0, -inf, [inf, 1.0], np.float32("nan")], CSV)
    assert body == b"NaN\n10.0\n-Infinity\nInfinity,1.0\nNaN\n"
    assert [float(v) for v in body.decode().replace(",", "\n").split()][1] == 10.0


def test_decode_numeric_names_a_short_csv_line() -> None:
    with pytest.raises(InvalidInput, match="instance 1 has 1 features, instance 0 has 2"):
        codecs.decode_numeric(b"1,2\n\n3\n", CSV, dtype="float32")


@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(),
            st.lists(st.floats(), max_size=3),
            st.text(max_size=3),
        ),
        max_size=20,
    )
)
def test_csv_lines_write_every_prediction_as_csv_line_does(predictions: list[object]) -> None:
    """The one-pass path for flat finite floats writes the same text as the general one."""
    assert codecs.csv_lines(predictions) == [codecs.csv_line(p) for p in predictions]
    floats = [float(i) / 7 for i in range(50)] + [1e-5, -2.5e300]
    assert codecs.csv_lines(floats) == [codecs.csv_line(p) for p in floats]

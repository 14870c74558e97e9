"""Payload codecs: JSON/CSV bodies to rows, predictions back to bytes, content negotiation."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

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

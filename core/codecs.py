"""Payload codecs: request bodies to rows of instances, predictions back to bytes.

`application/json`: `{"instances": [row, ...]}` → `{"predictions": [p, ...]}`.
`text/csv`: one instance per line, no header → one prediction per line.
Both the API (to reject bad input before it is queued) and workers use these;
batch transform's records (core/records.py) follow the same rules.

Numbers in, JSON and CSV alike: finite decimal numbers only. JSON has no NaN
or Infinity literal, so CSV takes none either: a CSV cell is
`[+-]digits[.digits][e[+-]digits]`, spaces or tabs around it allowed; `nan`,
`inf`, `1_000` and non-ASCII digits, all of which Python's `float()` reads, are
a 422 naming the line. Values must also fit the model's input type. The
built-in runners feed float32, whose largest magnitude is 3.4028235e38: from
2^128 - 2^103 (about 3.40282357e38) up a value would turn into infinity, so
`1e39` is a 422 naming `instance 0, feature 0` (JSON, counted from 0) or
`CSV line 1, column 1`.

CSV lines follow the rules of batch transform's records: a line ends at `\\n`
(a trailing `\\r` is dropped), a UTF-8 byte-order mark at the very start is
skipped, and a line of only spaces and tabs is blank — not an instance. In a
CSV answer a blank line is answered by an empty line, so line N of the answer
answers line N of the request (as batch transform's outputs do); a JSON answer
lists one prediction per instance.

Predictions out: NaN and ±infinity are written `"NaN"`, `"Infinity"` and
`"-Infinity"` — JSON strings in JSON (the proto3 JSON mapping's spelling, so
the document stays valid JSON and `null` keeps meaning "no prediction"), the
same words in CSV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Never

import orjson

from core.errors import BadRequest, InvalidInput, UnsupportedMediaType

JSON = "application/json"
CSV = "text/csv"
SUPPORTED_TYPES = (JSON, CSV)
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark, as spreadsheet programs write it

# Per input type, the smallest magnitude that no longer fits: it rounds to
# infinity (float32: halfway between its largest value 2^128 - 2^104 and 2^128).
INPUT_LIMITS = {"float16": 65520.0, "float32": 2.0**128 - 2.0**103, "float64": math.inf}
LARGEST = {"float16": 65504.0, "float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308}

# Every byte a line of decimal numbers may hold: with these alone, float() takes
# exactly [+-]digits[.digits][e[+-]digits] (it would also take nan, inf, 1_000).
_CSV_BYTES = b"0123456789.eE+- \t,"
_NONFINITE_TEXT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_U, _F = ord("u"), ord("f")  # `int in bytes` is a bare memchr; `b"u" in bytes` costs 6x more


def media_type(header: str | None) -> str:
    """`application/json; charset=utf-8` → `application/json`; missing → JSON."""
    if not header:
        return JSON
    return header.split(";", 1)[0].strip().lower()


def check_supported(content_type: str) -> None:
    if content_type not in SUPPORTED_TYPES:
        raise UnsupportedMediaType(
            f"content type {content_type!r} is not supported; use one of {list(SUPPORTED_TYPES)}"
        )


def decode_instances(body: bytes, content_type: str) -> list[Any]:
    """Rows of a JSON or CSV payload; BadRequest if malformed, InvalidInput if empty.

    JSON instances come back as sent (any values: custom handlers take them);
    CSV lines become lists of floats (`_csv_rows`).
    """
    if content_type == JSON:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON body: {exc}") from exc
        if not isinstance(doc, dict) or "instances" not in doc:
            raise InvalidInput('a JSON body must be an object {"instances": [row, ...]}')
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise InvalidInput(f'"instances" must be a list, got {type(instances).__name__}')
    elif content_type == CSV:
        instances = _csv_rows(body, None)
    else:
        check_supported(content_type)
        raise AssertionError("unreachable")
    if not instances:
        raise InvalidInput("the payload holds no instances")
    return instances


def decode_numeric(body: bytes, content_type: str, *, dtype: str) -> list[list[float]]:
    """Rows of numbers a model whose input type is `dtype` can take, or a 4xx naming the first
    offender: the API's check before queuing and the worker's parse, so both refuse alike.

    Costs about what checking the value types alone did: one `math.hypot(*row)`
    per row (~1.7 µs for 256 values) both refuses anything but numbers (TypeError)
    and bounds the row's largest magnitude (hypot >= max |x|), so only a row near
    the limit is looked at value by value.
    """
    check_supported(content_type)
    if content_type == CSV:
        rows = _csv_rows(body, dtype)  # floats in range already: only the widths are left
        if not rows:
            raise InvalidInput("the payload holds no instances")
        return _same_width(rows)
    instances = decode_instances(body, JSON)
    # Booleans, which hypot takes for 0 and 1, come only from the literals true and
    # false; no number and not the "instances" key holds a "u" or an "f", so a body
    # without either byte (one memchr each) needs no per-value type check.
    return numeric_rows(instances, dtype=dtype, exact_types=_U in body or _F in body)


def split_lines(data: bytes) -> list[bytes]:
    """The lines of CSV or JSON Lines bytes, without their `\\n` (or `\\r\\n`).

    `b"a\\r\\nb\\n\\nc"` → `[b"a", b"b", b"", b"c"]`; a final newline ends the last line.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if b"\r" in data:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    return lines


def strip_bom(data: bytes) -> bytes:
    """Data without a leading UTF-8 byte-order mark (only at byte 0, as CSV readers do)."""
    return data[len(BOM) :] if data.startswith(BOM) else data


def is_blank(line: bytes) -> bool:
    """A line of only spaces, tabs and `\\r`: not an instance (nor a transform record)."""
    return not line.strip(b" \t\r")


def blank_lines(body: bytes) -> tuple[int, ...]:
    """Where a CSV body's blank lines are (counted from 0): its CSV answer keeps them empty.

    `b"1,2\\n\\n3,4\\n"` → `(1,)`; the answer is `p1\\n\\np2\\n`.
    """
    return tuple(i for i, line in enumerate(split_lines(strip_bom(body))) if is_blank(line))


def csv_cells(line: bytes) -> list[float] | None:
    """The numbers of one CSV line (`b"1.5, -2,3e4"` → [1.5, -2.0, 30000.0]), or None when
    a cell is not a decimal number (`nan`, `inf`, `1_000`, `x`, an empty cell)."""
    if line.translate(None, _CSV_BYTES):  # a byte outside the grammar's alphabet
        return None
    try:
        return [float(cell) for cell in line.split(b",")]
    except ValueError:  # e.g. `1e`, `--1`, `1.2.3`, an empty cell
        return None


def out_of_range(values: list[Any], dtype: str) -> int | None:
    """Index of the first value `dtype` cannot hold (it would become ±infinity), or None."""
    limit = INPUT_LIMITS[dtype]
    try:
        if math.hypot(*values) < limit:  # hypot >= max |x|: all of them fit
            return None
    except OverflowError:  # an int beyond any float
        pass
    return next((i for i, value in enumerate(values) if abs(value) >= limit), None)


def range_message(where: str, value: Any, dtype: str) -> str:
    """`instance 0, feature 0: 1e+39 is outside float32's range (±3.4028235e+38) ...`."""
    return (
        f"{where}: {value!r} is outside {dtype}'s range (±{LARGEST[dtype]:.8g}), "
        "the model's input type; it would become infinity"
    )


def _csv_rows(body: bytes, dtype: str | None) -> list[list[float]]:
    """The non-blank lines of a CSV body as rows of floats, checked against `dtype` if given."""
    rows = []
    for number, line in enumerate(split_lines(strip_bom(body)), start=1):
        if not line.strip(b" \t\r"):  # blank (is_blank, inlined: once per line)
            continue
        cells = csv_cells(line)
        if cells is None:
            _refuse_csv_line(body, line, number)
        if dtype is not None:
            column = out_of_range(cells, dtype)
            if column is not None:
                where = f"CSV line {number}, column {column + 1}"
                raise InvalidInput(range_message(where, cells[column], dtype))
        rows.append(cells)
    return rows


def _refuse_csv_line(body: bytes, line: bytes, number: int) -> Never:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"CSV body is not UTF-8: {exc}") from exc
    text = line[:80].decode("utf-8", "replace")
    raise InvalidInput(
        f"CSV line {number} is not all numbers: {text!r} "
        "(decimal numbers only: no nan, inf or 1_000)"
    )


# Exact types, so True/False (bool is an int subclass) are not taken for numbers.
NUMBER_TYPES = frozenset({int, float})


def numeric_rows(
    instances: list[Any], *, dtype: str | None = None, exact_types: bool = True
) -> list[list[float]]:
    """Check that instances are a rectangle of numbers (that `dtype` can hold, if given);
    name the first offender.

    On both hot paths (the API validates each request, the worker parses it).
    `exact_types=False` is for callers who know no value is a bool (see
    `decode_numeric`): one `math.hypot(*row)` per row then checks types and range
    at once; with it, a C-level `map(type, row)` pass runs first (~5 µs per 256 values).
    """
    width: int | None = None
    limit = INPUT_LIMITS[dtype] if dtype is not None else math.inf
    hypot = math.hypot
    for index, row in enumerate(instances):
        if type(row) is not list or (exact_types and not NUMBER_TYPES.issuperset(map(type, row))):
            raise _not_numbers(index, row)
        if dtype is not None or not exact_types:
            try:
                norm = hypot(*row)
            except TypeError:  # a string, null, list or object among the values
                raise _not_numbers(index, row) from None
            except OverflowError:  # an int beyond any float: out of every range
                norm = math.inf
            if norm >= limit and dtype is not None:
                feature = out_of_range(row, dtype)
                if feature is not None:
                    where = f"instance {index}, feature {feature}"
                    raise InvalidInput(range_message(where, row[feature], dtype))
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise _ragged(index, len(row), width)
    return instances


def _same_width(rows: list[list[float]]) -> list[list[float]]:
    """Rows (of floats, as CSV parses them) all as long as the first."""
    width = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width:
            raise _ragged(index, len(row), width)
    return rows


def _ragged(index: int, features: int, width: int) -> InvalidInput:
    return InvalidInput(f"instance {index} has {features} features, instance 0 has {width}")


def _not_numbers(index: int, row: Any) -> InvalidInput:
    return InvalidInput(f"instance {index} is not a list of numbers: {str(row)[:80]}")


# --- predictions out -------------------------------------------------------------------


def encode_predictions(
    predictions: list[Any], accept: str, *, blank_lines: tuple[int, ...] = ()
) -> tuple[bytes, str]:
    """Serialize predictions for the caller's Accept type (CSV or JSON).

    `blank_lines` (from `blank_lines(body)` of a CSV request) are kept as empty
    lines in a CSV answer: predictions [a, b] with blank line 1 → `a\\n\\nb\\n`.
    """
    if accept == CSV:
        lines = csv_lines(predictions)
        for index in blank_lines:  # ascending: each lands at its own line number
            lines.insert(index, "")
        return ("\n".join(lines) + "\n").encode(), CSV
    return json_bytes({"predictions": predictions}), JSON


def json_bytes(value: Any) -> bytes:
    """JSON of predictions, with NaN and ±infinity as "NaN", "Infinity", "-Infinity".

    orjson writes them as null; that only happens where the output holds a `null`,
    and a `null` holds a "u", which no number, no "predictions" key and no
    "Infinity" does — so one memchr tells whether the rare slow path is needed.
    """
    data = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    if b"u" not in data:
        return data
    return orjson.dumps(_spelled(value), option=orjson.OPT_SERIALIZE_NUMPY)


def _spelled(value: Any) -> Any:
    """Value with every non-finite float replaced by its name (numpy values included)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _NONFINITE_TEXT[repr(value)]
    if isinstance(value, list | tuple):
        return [_spelled(v) for v in value]
    if isinstance(value, dict):
        return {k: _spelled(v) for k, v in value.items()}
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    return _spelled(tolist()) if callable(tolist) else value


def csv_lines(predictions: Sequence[Any]) -> list[str]:
    """Each prediction as its CSV line (see csv_line). Flat finite floats, the usual
    answer of a model, take one C-level pass (~12 ms for 34,000 where csv_line's
    checks per value take ~18); the text is the same either way."""
    if set(map(type, predictions)) == {float} and all(map(math.isfinite, predictions)):
        return list(map(float.__repr__, predictions))
    return list(map(csv_line, predictions))


def csv_line(prediction: Any) -> str:
    """One prediction as a CSV line (no newline): `0.73`, or `0.1,0.9` for a list."""
    if isinstance(prediction, list):
        return ",".join(_csv_cell(v) for v in prediction)
    return _csv_cell(prediction)


def _csv_cell(value: Any) -> str:
    """`0.1` → `0.1`, nan → `NaN`, -inf → `-Infinity` (floats at full precision)."""
    if isinstance(value, str):
        return value
    text = repr(value) if isinstance(value, float) else str(value)
    return _NONFINITE_TEXT.get(text, text)


def response_type(content_type: str, accept: str | None) -> str:
    """The caller's most preferred supported Accept type, else the input's own type.

    `Accept: text/html, application/json;q=0.9` → JSON; no usable Accept → JSON
    in gives JSON out and CSV in gives CSV out.
    """
    for wanted in _accept_preferences(accept):
        if wanted in SUPPORTED_TYPES:
            return wanted
    return content_type if content_type in SUPPORTED_TYPES else JSON


def _accept_preferences(accept: str | None) -> list[str]:
    """Media types of an Accept header, most preferred (highest q) first."""
    if not accept:
        return []
    ranked = []
    for position, item in enumerate(accept.split(",")):
        kind, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if kind and quality > 0:
            ranked.append((-quality, position, kind.lower()))
    return [kind for _q, _p, kind in sorted(ranked)]

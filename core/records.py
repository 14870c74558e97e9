"""Line-oriented records of batch transform: what a record is, lines to rows, predictions to lines.

Shared by the coordinator (which counts records while it cuts objects into
chunks) and the workers (which parse and answer them), so both agree exactly.

A *line* ends at `\\n` (a trailing `\\r` is dropped; a last line without a
newline counts). A *record* is a line holding anything but spaces, tabs and
`\\r`. Blank lines are not records: each passes through as an empty output
line, so an output object always has exactly one line per input line, and
line N of the output answers line N of the input.

A UTF-8 byte-order mark at byte 0 of an object is part of no line: the
object's first chunk starts after it (scheduler/transform/plan.py).

Accepted records — the numbers the realtime payloads take (core/codecs.py):
- `text/csv`: decimal numbers separated by commas, no header: `1.5,2,3`
  (`nan`, `inf` and `1_000` are not numbers here).
- `application/jsonlines`: a JSON array of numbers, `[1.5, 2, 3]`, or an
  object with a `"features"` array, `{"id": 7, "features": [1.5, 2, 3]}`.
A record that does not parse, whose feature count differs from the model's
(when the model does not say: from the chunk's first good record), or holding
a value float32 cannot hold (`1e39`: it would become infinity), fails alone,
with its line number and a reason.

Output lines (`assemble_with=line`), for a prediction `p` (a number or a list):
- `join_source=none`: CSV `p` (`0.73`, or `0.1,0.9`); JSON Lines `p` as JSON.
- `join_source=input`: CSV the input line, a comma, then `p`; JSON Lines the
  input object with an added `"prediction"` field (an array line becomes
  `{"features": [...], "prediction": p}`).
- A failed record keeps its line: CSV an empty prediction (`` or `input,`);
  JSON Lines `null`, or with `join_source=input` the input plus
  `"prediction": null` and `"error": reason`.
- A prediction that is NaN or ±infinity is written `NaN`, `Infinity`,
  `-Infinity` (CSV) or the JSON strings `"NaN"`, ... (never `null`, which is a
  failed record's).
Error lines (the `.err` object) are `LINE<TAB>REASON`, LINE counted from 1.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import orjson

from core.codecs import CSV, LARGEST, csv_cells, csv_line, csv_lines, json_bytes, split_lines

JSON_LINES = "application/jsonlines"
CONTENT_TYPES = (CSV, JSON_LINES)

_NONBLANK = re.compile(rb"[^ \t\r\n]")
# A blank line after a newline, ended by a newline. Starting with a literal
# "\n" lets the regex engine skip ahead at memchr speed (~3 GB/s), where a
# pattern anchored at "^" would be tried at every byte.
_BLANK_AFTER_NEWLINE = re.compile(rb"\n[ \t\r]*(?=\n)")
_BLANK_FIRST = re.compile(rb"[ \t\r]*\n")
_NUMBER_TYPES = (int, float)
_NUMBER_SET = frozenset(_NUMBER_TYPES)
# Every byte a chunk of decimal-number CSV lines may hold (see codecs.csv_cells).
_CSV_CHUNK_BYTES = b"0123456789.eE+- \t,\r\n"


def is_record(line: bytes) -> bool:
    return _NONBLANK.search(line) is not None


def has_visible(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether data[start:end] holds any character but spaces, tabs, `\\r` and `\\n`."""
    return _NONBLANK.search(data, start, len(data) if end is None else end) is not None


def count_record_lines(data: bytes, start: int, end: int) -> int:
    """Records among the lines starting in data[start:end]; `start` must begin a line.

    Lines minus blank lines: "1\n\n \n2" holds 4 lines, 2 of them blank → 2.
    """
    if end <= start:
        return 0
    last_newline = data.rfind(b"\n", start, end)
    partial = last_newline < end - 1  # a last line without its newline
    lines = data.count(b"\n", start, end) + partial
    blank = len(_BLANK_AFTER_NEWLINE.findall(data, start, end))
    if _BLANK_FIRST.match(data, start, end):
        blank += 1
    if partial and not has_visible(data, last_newline + 1, end):
        blank += 1
    return lines - blank


@dataclass
class ParsedChunk:
    """A chunk's lines, and its records as rows for the model or as failures."""

    lines: list[bytes]
    record_lines: Sequence[int]  # index in `lines` of each record
    row_of: list[int]  # per record: its row in `rows`, or -1 when it failed to parse
    rows: np.ndarray  # float32, one row per record that parsed
    failures: dict[int, str] = field(default_factory=dict)  # record index → reason

    @property
    def records(self) -> int:
        return len(self.record_lines)

    def fail_rows(self, reasons: dict[int, str]) -> None:
        """Record that the model failed on these rows (records that parsed): row → reason."""
        if not reasons:
            return
        record_of_row = [0] * len(self.rows)
        for record, row in enumerate(self.row_of):
            if row >= 0:
                record_of_row[row] = record
        for row, reason in reasons.items():
            self.failures[record_of_row[row]] = reason


def parse_chunk(data: bytes, content_type: str, expected_features: int | None) -> ParsedChunk:
    """Parse the records of a chunk; bad records become failures, never exceptions."""
    lines = split_lines(data)
    record_lines: Sequence[int]
    whole: bytes | None = None
    if count_record_lines(data, 0, len(data)) == len(lines):  # no blank line: the usual case
        record_lines, texts = range(len(lines)), lines
        whole = data if b"\r" not in data else None
    else:
        record_lines = [i for i, line in enumerate(lines) if is_record(line)]
        texts = [lines[i] for i in record_lines]
    failures: dict[int, str] = {}
    if content_type == CSV:
        values = _csv_values(texts, failures, whole)
    elif content_type == JSON_LINES:
        values = _jsonl_values(texts, failures)
    else:
        raise ValueError(f"content type {content_type!r} is not one of {list(CONTENT_TYPES)}")
    if isinstance(values, np.ndarray):
        width = expected_features or (values.shape[1] if len(values) else 0)
        row_of = list(range(len(texts)))
        if not len(values):
            values = np.empty((0, width), dtype=np.float32)
        elif values.shape[1] != width:
            reason = _width_reason(values.shape[1], width, expected_features)
            failures.update(dict.fromkeys(range(len(texts)), reason))
            values = np.empty((0, width), dtype=np.float32)
            row_of = [-1] * len(texts)
        rows = values
    else:
        width = expected_features
        good: list[list[float]] = []
        row_of = [-1] * len(texts)
        for record, row in enumerate(values):
            if row is None:
                continue
            if width is None:
                width = len(row)
            if len(row) != width:
                failures[record] = _width_reason(len(row), width, expected_features)
                continue
            row_of[record] = len(good)
            good.append(row)
        with np.errstate(over="ignore"):  # out-of-range values are failed just below
            rows = np.asarray(good, dtype=np.float32).reshape(len(good), width or 0)
    rows, row_of = _drop_out_of_range(rows, row_of, texts, failures, content_type)
    return ParsedChunk(lines, record_lines, row_of, rows, failures)


def _drop_out_of_range(
    rows: np.ndarray,
    row_of: list[int],
    texts: Sequence[bytes],
    failures: dict[int, str],
    content_type: str,
) -> tuple[np.ndarray, list[int]]:
    """Fail the records holding a value float32 cannot hold (it became ±infinity).

    Input numbers are finite (no nan or inf parses), so a non-finite float32 is an
    overflow. One vectorised pass, ~0.6 ms for 10,000 rows of 256; nothing to do
    in the usual case.
    """
    finite = np.isfinite(rows).all(axis=1)
    if finite.all():
        return rows, row_of
    kept = np.full(len(rows), -1)
    kept[finite] = np.arange(int(finite.sum()))
    for record, row in enumerate(row_of):
        if row >= 0 and not finite[row]:
            column = int(np.flatnonzero(~np.isfinite(rows[row]))[0])
            # Named as the realtime payloads name it: CSV columns from 1, JSON features from 0.
            where = f"column {column + 1}" if content_type == CSV else f"feature {column}"
            value = _cell(texts[record], column, content_type)
            failures[record] = (
                f"{where}: {value} is outside float32's range "
                f"(±{LARGEST['float32']:.8g}), the model's input type"
            )
    return rows[finite], [int(kept[row]) if row >= 0 else -1 for row in row_of]


def _cell(text: bytes, column: int, content_type: str) -> str:
    """The value at `column` of a record, as written (for a reason)."""
    if content_type == CSV:
        return text.split(b",")[column].strip().decode()
    doc = orjson.loads(text)
    features: list[Any] = doc["features"] if isinstance(doc, dict) else doc
    return repr(features[column])


def _width_reason(got: int, width: int, expected_features: int | None) -> str:
    if expected_features is not None:
        return f"the record has {got} features; the model expects {expected_features}"
    return f"the record has {got} features; the first record of its chunk has {width}"


def _csv_values(
    texts: list[bytes], failures: dict[int, str], whole: bytes | None
) -> np.ndarray | list[Any]:
    """All rows at C speed when every record parses; else record by record.

    `whole` is the chunk itself when its lines are exactly the records (no copy needed).
    """
    if not texts:
        return np.empty((0, 0), dtype=np.float32)
    data = whole if whole is not None else b"\n".join(texts)
    # loadtxt also reads nan, inf and more; only bytes of plain decimal numbers
    # (checked at C speed) may take the fast path, so both paths accept the same.
    if not data.translate(None, _CSV_CHUNK_BYTES):
        rows = _arrow_rows(data, len(texts))
        if rows is not None:
            return rows
        try:
            with np.errstate(over="ignore"):  # out-of-range values are failed later
                rows = np.loadtxt(
                    io.BytesIO(data), delimiter=",", dtype=np.float32, ndmin=2, comments=None
                )
            if rows.shape[0] == len(texts):
                return rows
        except ValueError:
            pass
    values: list[Any] = []
    for record, text in enumerate(texts):
        cells = csv_cells(text)
        if cells is None:
            failures[record] = f"not a row of numbers: {_snippet(text)}"
        values.append(cells)
    return values


def _arrow_rows(data: bytes, records: int) -> np.ndarray | None:
    """Every record of a chunk of plain decimal CSV as float32 rows, parsed by pyarrow's
    CSV reader in bulk (~90 ms for 6 MB of 32 columns where `np.loadtxt` takes ~300,
    on one thread); None when pyarrow is absent or any record is not a full row of
    numbers (an empty cell, a ragged row): the caller's exact paths then decide.

    Each cell is converted straight to float32 (as `np.loadtxt` gives them); no
    cell may be null, and the rows must number `records`.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    first = data[: data.find(b"\n")] if b"\n" in data else data
    names = [f"c{i}" for i in range(first.count(b",") + 1)]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.float32()),
                null_values=[],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None
    if table.num_rows != records or any(column.null_count for column in table.columns):
        return None
    rows = np.empty((records, len(names)), dtype=np.float32)
    for index, column in enumerate(table.columns):
        rows[:, index] = column.to_numpy()
    return rows


def _jsonl_values(texts: list[bytes], failures: dict[int, str]) -> np.ndarray | list[Any]:
    """All rows at once when every record is an array (or a `"features"` array) of
    numbers of one width; else record by record, so a bad record fails alone."""
    rows = _jsonl_rows(texts)
    if rows is not None:
        return rows
    values: list[Any] = []
    for record, text in enumerate(texts):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            failures[record] = f"not valid JSON ({exc}): {_snippet(text)}"
            values.append(None)
            continue
        features = doc.get("features") if isinstance(doc, dict) else doc
        if not isinstance(features, list) or not all(type(v) in _NUMBER_TYPES for v in features):
            failures[record] = (
                'expected an array of numbers or an object with a "features" array of '
                f"numbers: {_snippet(text)}"
            )
            values.append(None)
            continue
        values.append(features)
    return values


def _jsonl_rows(texts: list[bytes]) -> np.ndarray | None:
    """The records as float32 rows, checked in bulk (~100 ms for 6 MB of 32-number
    arrays where the record-by-record path takes ~130); None when any record is not
    JSON, not numbers or not the first one's width: the exact path then decides.

    Each line is parsed on its own (joining lines into one document could let two
    bad lines pass as one good one); the checks then run over all values at C speed:
    `type` is exact, so a `true` (a bool, not an int here) is refused as before.
    """
    if not texts:
        return None
    try:
        docs = list(map(orjson.loads, texts))
    except orjson.JSONDecodeError:
        return None
    features: list[Any] = [doc.get("features") if type(doc) is dict else doc for doc in docs]
    if set(map(type, features)) != {list} or len(set(map(len, features))) != 1:
        return None
    if not set(map(type, chain.from_iterable(features))) <= _NUMBER_SET:
        return None
    with np.errstate(over="ignore"):  # out-of-range values are failed later
        return np.asarray(features, dtype=np.float32).reshape(len(features), len(features[0]))


def _snippet(text: bytes) -> str:
    return repr(text[:80].decode("utf-8", "replace"))


# --- output -----------------------------------------------------------------------


def output_line(content_type: str, join_source: str, line: bytes, prediction: Any) -> bytes:
    """The output line of a record the model answered."""
    if content_type == CSV:
        cells = csv_line(prediction).encode()
        return line + b"," + cells if join_source == "input" else cells
    encoded = json_bytes(prediction)
    if join_source != "input":
        return encoded
    return _join_json(line, {"prediction": encoded})


def failure_line(content_type: str, join_source: str, line: bytes | None, reason: str) -> bytes:
    """The output line of a failed record; `line` None when the input is not at hand."""
    if content_type == CSV:
        return line + b"," if join_source == "input" and line is not None else b""
    if join_source != "input":
        return b"null"
    fields = {"prediction": b"null", "error": orjson.dumps(reason)}
    if line is None:
        return _join_json(b"{}", fields)
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict | list):
        return _join_json(line, fields)
    # Not an object or array: keep the input as a string beside the error.
    return _join_json(b'{"input":' + orjson.dumps(line.decode("utf-8", "replace")) + b"}", fields)


def _join_json(line: bytes, fields: dict[str, bytes]) -> bytes:
    """Add fields to a JSON object line (kept byte for byte), or wrap an array line."""
    text = line.strip()
    added = b",".join(orjson.dumps(name) + b":" + value for name, value in fields.items())
    if text.startswith(b"{"):
        body = text[: text.rfind(b"}")].rstrip()
        return body + (b"," if body != b"{" else b"") + added + b"}"
    return b'{"features":' + text + b"," + added + b"}"


def error_line(line_number: int, reason: str) -> bytes:
    """`LINE<TAB>REASON` with the reason on one line."""
    return f"{line_number}\t{' '.join(reason.split())}".encode()


def render_chunk(
    parsed: ParsedChunk,
    predictions: Sequence[Any],
    *,
    content_type: str,
    join_source: str,
    first_line: int,
) -> tuple[bytes, bytes]:
    """The output and error lines of a chunk: one output line per input line, in order.

    `predictions` holds one entry per row of `parsed.rows` (entries of failed
    rows are ignored). Returns (output, errors), each newline-terminated or empty.
    """
    if (
        join_source != "input"
        and parsed.lines
        and not parsed.failures
        and len(parsed.record_lines) == len(parsed.lines)
    ):
        # Every line a record, every record answered: one join, no per-line branches.
        if content_type == CSV:
            return ("\n".join(csv_lines(predictions)) + "\n").encode(), b""
        return b"\n".join(map(json_bytes, predictions)) + b"\n", b""
    out: list[bytes] = []
    errors: list[bytes] = []
    record = 0
    records = parsed.record_lines
    for index, line in enumerate(parsed.lines):
        if record >= len(records) or records[record] != index:
            out.append(b"")  # a blank line passes through
            continue
        reason = parsed.failures.get(record)
        if reason is not None:
            out.append(failure_line(content_type, join_source, line, reason))
            errors.append(error_line(first_line + index, reason))
        else:
            prediction = predictions[parsed.row_of[record]]
            out.append(output_line(content_type, join_source, line, prediction))
        record += 1
    return _joined(out), _joined(errors)


def _joined(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n" if lines else b""

"""The chunk cutter: whole lines, at most max_bytes, exact line numbers and record counts."""

from __future__ import annotations

import random

import pytest

from core.codecs import BOM, CSV
from core.records import is_record, parse_chunk, split_lines
from scheduler.transform.plan import ChunkPlan, cut_chunks, iter_line_kinds


def cut(data: bytes, max_bytes: int | None, block: int = 4) -> list[tuple[int, ...]]:
    blocks = [data[i : i + block] for i in range(0, len(data), block)]
    return [
        (c.start, c.end, c.first_line, c.lines, c.records, int(c.oversized))
        for c in cut_chunks(blocks, max_bytes)
    ]


def reference(data: bytes, max_bytes: int | None) -> list[tuple[int, ...]]:
    """Greedy packing of whole lines, written the slow and obvious way."""
    spans, pos = [], 0
    while pos < len(data):
        newline = data.find(b"\n", pos)
        end = len(data) if newline < 0 else newline + 1
        spans.append((pos, end))
        pos = end
    out: list[tuple[int, ...]] = []
    current: list[tuple[int, int]] = []
    first = 1

    def record(a: int, b: int) -> int:
        return int(is_record(data[a:b].rstrip(b"\n")))

    def close() -> None:
        nonlocal current, first
        if current:
            records = sum(record(a, b) for a, b in current)
            out.append((current[0][0], current[-1][1], first, len(current), records, 0))
            first += len(current)
            current = []

    for a, b in spans:
        if max_bytes is not None and b - a > max_bytes:
            close()
            out.append((a, b, first, 1, record(a, b), 1))
            first += 1
            continue
        if max_bytes is not None and current and b - current[0][0] > max_bytes:
            close()
        current.append((a, b))
    close()
    return out


def test_the_docstring_example() -> None:
    assert cut(b"a,1\nb,2\nc,3\n", 10) == [(0, 8, 1, 2, 2, 0), (8, 12, 3, 1, 1, 0)]


def test_a_line_exactly_max_bytes_fits_and_one_byte_more_does_not() -> None:
    assert cut(b"abcd\nef\n", 5) == [(0, 5, 1, 1, 1, 0), (5, 8, 2, 1, 1, 0)]
    assert cut(b"abcde\nef\n", 5) == [(0, 6, 1, 1, 1, 1), (6, 9, 2, 1, 1, 0)]


def test_a_line_longer_than_max_bytes_is_an_oversized_chunk_of_its_own() -> None:
    """It is never read by a worker: its record fails with the reason (documented)."""
    data = b"1,2\n" + b"9" * 50 + b"\n3,4\n5,6"
    assert cut(data, 8) == [
        (0, 4, 1, 1, 1, 0),
        (4, 55, 2, 1, 1, 1),
        (55, 62, 3, 2, 2, 0),
    ]


def test_blank_lines_are_lines_but_not_records() -> None:
    assert cut(b"1\n\n  \r\n2\n", 100) == [(0, 9, 1, 4, 2, 0)]


def test_a_last_line_without_newline_counts_and_an_empty_object_has_no_chunk() -> None:
    assert cut(b"1\n2", 100) == [(0, 3, 1, 2, 2, 0)]
    assert cut(b"", 100) == []


def test_split_type_none_is_one_chunk() -> None:
    data = b"1\n2\n3\n" * 100
    assert cut(data, None) == [(0, len(data), 1, 300, 300, 0)]


def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(cut_chunks([b"1\n"], 0))


def test_chunks_are_numbered_in_order() -> None:
    plans = list(cut_chunks([b"1\n2\n3\n4\n"], 4))
    assert [p.seq for p in plans] == [0, 1]
    assert plans[0] == ChunkPlan(seq=0, start=0, end=4, first_line=1, lines=2, records=2)


@pytest.mark.parametrize("seed", range(4))
def test_matches_the_obvious_implementation_on_random_input(seed: int) -> None:
    """Random lines, random block boundaries, random limits: the streaming cutter agrees."""
    rng = random.Random(seed)
    pieces = [b"a", b"1", b",", b" ", b"\n", b"\r", b"\n\n", b"xyz"]
    for _ in range(500):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 150)))
        max_bytes = rng.choice([None, 1, 2, 3, 5, 8, 13, 50, 1000])
        block = rng.randint(1, 20)
        assert cut(data, max_bytes, block) == reference(data, max_bytes), (data, max_bytes)
        blocks = [data[i : i + block] for i in range(0, len(data), block)]
        assert list(iter_line_kinds(blocks)) == [is_record(x) for x in split_lines(data)]


@pytest.mark.parametrize(
    ("data", "records", "lines"),
    [
        (BOM + b"\n1,2\n", 1, 2),
        (BOM + b"1,2\n3,4\n", 2, 2),
        (BOM, 0, 0),
        (BOM + b"1,2", 1, 1),
    ],
    ids=["mark-alone-on-line-1", "mark-before-a-record", "only-the-mark", "no-final-newline"],
)
@pytest.mark.parametrize("max_bytes", [None, 5, 1000])
def test_a_leading_byte_order_mark_is_in_no_chunk(
    data: bytes, records: int, lines: int, max_bytes: int | None
) -> None:
    """Regression: a UTF-8 BOM at the start of a CSV object made its line 1 fail
    ("'\\ufeff1,2,3,4' is not all numbers"). The first chunk now starts after the
    mark, so a worker reads the records as written (and an object that is just the
    mark, as some spreadsheet exports are, has no lines)."""
    plans = list(cut_chunks([data[:2], data[2:]] if len(data) > 2 else [data], max_bytes))
    assert plans == [] or plans[0].start == len(BOM)
    assert sum(p.records for p in plans) == records and sum(p.lines for p in plans) == lines
    for plan in plans:
        parsed = parse_chunk(data[plan.start : plan.end], CSV, None)
        assert (parsed.records, len(parsed.lines)) == (plan.records, plan.lines)
    assert b"1,2" in b"".join(data[p.start : p.end] for p in plans) or records == 0


def test_a_mark_later_in_the_object_is_data() -> None:
    data = b"1,2\n" + BOM + b"3,4\n"
    assert [(p.start, p.records) for p in cut_chunks([data], None)] == [(0, 2)]

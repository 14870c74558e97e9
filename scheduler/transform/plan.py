"""Cutting input objects into chunks of whole lines — pure, streaming, no I/O.

The coordinator streams each input object once through a `ChunkCutter`, in
blocks of about 1 MiB, and gets back chunks: byte ranges of whole lines, each
at most `max_bytes` long, with the number of the chunk's first line and its
count of lines and records (core/records.py says what a record is). Nothing
but the current block is held, so a 1 GB object costs 1 MiB of memory, and the
job's `total_records` is exact before any record is processed.

Example, max 10 bytes: `a,1\\nb,2\\nc,3\\n` (12 bytes) → chunk 0 = bytes 0-8
(lines 1-2), chunk 1 = bytes 8-12 (line 3, first_line 3).

A line longer than `max_bytes` cannot travel in a mini-batch: it becomes a
chunk of its own flagged `oversized` (one line), which no worker reads; the
coordinator records it as a failed record. With `max_bytes=None`
(split_type=none) the whole object is one chunk. A UTF-8 byte-order mark that
opens an object is in no chunk: `\xef\xbb\xbf1,2\n` → one chunk, bytes 3-7.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from core.codecs import BOM
from core.records import count_record_lines, has_visible


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    seq: int
    start: int  # first byte
    end: int  # one past the last byte
    first_line: int  # number of the chunk's first line, counted from 1
    lines: int
    records: int
    oversized: bool = False


class ChunkCutter:
    """Feed an object's bytes in order; collect chunks as they close, then `finish()`."""

    def __init__(self, max_bytes: int | None, *, start: int = 0) -> None:
        """`start`: the object's byte where its first line begins (3 after a byte-order mark)."""
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self.offset = start  # where the next byte fed sits in the object
        self.seq = 0
        self.chunk_start = start
        self.chunk_lines = 0  # complete lines in the open chunk
        self.chunk_records = 0
        self.first_line = 1  # number of the open chunk's first line
        self.line_start = start  # where the unfinished line began
        self.line_visible = False  # whether the unfinished line holds a record so far
        self.oversized = False  # inside a line longer than max_bytes

    def feed(self, block: bytes) -> list[ChunkPlan]:
        base, size = self.offset, len(block)
        self.offset += size
        closed: list[ChunkPlan] = []
        pos = 0
        while pos < size:
            if self.oversized:
                newline = block.find(b"\n", pos)
                if newline < 0:
                    self.line_visible = self.line_visible or has_visible(block, pos, size)
                    break
                self.line_visible = self.line_visible or has_visible(block, pos, newline)
                closed.append(self._close_oversized(base + newline + 1))
                pos = newline + 1
                continue
            # The open chunk may grow while a newline stays below `limit` (local index).
            limit = size if self.max_bytes is None else self.chunk_start + self.max_bytes - base
            if limit >= size:
                self._consume(block, pos, size, base)
                break
            newline = block.rfind(b"\n", pos, max(limit, pos))
            if newline >= 0:
                self._consume(block, pos, newline + 1, base)
                closed.append(self._close(base + newline + 1))
                pos = newline + 1
            elif self.line_start > self.chunk_start:
                # The unfinished line does not fit: close the chunk before it.
                closed.append(self._close(self.line_start))
            else:
                # The unfinished line alone is over max_bytes.
                self.oversized = True
        return closed

    def finish(self) -> list[ChunkPlan]:
        """Close the last chunk (a last line without a newline counts)."""
        if self.oversized:
            return [self._close_oversized(self.offset)]
        if self.offset > self.line_start:
            self.chunk_lines += 1
            self.chunk_records += self.line_visible
            self.line_start = self.offset
        return [self._close(self.offset)] if self.chunk_lines else []

    def _consume(self, block: bytes, start: int, end: int, base: int) -> None:
        """Take block[start:end] into the open chunk, counting the lines it completes."""
        first = block.find(b"\n", start, end)
        if first < 0:
            self.line_visible = self.line_visible or has_visible(block, start, end)
            return
        self.chunk_lines += 1
        self.chunk_records += self.line_visible or has_visible(block, start, first)
        last = block.rfind(b"\n", first, end)
        if last > first:
            self.chunk_lines += block.count(b"\n", first + 1, last + 1)
            self.chunk_records += count_record_lines(block, first + 1, last + 1)
        self.line_start = base + last + 1
        self.line_visible = has_visible(block, last + 1, end)

    def _close(self, end: int) -> ChunkPlan:
        plan = ChunkPlan(
            seq=self.seq,
            start=self.chunk_start,
            end=end,
            first_line=self.first_line,
            lines=self.chunk_lines,
            records=self.chunk_records,
        )
        self.seq += 1
        self.first_line += self.chunk_lines
        self.chunk_start = end
        self.chunk_lines = self.chunk_records = 0
        return plan

    def _close_oversized(self, end: int) -> ChunkPlan:
        plan = ChunkPlan(
            seq=self.seq,
            start=self.line_start,
            end=end,
            first_line=self.first_line,
            lines=1,
            records=int(self.line_visible),
            oversized=True,
        )
        self.seq += 1
        self.first_line += 1
        self.chunk_start = self.line_start = end
        self.line_visible = self.oversized = False
        return plan


def cut_chunks(blocks: Iterable[bytes], max_bytes: int | None) -> Iterator[ChunkPlan]:
    """The chunks of an object given as a stream of blocks (see `ChunkCutter`).

    A UTF-8 byte-order mark at byte 0 (spreadsheet programs write one) belongs
    to no line: the first chunk starts after it, so no worker ever reads it
    and an object holding only the mark has no lines at all.
    """
    blocks = iter(blocks)
    head = b""
    for block in blocks:  # the object's first bytes, however the stream splits them
        head += block
        if len(head) >= len(BOM):
            break
    skip = len(BOM) if head.startswith(BOM) else 0
    cutter = ChunkCutter(max_bytes, start=skip)
    yield from cutter.feed(head[skip:])
    for block in blocks:
        yield from cutter.feed(block)
    yield from cutter.finish()


def iter_line_kinds(blocks: Iterable[bytes]) -> Iterator[bool]:
    """For each line of a stream, whether it holds a record — without holding a whole line."""
    visible = pending = False
    for block in blocks:
        pos = 0
        while True:
            newline = block.find(b"\n", pos)
            if newline < 0:
                if pos < len(block):
                    visible = visible or has_visible(block, pos, len(block))
                    pending = True
                break
            yield visible or has_visible(block, pos, newline)
            visible = pending = False
            pos = newline + 1
    if pending:
        yield visible

"""Where transform outputs land, and the streaming reader their uploads read from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.storage import StreamReader
from core.tables import TransformJob
from scheduler.transform.output import output_location


@pytest.mark.parametrize(
    ("input_prefix", "key", "expected"),
    [
        ("s3://bucket-in/data/", "data/x.csv", "s3://out/r/x.csv.out"),
        ("s3://bucket-in/data/", "data/a/b/x.csv", "s3://out/r/a/b/x.csv.out"),
        ("s3://bucket-in/data/part-", "data/part-1.csv", "s3://out/r/part-1.csv.out"),
        ("s3://bucket-in", "x.csv", "s3://out/r/x.csv.out"),
    ],
)
def test_output_keys_keep_the_path_below_the_input_prefix(
    input_prefix: str, key: str, expected: str
) -> None:
    job = TransformJob(input_prefix=input_prefix, output_prefix="s3://out/r/")
    assert str(output_location(job, key, ".out")) == expected


def test_stream_reader_hands_out_blocks_in_the_sizes_asked() -> None:
    pulled: list[int] = []

    def blocks() -> Iterator[bytes]:
        for block in (b"abc", b"", b"defgh", b"ij"):
            pulled.append(len(block))
            yield block

    reader = StreamReader(blocks())
    assert reader.read(4) == b"abcd"
    assert pulled == [3, 0, 5]  # nothing read ahead beyond the block in hand
    assert reader.read(100) == b"efghij"
    assert reader.read(10) == b""
    assert reader.bytes_read == 10


def test_stream_reader_reads_all_with_no_size() -> None:
    assert StreamReader(iter([b"a", b"bc"])).read() == b"abc"

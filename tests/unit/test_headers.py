"""Headers that carry a location, a name or an id: UTF-8 bytes, then percent-decoding."""

from __future__ import annotations

import pytest

from api.headers import header_text
from core.errors import BadRequest


def starlette(raw: bytes) -> str:
    """A header value as Starlette hands it over: its bytes decoded as Latin-1."""
    return raw.decode("latin-1")


@pytest.mark.parametrize(
    ("raw", "meant"),
    [
        ("s3://data/in/données.json".encode(), "s3://data/in/données.json"),
        (b"s3://data/in/donn%C3%A9es.json", "s3://data/in/données.json"),
        (b"s3://data/in/donn%c3%a9es.json", "s3://data/in/données.json"),
        ("s3://data/数据/%E6%96%87件".encode(), "s3://data/数据/文件"),
        (b"s3://data/in/data#v2", "s3://data/in/data#v2"),
        (b"s3://data/in/f%231.csv", "s3://data/in/f#1.csv"),
        (b"s3://data/a%20b+c", "s3://data/a b+c"),
        (b"s3://data/100%25.csv", "s3://data/100%.csv"),
        (b"req-42", "req-42"),
    ],
    ids=[
        "raw-utf8",
        "percent",
        "percent-lowercase",
        "mixed",
        "hash",
        "encoded-hash",
        "space-and-plus",
        "literal-percent",
        "ascii",
    ],
)
def test_a_header_reads_as_utf8_then_percent_decoded(raw: bytes, meant: str) -> None:
    """Regression: `X-Input-Location: s3://data/in/données.json` was read as Latin-1
    (`donnÃ©es.json`: 422 "does not exist"), and `donn%C3%A9es.json` was taken
    literally; a batch transform read the same object fine."""
    assert header_text("X-Input-Location", starlette(raw)) == meant


def test_an_absent_header_stays_absent() -> None:
    assert header_text("X-Inference-Id", None) is None


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b"s3://data/100%.csv", "write a literal % as %25"),
        (b"s3://data/%zz", "not a %XX escape"),
        (b"s3://data/%C3", "do not decode to UTF-8"),
        (b"s3://data/caf\xe9", "is not UTF-8"),
    ],
    ids=["bare-percent", "bad-escape", "truncated-utf8-escape", "latin-1-bytes"],
)
def test_a_header_that_does_not_decode_is_a_400_naming_it(raw: bytes, named: str) -> None:
    with pytest.raises(BadRequest) as caught:
        header_text("X-Input-Location", starlette(raw))
    assert caught.value.status == 400
    assert "X-Input-Location" in caught.value.detail and named in caught.value.detail

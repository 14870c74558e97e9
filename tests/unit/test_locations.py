"""`s3://bucket/key` locations: one parser and formatter, the key taken character for character."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.locations import MAX_KEY_BYTES, S3Location, valid_bucket_name

# Keys S3 accepts: any Unicode that has a UTF-8 form (no lone surrogates), but NUL
# (the platform's database cannot hold it), at most 1,024 bytes. The characters a
# URL parser treats specially are drawn often, so every run meets them.
URL_SPECIAL = "#?%+ /&=;:@!$'()*,[]\\~\t\n\r\x7f"
key_chars = st.one_of(
    st.sampled_from(URL_SPECIAL),
    st.characters(codec="utf-8", exclude_characters="\x00"),
)
keys = st.text(key_chars, max_size=200).filter(lambda k: len(k.encode()) <= MAX_KEY_BYTES)
buckets = st.from_regex(r"\A[a-z0-9][a-z0-9-]{1,20}[a-z0-9]\Z")


@given(bucket=buckets, key=keys)
@example(bucket="data", key="in/data#v2")
@example(bucket="data", key="t1/in/f#1.csv")
@example(bucket="data", key="q?x=1&y=%41")
@example(bucket="data", key="a//b/")
@example(bucket="data", key="/leading")
@example(bucket="data", key="in/données.json")
def test_format_then_parse_gives_back_the_key_unchanged(bucket: str, key: str) -> None:
    """Regression: locations went through urlparse, so everything from `#` on was
    dropped from the key (`s3://data/in/data#v2` read the object `in/data`), `?`
    started a query, and leading slashes were stripped."""
    location = S3Location(bucket, key)
    assert S3Location.parse(str(location)) == location
    assert str(location) == f"s3://{bucket}/{key}"


@given(bucket=buckets, prefix=keys, name=keys)
def test_child_and_extended_keep_both_parts_of_the_key(bucket: str, prefix: str, name: str) -> None:
    """Output names (`<prefix><job>.out`, `<part>.<attempt>.out`) are built on the
    parsed key, never by editing the text of a location, so no character is lost."""
    base = S3Location(bucket, prefix)
    child = base.child(name)
    assert child.bucket == bucket
    assert child.key.startswith(prefix) and child.key.endswith(name)
    assert child.key == (prefix if prefix == "" or prefix.endswith("/") else prefix + "/") + name
    assert base.extended(name) == S3Location(bucket, prefix + name)
    for joined in (child, base.extended(name)):
        if len(joined.key.encode()) <= MAX_KEY_BYTES:
            assert S3Location.parse(str(joined)) == joined


@pytest.mark.parametrize(
    ("uri", "bucket", "key"),
    [
        ("s3://data", "data", ""),
        ("s3://data/", "data", ""),
        ("s3://data/in/", "data", "in/"),
        ("s3://data/in/data#v2", "data", "in/data#v2"),
        ("s3://data/a%20b", "data", "a%20b"),  # taken as written: no percent-decoding here
        ("s3://data//x", "data", "/x"),
        ("s3://my.bucket-1/k", "my.bucket-1", "k"),
    ],
)
def test_parse_splits_at_the_first_slash_after_the_bucket(uri: str, bucket: str, key: str) -> None:
    assert S3Location.parse(uri) == S3Location(bucket, key)


@pytest.mark.parametrize(
    ("uri", "named"),
    [
        ("https://data/x", "expected an s3://bucket/key"),
        ("S3://data/x", "expected an s3://bucket/key"),
        ("s3://", "names no bucket"),
        ("s3:///x", "names no bucket"),
        ("s3://ab/x", "not a valid S3 bucket name"),
        ("s3://Data/x", "not a valid S3 bucket name"),
        ("s3://a..b/x", "not a valid S3 bucket name"),
        ("s3://a.-b/x", "not a valid S3 bucket name"),
        ("s3://192.168.1.1/x", "not a valid S3 bucket name"),
        ("s3://-data/x", "not a valid S3 bucket name"),
        ("s3://data#x/y", "not a valid S3 bucket name"),
        ("s3://data/a\x00b", "NUL"),
        ("s3://data/\udc80", "lone surrogate"),
        ("s3://data/" + "é" * 513, "1026 bytes"),
    ],
    ids=[
        "https",
        "upper-scheme",
        "empty",
        "empty-bucket",
        "short",
        "upper",
        "dots",
        "dot-dash",
        "ip",
        "leading-dash",
        "hash-in-bucket",
        "nul",
        "surrogate",
        "too-long",
    ],
)
def test_what_s3_refuses_is_a_422_that_says_why(uri: str, named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        S3Location.parse(uri)
    assert caught.value.status == 422
    assert named in caught.value.detail


def test_a_key_of_exactly_1024_bytes_is_accepted() -> None:
    assert S3Location.parse("s3://data/" + "k" * 1024).key == "k" * 1024


@pytest.mark.parametrize("uri", ["s3://data", "s3://data/", "s3://data/in/"])
def test_parse_object_wants_an_object_not_a_prefix(uri: str) -> None:
    with pytest.raises(InvalidInput, match="names no object"):
        S3Location.parse_object(uri)


def test_parse_object_takes_any_key_not_ending_in_a_slash() -> None:
    assert S3Location.parse_object("s3://data/in/data#v2").key == "in/data#v2"


@pytest.mark.parametrize(
    ("name", "valid"),
    [("abc", True), ("a" * 63, True), ("a" * 64, False), ("my-bucket.v2", True), ("ab", False)],
)
def test_bucket_names_follow_s3s_rules(name: str, valid: bool) -> None:
    assert valid_bucket_name(name) is valid

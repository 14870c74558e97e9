"""`s3://bucket/key` locations: the one parser and formatter every part of the platform uses.

A location is not a URL. The bucket is what stands between `s3://` and the
next `/`; the key is everything after that `/`, character for character —
`#`, `?`, `%`, `+`, spaces, `//`, a trailing `/` and any Unicode are part of it,
exactly as S3 stores them. So `s3://data/in/data#v2` names the key `in/data#v2`
(a URL parser would drop `#v2` as a fragment and read the object `in/data`),
and `s3://data/a%20b` names the key `a%20b`, not `a b`.

`str(S3Location(b, k))` writes `s3://b/k` and `S3Location.parse` reads it back
unchanged, for every key S3 accepts: any Unicode but NUL, at most 1,024 bytes in
UTF-8. Keys are joined onto prefixes only by `child` (adds a `/` when the prefix
does not end in one: `s3://d/out` + `x.out` → `s3://d/out/x.out`) or `extended`
(plain concatenation: `s3://d/parts/7` + `.a1.out` → `s3://d/parts/7.a1.out`),
never by editing the text of a location.

Bucket names follow S3's rules: 3 to 63 characters, lowercase letters, digits,
dots and hyphens, starting and ending with a letter or digit, no `..`, `.-` or
`-.`, not shaped like an IP address. A name that breaks them is an
`InvalidInput` (422) that says so.

HTTP headers carry locations percent-encoded (`api/headers.py` decodes them);
the `s3://` strings in JSON bodies, job rows and messages are taken as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InvalidInput

SCHEME = "s3://"
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def valid_bucket_name(name: str) -> bool:
    """S3's bucket naming rules, which the client enforces before sending anything."""
    return (
        BUCKET_NAME.match(name) is not None
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and IP_ADDRESS.match(name) is None
    )


def key_problem(key: str) -> str | None:
    """Why S3 (or the platform's database) cannot hold this key, or None when it can.

    Keys are UTF-8 on the wire: a lone surrogate (`"\\udc80"`, what a wrong
    decoding leaves behind) has no UTF-8 form. NUL is refused because no
    database column the platform stores keys in (PostgreSQL text) can hold it.
    """
    if "\x00" in key:
        return "holds a NUL character"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate)"
    if size > MAX_KEY_BYTES:
        return f"is {size} bytes in UTF-8; S3 keys are at most {MAX_KEY_BYTES}"
    return None


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and a key (the key may be empty or a prefix ending in `/`)."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """`s3://bucket/any/key#with?anything` → S3Location("bucket", "any/key#with?anything").

        `s3://bucket` and `s3://bucket/` both give the empty key.
        Raises InvalidInput naming the location when it is not `s3://`, the
        bucket breaks S3's naming rules, or the key is one S3 cannot hold.
        """
        if not uri.startswith(SCHEME):
            raise InvalidInput(f"expected an s3://bucket/key location, got {uri!r}")
        bucket, _slash, key = uri[len(SCHEME) :].partition("/")
        if not bucket:
            raise InvalidInput(f"{uri!r} names no bucket: expected s3://bucket/key")
        if not valid_bucket_name(bucket):
            raise InvalidInput(
                f"{bucket!r} in {uri!r} is not a valid S3 bucket name "
                "(3-63 lowercase letters, digits, dots and hyphens, starting and ending "
                "with a letter or digit; not an IP address)"
            )
        problem = key_problem(key)
        if problem is not None:
            raise InvalidInput(f"the key in {uri!r} {problem}")
        return cls(bucket=bucket, key=key)

    @classmethod
    def parse_object(cls, uri: str) -> S3Location:
        """An s3:// location that must name an object (a key), not a bucket or a prefix."""
        location = cls.parse(uri)
        if not location.key or location.key.endswith("/"):
            raise InvalidInput(f"{uri!r} names no object: expected s3://bucket/key")
        return location

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Location:
        """`name` inside this prefix taken as a folder: `s3://d/out` + `x` → `s3://d/out/x`."""
        prefix = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Location(self.bucket, prefix + name)

    def extended(self, tail: str) -> S3Location:
        """The key with `tail` appended as is: `s3://d/in/part-` + `7.csv` → `s3://d/in/part-7.csv`."""
        return S3Location(self.bucket, self.key + tail)

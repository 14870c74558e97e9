"""Headers that carry a location, a name or an id: the one rule for reading them as text.

HTTP/1.1 carries header values as bytes, and Starlette hands them over decoded
as Latin-1, so `X-Input-Location: s3://data/in/données.json` sent as UTF-8
arrives as `donnÃ©es.json`. Every such header goes through `header_text`:

1. The raw bytes are UTF-8 (ASCII is UTF-8): `donn\\xc3\\xa9es` → `données`.
   Bytes that are not UTF-8 are a 400 that names the header.
2. Then `%XX` escapes are decoded, as RFC 3986 percent-encoding and as S3 tools
   write keys in URLs: `donn%C3%A9es.json` → `données.json`, `a%20b` → `a b`,
   `f%231.csv` → `f#1.csv`. `+` stays `+` (that is form encoding, not RFC 3986).

So a literal `%` must be written `%25` (`100%25.csv` names `100%.csv`); a `%`
not followed by two hex digits, or escapes that decode to bytes that are not
UTF-8, are a 400 saying so. ASCII without `%` — nearly every header — is returned
as it came, with no copy.

Used for X-Input-Location, X-Target-Variant and X-Inference-Id, and for any
header that later carries a location or a name (X-Target-Model, ...).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from core.errors import BadRequest

_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def header_text(name: str, value: str | None) -> str | None:
    """The text a client meant by header `name` (as Starlette gives it), or None if absent.

    `header_text("X-Input-Location", "s3://d/donn%C3%A9es.json")` → `"s3://d/données.json"`.
    Raises BadRequest (400) naming the header for bytes that are not UTF-8 and
    for a `%` that is not a `%XX` escape.
    """
    if value is None:
        return None
    if value.isascii():
        text = value
    else:
        try:
            text = value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(
                f"{name} is not UTF-8 ({exc.reason} at byte {exc.start}); send UTF-8, "
                "or percent-encode the characters that are not ASCII"
            ) from exc
    if "%" not in text:
        return text
    bad = _ESCAPE.search(text)
    if bad is not None:
        raise BadRequest(
            f"{name} has a % at character {bad.start()} that is not a %XX escape; "
            "write a literal % as %25"
        )
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"{name}'s %XX escapes do not decode to UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc

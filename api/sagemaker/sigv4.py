"""SigV4: parse a request's `Authorization` header and verify it with botocore's own signer.

boto3 signs with an API key's id as the access key id and its secret as the
secret access key (`sw_<id>_<secret>`: `aws_access_key_id=<id>`,
`aws_secret_access_key=<secret>`). The server recomputes the signature the same
way botocore computed it — `SigV4Auth.canonical_request`, `string_to_sign` and
`signature` over the method, path, query, the headers the client signed and
the SHA-256 of the body — and compares in constant time. A request more than
`MAX_SKEW_S` away from the server's clock is refused, as AWS does (a replayed
request is only good for that long).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api.sagemaker.errors import AwsError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60
_FIELD = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]+)")


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., ...`."""

    access_key: str
    date: str  # yyyymmdd of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse(header: str | None) -> Authorization | None:
    """The SigV4 fields of an Authorization header, or None when it is not SigV4.

    Raises AwsError `IncompleteSignature` (403) for a SigV4 header missing a part.
    """
    if not header or not header.startswith(ALGORITHM + " "):
        return None
    fields = dict(_FIELD.findall(header[len(ALGORITHM) :]))
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
    scope = fields.get("Credential", "").split("/")
    if missing or len(scope) != 5 or scope[4] != "aws4_request":
        raise AwsError(
            "IncompleteSignature",
            f"Authorization header requires Credential, SignedHeaders and Signature "
            f"(missing or malformed: {', '.join(missing) or 'Credential'})",
            403,
        )
    return Authorization(
        access_key=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


def verify(
    auth: Authorization,
    *,
    secret: str,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    now: dt.datetime,
) -> None:
    """Return if `auth.signature` is the one `secret` makes for this request; else raise.

    `path` is the raw (still percent-encoded) path as sent, `headers` the request's
    headers with lower-case names. Raises AwsError `InvalidSignatureException` (403)
    for a wrong signature, a missing signed header or a stale `X-Amz-Date`.
    """
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise AwsError(
            "IncompleteSignature", f"X-Amz-Date {amz_date!r} is missing or malformed", 403
        ) from None
    if abs((now - signed_at).total_seconds()) > MAX_SKEW_S:
        raise AwsError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is more than {MAX_SKEW_S // 60} minutes from the "
            f"server's time {now:%Y%m%dT%H%M%SZ}",
            403,
        )
    if not amz_date.startswith(auth.date):
        raise AwsError(
            "InvalidSignatureException", "the credential scope's date is not X-Amz-Date's", 403
        )
    missing = [name for name in auth.signed_headers if name not in headers]
    if missing or "host" not in auth.signed_headers:
        raise AwsError(
            "InvalidSignatureException",
            f"signed headers missing from the request: {missing or ['host']}",
            403,
        )
    url = f"http://{headers['host']}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={name: headers[name] for name in auth.signed_headers},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(auth.access_key, secret), auth.service, auth.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, auth.signature):
        raise AwsError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
            403,
        )

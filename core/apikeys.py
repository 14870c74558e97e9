"""API keys: `sw_<id>_<secret>`, stored as the id and the secret's SHA-256.

The secret is 32 random bytes, so a plain SHA-256 is enough (no slow hash is
needed against guessing); comparison is constant-time. Verifying a SigV4
signature (the SageMaker API, api/sagemaker/sigv4.py) needs the secret itself,
so with SLUICEWAY_KEY_ENCRYPTION_KEY set it is also stored Fernet-encrypted
(AES-128-CBC with an HMAC, from `cryptography`) and read back by `signing_secret`.
Scopes: `admin` (the control plane, and everything `invoke` may do) and `invoke`
(the data plane), optionally limited to named endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session

from core.config import get_settings
from core.errors import InvalidInput
from core.tables import ApiKey

SCOPES = ("admin", "invoke")
PREFIX = "sw"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    scope: str
    endpoints: frozenset[str] | None  # None: every endpoint

    def allows_endpoint(self, endpoint: str) -> bool:
        return self.endpoints is None or endpoint in self.endpoints


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session, *, scope: str, endpoints: list[str] | None = None, name: str | None = None
) -> str:
    """Store a new key and return it; this is the only time the key is visible."""
    if scope not in SCOPES:
        raise InvalidInput(f"scope {scope!r} is not one of {list(SCOPES)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            id=key_id,
            name=name,
            scope=scope,
            endpoints=",".join(sorted(set(endpoints))) if endpoints else None,
            secret_sha256=_digest(secret),
            signing_secret=_encrypt(secret),
        )
    )
    session.commit()
    return f"{PREFIX}_{key_id}_{secret}"


def split_key(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not key_id or not secret:
        return None
    return key_id, secret


def verify(row: ApiKey | None, secret: str) -> KeyInfo | None:
    """The key's grants if `secret` matches the stored digest and the key is not revoked."""
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        return None
    endpoints = frozenset(row.endpoints.split(",")) if row.endpoints else None
    return KeyInfo(id=row.id, scope=row.scope, endpoints=endpoints)


def _encrypt(secret: str) -> str | None:
    """The secret encrypted with SLUICEWAY_KEY_ENCRYPTION_KEY; None without that setting."""
    key = get_settings().key_encryption_key
    return Fernet(key.encode()).encrypt(secret.encode()).decode() if key else None


def signing_secret(row: ApiKey) -> str | None:
    """The secret a SigV4 signature of this key is made with, or None when it cannot be read:
    the key was made without SLUICEWAY_KEY_ENCRYPTION_KEY, or with another one."""
    key = get_settings().key_encryption_key
    if not key or row.signing_secret is None:
        return None
    try:
        return Fernet(key.encode()).decrypt(row.signing_secret.encode()).decode()
    except InvalidToken:
        return None

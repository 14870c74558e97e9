"""Signatures: what the notifier sends verifies with the secret, and with the docs' helper."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import re
from pathlib import Path

from core import webhooks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
BODY = b'{"type":"InferenceSucceeded","job_id":"j-1"}'


def test_the_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    expected = hmac.new(b"s3cret-key-0123456789", BODY, hashlib.sha256).hexdigest()
    assert webhooks.sign("s3cret-key-0123456789", BODY) == f"sha256={expected}"


def test_verify_accepts_the_signature_and_refuses_any_change() -> None:
    signature = webhooks.sign("k" * 32, BODY)
    assert webhooks.verify_signature("k" * 32, BODY, signature)
    assert not webhooks.verify_signature("k" * 31 + "x", BODY, signature)
    assert not webhooks.verify_signature("k" * 32, BODY + b" ", signature)
    assert not webhooks.verify_signature("k" * 32, BODY, signature.upper())
    assert not webhooks.verify_signature("k" * 32, BODY, "")


def test_delivery_headers_carry_the_id_type_attempt_and_signature() -> None:
    headers = webhooks.delivery_headers(
        delivery_id="d-1", event_type="InferenceFailed", attempt=3, body=BODY, secret="k" * 16
    )
    assert headers["X-Sluiceway-Delivery"] == "d-1"
    assert headers["X-Sluiceway-Event"] == "InferenceFailed"
    assert headers["X-Sluiceway-Attempt"] == "3"
    assert headers["Content-Type"] == "application/json"
    assert webhooks.verify_signature("k" * 16, BODY, headers["X-Sluiceway-Signature"])
    unsigned = webhooks.delivery_headers(
        delivery_id="d-1", event_type="InferenceFailed", attempt=1, body=BODY, secret=None
    )
    assert "X-Sluiceway-Signature" not in unsigned


def _docs_helper() -> str:
    text = DOCS.read_text()
    match = re.search(r"```python\n(import hashlib.*?)```", text, re.DOTALL)
    assert match, f"{DOCS} has no verification helper block"
    return match.group(1)


def test_the_documented_five_line_helper_verifies_real_signatures() -> None:
    """The docs' snippet is run as written, so it cannot rot."""
    source = _docs_helper()
    assert len([line for line in source.splitlines() if line.strip()]) == 5
    namespace: dict[str, object] = {}
    exec(source, namespace)
    verify = namespace["verify_signature"]
    assert callable(verify)
    assert verify("k" * 20, BODY, webhooks.sign("k" * 20, BODY)) is True
    assert verify("k" * 20, BODY, webhooks.sign("x" * 20, BODY)) is False


def test_the_code_and_the_docs_hold_the_same_helper() -> None:
    body = _docs_helper().split("\n\n", 1)[1].strip()
    assert body == inspect.getsource(webhooks.verify_signature).strip()

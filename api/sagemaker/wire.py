"""`SageMakerWire`: the ASGI middleware that serves AWS's two SageMaker protocols.

It runs before the native auth middleware and takes only its own requests:
- `POST /` with `X-Amz-Target: SageMaker.<Operation>` (AWS JSON 1.1) → control.py;
- `POST /endpoints/{name}/invocations` and `.../async-invocations` → runtime.py.
Everything else goes on untouched, so the native API pays one dict lookup.

With auth on, each request must carry a SigV4 signature made with an API key
(access key id = the key's id, secret = its secret) that sigv4.py verifies with
botocore's signer; the control plane needs scope `admin`, the runtime `invoke`
(and a key limited to named endpoints may invoke only those). With auth off any
signature, or none, is accepted. Every refusal is AWS's error shape (errors.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.middleware.auth import KEY_CACHE_S
from api.sagemaker import control, mapping, runtime, sigv4
from api.sagemaker.call import Call
from api.sagemaker.errors import JSON_11, AwsError, from_native, response
from core import apikeys
from core.apikeys import KeyInfo
from core.config import get_settings
from core.db import session_scope
from core.errors import SluicewayError
from core.tables import ApiKey

logger = logging.getLogger(__name__)

RUNTIME_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<kind>async-)?invocations$")
TARGET_PREFIX = "SageMaker."
# The runtime's bodies are bounded by the native limit; the control plane's are small.
MAX_CONTROL_BODY = 1024 * 1024


class SageMakerWire:
    def __init__(self, app: ASGIApp, *, auth: bool) -> None:
        self.app = app
        self.auth = auth
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/":
            target = _header(scope, b"x-amz-target")
            if target is None or not target.startswith(TARGET_PREFIX):
                await self.app(scope, receive, send)
                return
            answer = await self._control(scope, receive, target[len(TARGET_PREFIX) :])
        else:
            # The native realtime path (/v1/...) is the hot one: a prefix test, no regex.
            match = RUNTIME_PATH.match(path) if path.startswith("/endpoints/") else None
            if match is None:
                await self.app(scope, receive, send)
                return
            answer = await self._runtime(
                scope, receive, match["name"], asynchronous=bool(match["kind"])
            )
        await answer(scope, receive, send)

    async def _control(self, scope: Scope, receive: Receive, operation: str) -> Response:
        try:
            body = await _read(receive, MAX_CONTROL_BODY)
            auth = await self._authenticate(scope, body)
            if auth is not None and auth[0].scope != "admin":
                raise AwsError(
                    "AccessDeniedException",
                    f"this key's scope is {auth[0].scope!r}; SageMaker.{operation} needs 'admin'",
                    403,
                )
            try:
                request = orjson.loads(body or b"{}")
            except orjson.JSONDecodeError:
                raise AwsError("SerializationException", "the body is not JSON") from None
            if not isinstance(request, dict):
                raise AwsError("SerializationException", "the body is not a JSON object")
            region = auth[1] if auth is not None else _region(scope)
            call = Call(body=request, region=region)
            result = await run_in_threadpool(_run_control, operation, call)
            if operation in control.CHANGES_ROUTES:
                scope["app"].state.routes.invalidate(str(request["EndpointName"]))
            for endpoint in call.routes_changed:
                scope["app"].state.routes.invalidate(endpoint)
        except AwsError as exc:
            return response(exc, runtime=False)
        except SluicewayError as exc:
            return response(from_native(exc, runtime=False), runtime=False)
        except ClientDisconnect:
            return response(AwsError("SerializationException", "incomplete body"), runtime=False)
        except Exception:
            logger.exception("SageMaker.%s failed", operation)
            return response(
                AwsError("InternalFailure", "internal error; see the API log", 500), runtime=False
            )
        return Response(orjson.dumps(result), media_type=JSON_11)

    async def _runtime(
        self, scope: Scope, receive: Receive, name: str, *, asynchronous: bool
    ) -> Response:
        try:
            body = await _read(receive, get_settings().max_inline_body_bytes)
            auth = await self._authenticate(scope, body)
            if auth is not None and not auth[0].allows_endpoint(name):
                raise AwsError(
                    "AccessDeniedException", f"this key may not invoke endpoint {name!r}", 403
                )
            return await runtime.invoke(scope, body, name, asynchronous=asynchronous)
        except AwsError as exc:
            return response(exc, runtime=True)
        except SluicewayError as exc:
            return response(from_native(exc, runtime=True), runtime=True)
        except ClientDisconnect:
            return response(AwsError("ValidationError", "incomplete body"), runtime=True)
        except Exception:
            logger.exception("SageMaker runtime call to endpoint %s failed", name)
            failure = AwsError("InternalFailure", "internal error; see the API log", 500)
            return response(failure, runtime=True)

    async def _authenticate(self, scope: Scope, body: bytes) -> tuple[KeyInfo, str] | None:
        """(the key's grants, the signed region) with auth on; None with auth off."""
        if not self.auth:
            return None
        header = _header(scope, b"authorization")
        parsed = sigv4.parse(header)
        if parsed is None:
            raise AwsError(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token: sign the request with SigV4 (an API key's id "
                "and secret as the access key and secret key)",
                403,
            )
        row = await self._row(parsed.access_key)
        secret = apikeys.signing_secret(row) if row is not None else None
        info = apikeys.verify(row, secret) if secret is not None else None
        if info is None:
            raise AwsError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid: no usable API key with "
                f"id {parsed.access_key!r} (unknown, revoked, or made without "
                "SLUICEWAY_KEY_ENCRYPTION_KEY)",
                403,
            )
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        sigv4.verify(
            parsed,
            secret=secret or "",
            method=scope["method"],
            path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            now=dt.datetime.now(dt.UTC),
        )
        return info, parsed.region

    async def _row(self, key_id: str) -> ApiKey | None:
        """The key's row, read from SQL at most every KEY_CACHE_S (a revocation takes
        effect within that time, as for Bearer keys)."""
        cached = self._keys.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < KEY_CACHE_S:
            return cached[1]
        row = await run_in_threadpool(_load_key, key_id)
        if len(self._keys) > 10_000:  # unknown ids are cached too; keep a flood bounded
            self._keys.clear()
        self._keys[key_id] = (time.monotonic(), row)
        return row


def _run_control(operation: str, call: Call) -> dict[str, Any]:
    with session_scope() as session:
        return control.run(session, operation, call)


def _load_key(key_id: str) -> ApiKey | None:
    with session_scope() as session:
        row = session.get(ApiKey, key_id)
        if row is not None:
            session.expunge(row)
        return row


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _region(scope: Scope) -> str:
    """The region the request was signed for (its ARNs name it), else us-east-1."""
    try:
        parsed = sigv4.parse(_header(scope, b"authorization"))
    except AwsError:
        parsed = None
    return parsed.region if parsed is not None else mapping.DEFAULT_REGION


async def _read(receive: Receive, limit: int) -> bytes:
    chunks, total = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise AwsError("ValidationError", f"the body is over the limit of {limit} bytes", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)

"""One HTTP attempt of one webhook delivery: resolve, check, POST, time and cap it.

Safety first: the host name is resolved here and every address it resolves to
is checked by core/url_safety.py before anything is sent, and the request then
goes to the checked address itself (Host header and TLS server name keep the
original name), so a DNS answer that changes between check and connect (DNS
rebinding) cannot redirect it. Redirects are not followed (a 3xx is a failed
attempt), proxies from the environment are ignored, connecting, sending and each
read wait at most `webhook_timeout_s`, reading the answer stops at that deadline
counted from the start, and at most `webhook_max_response_kb` of it is read.
The result is an `Outcome` for the notifier to record; this module never raises
for a receiver's fault.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from core.errors import InvalidInput
from core.tables import utcnow
from core.url_safety import IPAddress, Network, check_address

ERROR_EXCERPT_CHARS = 300


@dataclass(frozen=True, slots=True)
class Outcome:
    started_at: dt.datetime
    latency_ms: float
    status_code: int | None = None
    error: str | None = None
    retryable: bool = True

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """A pooled, thread-safe HTTP client for deliveries (keep-alive per receiver)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        max_response_bytes: int,
        allowed: Sequence[Network],
        max_connections: int,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.allowed = list(allowed)
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def close(self) -> None:
        self.client.close()

    def resolve(self, url: httpx.URL) -> IPAddress:
        """The address to connect to, after checking every address the host resolves to."""
        host = url.host
        try:
            return self._checked(str(url), [ipaddress.ip_address(host)])
        except ValueError:
            pass
        port = url.port or (443 if url.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        return self._checked(str(url), addresses)

    def _checked(self, url: str, addresses: list[IPAddress]) -> IPAddress:
        for address in addresses:
            check_address(url, address, self.allowed)  # all of them, or a later try could pick one
        return addresses[0]

    def send(self, *, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started_at, started = utcnow(), time.perf_counter()

        def outcome(
            *, status_code: int | None = None, error: str | None = None, retryable: bool = True
        ) -> Outcome:
            return Outcome(
                started_at=started_at,
                latency_ms=(time.perf_counter() - started) * 1000,
                status_code=status_code,
                error=error,
                retryable=retryable,
            )

        try:
            target = httpx.URL(url)
            address = self.resolve(target)
        except InvalidInput as exc:
            return outcome(error=f"refused: {exc.detail}", retryable=False)
        except (socket.gaierror, UnicodeError) as exc:
            return outcome(error=f"cannot resolve {url!r}: {exc}")
        except httpx.InvalidURL as exc:
            return outcome(error=f"invalid URL {url!r}: {exc}", retryable=False)
        request_headers = dict(headers)
        request_headers["Host"] = target.netloc.decode("ascii")
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        deadline = started + self.timeout_s
        try:
            with self.client.stream(
                "POST",
                target.copy_with(host=str(address)),
                content=body,
                headers=request_headers,
                extensions=extensions,
            ) as response:
                excerpt = self._read_capped(response, deadline)
        except httpx.TimeoutException as exc:
            return outcome(error=f"timed out after {self.timeout_s:g} s ({type(exc).__name__})")
        except TimeoutError:
            return outcome(error=f"timed out after {self.timeout_s:g} s reading the answer")
        except httpx.HTTPError as exc:
            return outcome(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if 200 <= response.status_code < 300:
            return outcome(status_code=response.status_code)
        text = excerpt.decode("utf-8", "replace")[:ERROR_EXCERPT_CHARS].strip()
        reason = f"HTTP {response.status_code}" + (f": {text}" if text else "")
        return outcome(status_code=response.status_code, error=reason)

    def _read_capped(self, response: httpx.Response, deadline: float) -> bytes:
        """Up to `max_response_bytes` of the answer, within the attempt's deadline."""
        kept = bytearray()
        for chunk in response.iter_raw():
            if time.perf_counter() > deadline:
                raise TimeoutError
            kept += chunk[: self.max_response_bytes - len(kept)]
            if len(kept) >= self.max_response_bytes:
                break  # the rest is dropped with the connection
        return bytes(kept[: ERROR_EXCERPT_CHARS * 4])

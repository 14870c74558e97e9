"""A tiny webhook receiver on loopback for `sluice demo`: it keeps what arrives and answers 204.

The demo starts it, subscribes its URL to a topic, and waits for the event of
its async job; the signature is then checked with the five-line helper of
docs/webhooks.md (`core.webhooks.verify_signature`).
"""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Webhook:
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class LoopbackReceiver:
    """`with LoopbackReceiver() as receiver:` listens on 127.0.0.1 at a free port."""

    def __init__(self) -> None:
        self.received: list[Webhook] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
                hook = Webhook(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                self.send_response(204)
                self.end_headers()
                with receiver._arrived:
                    receiver.received.append(hook)
                    receiver._arrived.notify_all()

            def log_message(self, *_args: Any) -> None:
                pass  # the demo prints what matters itself

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/sluiceway-demo"

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, *, timeout_s: float) -> Webhook | None:
        """The first webhook received, waiting up to `timeout_s`; None if none came."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while not self.received:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._arrived.wait(left)
            return self.received[0]

"""Parts of the webhook tests: a real HTTP receiver on loopback, and a stack with a scheduler.

The stack retries fast (backoff 0.3 s doubling to 2 s, 2 s timeout) so that a
day of real retrying fits in seconds; everything else is as in production.
"""

from __future__ import annotations

import http.server
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from devstack.servers import SeaweedServer, free_port
from tests.integration import models
from tests.integration.conftest import Stack, create_endpoint, make_stack, register, unique

CALLBACK_SECRET = "callback-secret-0123456789"
BAD_ROW = [[-5000.0, 0.0, 0.0, 0.0]]  # the picky model raises on it


# --- a real HTTP receiver ------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def delivery_id(self) -> str:
        return self.headers["x-sluiceway-delivery"]

    @property
    def event(self) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.body)
        return result


@dataclass
class Receiver:
    """A threaded HTTP/1.0 server on 127.0.0.1 that records each POST and answers `status_for`.

    HTTP/1.0 closes every connection after its answer, so `stop()` really makes
    the receiver unreachable (no kept-alive connection goes on being served).
    """

    port: int = field(default_factory=free_port)
    status_for: Callable[[Received, int], int] = lambda _request, _nth: 204
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) != length:
                    # The sender died mid-request (a scheduler SIGKILLed while
                    # sending): nothing was delivered, and nothing is answered.
                    return
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver.lock:
                    receiver.requests.append(request)
                    nth = sum(r.delivery_id == request.delivery_id for r in receiver.requests)
                status = receiver.status_for(request, nth)
                time.sleep(receiver.delay_s)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.lock:
                    receiver.answered += 1

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def received(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def job_ids(self, path: str) -> set[str]:
        return {r.event["job_id"] for r in self.received(path)}


# --- the stack -------------------------------------------------------------------------


@dataclass
class Scheduler:
    stack: Stack
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = self.stack._spawn(["scheduler"], "scheduler.log")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Hooks:
    stack: Stack
    scheduler: Scheduler
    xgb: str
    picky: str

    def client(self) -> httpx.Client:
        return self.stack.client()

    def topic(self, client: httpx.Client) -> str:
        name = unique("topic")
        response = client.post("/v1/topics", json={"name": name})
        assert response.status_code == 201, response.text
        return name

    def subscribe(self, client: httpx.Client, topic: str, url: str, **extra: Any) -> dict[str, Any]:
        response = client.post(f"/v1/topics/{topic}/subscriptions", json={"url": url, **extra})
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def endpoint(
        self, client: httpx.Client, *, success: str | None = None, error: str | None = None
    ) -> str:
        """Variant `a` (xgboost, serves by default) and `p` (picky torch, pinned only)."""
        spec = {
            "name": unique("hook"),
            "variants": [
                {"name": "a", "model": self.xgb, "weight": 1},
                {"name": "p", "model": self.picky, "weight": 0},
            ],
            "async": {"success_topic": success, "error_topic": error},
        }
        return str(create_endpoint(client, spec)["name"])

    def submit(
        self, client: httpx.Client, endpoint: str, *, bad: bool = False, **headers: str
    ) -> str:
        rows = BAD_ROW if bad else models.random_rows(2, seed=11)
        if bad:
            headers["X-Target-Variant"] = "p"
        response = client.post(
            f"/v1/endpoints/{endpoint}/async-invocations",
            json={"instances": rows},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def deliveries(self, client: httpx.Client, topic: str, **params: Any) -> list[dict[str, Any]]:
        response = client.get(f"/v1/topics/{topic}/deliveries", params={"limit": 1000, **params})
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result


@contextmanager
def running_hooks(
    home: Path, s3: SeaweedServer, database_url: str, model_files: dict[str, Path], *, workers: int
) -> Iterator[Hooks]:
    """API, `workers` worker processes and a scheduler (notifier) on `database_url`."""
    stack = make_stack(
        home,
        s3,
        database_url,
        SLUICEWAY_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
        SLUICEWAY_WEBHOOK_BACKOFF_BASE_S="0.3",
        SLUICEWAY_WEBHOOK_BACKOFF_CAP_S="2",
        SLUICEWAY_WEBHOOK_MAX_ATTEMPTS="60",
        SLUICEWAY_WEBHOOK_TIMEOUT_S="2",
        SLUICEWAY_WEBHOOK_POLL_S="0.1",
        SLUICEWAY_WEBHOOK_CALLBACK_SECRET=CALLBACK_SECRET,
        SLUICEWAY_SCALER_BACKEND="none",  # the tests start the workers themselves
    )
    scheduler = Scheduler(stack)
    try:
        stack.start_api()
        for _ in range(workers):
            stack.start_worker()
        scheduler.start()
        stack.wait_workers(workers)
        with stack.client() as client:
            xgb = register(client, unique("xgb"), "xgboost", model_files["xgb"])["name"]
            picky = register(client, unique("picky"), "torch", model_files["picky"])["name"]
        yield Hooks(stack=stack, scheduler=scheduler, xgb=xgb, picky=picky)
    finally:
        scheduler.stop()
        stack.stop()

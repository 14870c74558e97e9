"""Fault-injection helpers: a TCP proxy that can cut PostgreSQL off, and a steady load."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import httpx
import redis

from core.broker import priority_lists, unacked_index_key, unacked_key, unacked_mutex_key
from devstack.servers import free_port


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@dataclass
class Load:
    """Async submissions and realtime calls at a steady pace, outcomes recorded."""

    api_url: str
    endpoint: str
    body: dict[str, object]
    accepted: list[str] = field(default_factory=list)
    async_refused: Counter[int] = field(default_factory=Counter)
    realtime: Counter[str] = field(default_factory=Counter)
    # Set by the test around a SIGKILL of the API: a call in flight then loses
    # its connection, which is the only way a killed server can answer.
    api_killed: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._async_loop, self._realtime_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _async_loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                response = httpx.post(
                    f"{self.api_url}/v1/endpoints/{self.endpoint}/async-invocations",
                    json=self.body,
                    timeout=30,
                )
            except httpx.HTTPError:
                self.async_refused[0] += 1  # no answer at all (API down): not accepted
                continue
            if response.status_code == 202:
                self.accepted.append(response.json()["job_id"])
            else:
                self.async_refused[response.status_code] += 1

    def _realtime_loop(self) -> None:
        while not self._stop.wait(0.1):
            started = time.monotonic()
            try:
                response = httpx.post(
                    f"{self.api_url}/v1/endpoints/{self.endpoint}/invocations",
                    json=self.body,
                    headers={"X-Timeout-Ms": "10000"},
                    timeout=30,
                )
                outcome = str(response.status_code)
            except httpx.ConnectError:
                outcome = "refused"  # the API process is down: a clear, immediate failure
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                outcome = "dropped by the kill" if self.api_killed.is_set() else type(exc).__name__
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            if time.monotonic() - started > 25:
                outcome = "hang"
            self.realtime[outcome] += 1


def where_are(
    job_rows: list[tuple[str, str, int]], *, redis_url: str, namespace: str, queue: str
) -> str:
    """Where each unfinished job's message is in Redis, for a failure message.

    `job_rows` are (id, status, attempts). A job stuck because its message sits
    in the unacknowledged set that nobody restores looks different from one
    whose message is nowhere (the reconciler's case) or still queued.
    """
    client = redis.Redis.from_url(redis_url)
    unacked, index = unacked_key(namespace), unacked_index_key(namespace)
    lists = {key: client.lrange(key, 0, -1) for key in priority_lists(queue)}
    reserved: dict[bytes, tuple[bytes, float | None]] = {
        tag: (message, client.zscore(index, tag))
        for tag, message in cast(dict[bytes, bytes], client.hgetall(unacked)).items()
    }
    now = time.time()
    lines = [
        f"unacked: {len(reserved)} message(s); restore mutex TTL "
        f"{client.ttl(unacked_mutex_key(namespace))} s; lists "
        + ", ".join(f"{key!r}: {len(messages)}" for key, messages in lists.items())
    ]
    for job_id, status, attempts in job_rows[:20]:
        needle = job_id.encode()
        found = [key for key, messages in lists.items() if any(needle in m for m in messages)]
        found += [
            f"unacked {tag.decode()} reserved {now - (score or now):.0f} s ago"
            for tag, (message, score) in reserved.items()
            if needle in message
        ]
        lines.append(f"{job_id} {status} attempts={attempts}: {', '.join(found) or 'nowhere'}")
    return "\n".join(lines)

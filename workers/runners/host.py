"""The handler host: a worker's python handlers run in a child process it can stop.

A handler is its author's code; one stuck in a loop must not hold the worker
forever. So a worker does not import handlers itself: its `HandlerHost`
starts a child process (`python -m workers.runners.host`, on first use) that
loads each handler bundle once (`model_fn`) and runs calls sent over a socket
pair, one at a time. A call that does not answer within its timeout has the
host killed (SIGKILL) — the call fails with InvocationTimeout, the worker takes
its next invocation, and the next handler call starts a fresh host, which
loads the handlers it is asked for again. A host that dies (a handler calls
`os._exit`, or crashes the interpreter) fails the call in progress with a
ModelError and is likewise replaced.

Cost: one round trip per call over a local socket — a 4-byte length, then the
pickled message, each way: an empty round trip ~40 µs, a handler call ~60 µs
against ~6 µs in the worker's own process, on the 2-core development machine
(bench/handlers.py, figures in bench/README.md). The socket's own timeout
bounds the wait (a `multiprocessing` Connection with `poll` cost ~80 µs).
The built-in torch and XGBoost runners stay in the worker's process, on the
hot path.

The host exits with its worker: when the worker closes the socket (EOF), and
when the worker dies (Linux's parent-death signal, and a watch on the parent
pid for other systems). It ignores SIGINT and SIGTERM, which are for the
worker: a warm shutdown lets the call in progress finish.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.errors import (
    ERROR_KINDS,
    InvocationTimeout,
    ModelError,
    SluicewayError,
    describe,
    error_kind,
)
from core.timeouts import DEFAULT_INVOCATION_TIMEOUT_S
from workers.runners.base import Runner

logger = logging.getLogger(__name__)

# Loading a handler (unpacking it, importing it, its model_fn) is bounded too.
LOAD_TIMEOUT_S = float(DEFAULT_INVOCATION_TIMEOUT_S)
STOP_WAIT_S = 5.0
PR_SET_PDEATHSIG = 1


class HandlerHost:
    """The worker's side: starts the host process when needed, calls it, stops it.

    Thread-safe (one call at a time): the batching consumer and Celery's own
    task path may share it.
    """

    def __init__(self, *, device: str) -> None:
        self.device = device
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: socket.socket | None = None
        self._in_host: set[str] = set()  # handlers loaded in the current host
        self.traits: dict[str, dict[str, Any]] = {}  # key → PythonRunner.traits()
        self.frameworks: dict[str, str] = {}  # key → "python", or "torch" (a model.tar.gz)
        self._lock = threading.Lock()
        self.starts = 0  # how many host processes this worker has started
        atexit.register(self.stop)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def load(self, key: str, path: Path, *, framework: str = "python") -> dict[str, Any]:
        """Load the handler bundle at `path` under `key` now (ModelError if it will not load).

        Returns its traits: `batch_mode` (None, "list" or "stack"),
        `whole_payload_output`, `output_fn` (whether it has its own), as
        workers/runners/python.py reads them.
        """
        with self._lock:
            self.frameworks[key] = framework
            self._ensure_loaded(key, path)
            return self.traits[key]

    def call(self, key: str, path: Path, method: str, *args: Any, timeout_s: float) -> Any:
        """Call one of the handler's pipeline-step methods (`STEP_METHODS`) in the host."""
        with self._lock:
            self._ensure_loaded(key, path)
            return self._request(
                ("call", key, method, args),
                timeout_s=timeout_s,
                doing=f"running {method} of handler {path.name}",
            )

    def invoke(
        self,
        key: str,
        path: Path,
        body: bytes,
        content_type: str,
        accept: str | None,
        *,
        timeout_s: float,
    ) -> tuple[bytes, str]:
        """Run one call of the handler `key`; InvocationTimeout after `timeout_s` seconds."""
        with self._lock:
            self._ensure_loaded(key, path)
            reply = self._request(
                ("invoke", key, body, content_type, accept),
                timeout_s=timeout_s,
                doing=f"running handler {path.name}",
            )
        payload, out_type = reply
        return payload, out_type

    def invoke_batch(
        self,
        key: str,
        path: Path,
        calls: list[tuple[bytes, str, str | None]],
        *,
        timeout_s: float,
    ) -> list[tuple[bytes, str] | SluicewayError]:
        """Run a batching handler's calls in one round trip: each call's answer or error.

        InvocationTimeout (for all of them) after `timeout_s` seconds.
        """
        with self._lock:
            self._ensure_loaded(key, path)
            replies = self._request(
                ("invoke_batch", key, calls),
                timeout_s=timeout_s,
                doing=f"running handler {path.name} on a batch of {len(calls)}",
            )
        out: list[tuple[bytes, str] | SluicewayError] = []
        for status, *rest in replies:
            if status == "ok":
                out.append(rest[0])
            else:
                out.append(ERROR_KINDS.get(str(rest[0]), ModelError)(str(rest[1])))
        return out

    def unload(self, key: str) -> None:
        """Drop a handler from the host (the worker's model cache evicted it)."""
        with self._lock:
            if key not in self._in_host or self._conn is None:
                return
            self._in_host.discard(key)
            try:
                self._request(("unload", key), timeout_s=STOP_WAIT_S, doing="unloading")
            except SluicewayError:
                logger.warning("could not unload handler %s; the host was restarted", key)

    def stop(self) -> None:
        """Close the host: it exits at end of input; killed if it does not within seconds."""
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        self._in_host.clear()
        if conn is not None:
            conn.close()
        if process is not None and process.poll() is None:
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # --- inside the lock ------------------------------------------------------------

    def _ensure_loaded(self, key: str, path: Path) -> None:
        if key in self._in_host and self._conn is not None:
            return
        self.traits[key] = self._request(
            ("load", key, str(path), self.device, self.frameworks.get(key, "python")),
            timeout_s=LOAD_TIMEOUT_S,
            doing=f"loading {path.name}",
        )
        self._in_host.add(key)

    def _request(self, message: tuple[Any, ...], *, timeout_s: float, doing: str) -> Any:
        conn = self._connection()
        deadline = time.monotonic() + timeout_s
        try:
            send_message(conn, message, deadline=deadline)
            reply = receive_message(conn, deadline=deadline)
        except TimeoutError as exc:
            self._kill()
            logger.warning(
                "handler host: no answer within %.3g s %s; host stopped", timeout_s, doing
            )
            raise InvocationTimeout(
                f"no answer within {timeout_s:g} s while {doing}; the handler was stopped"
            ) from exc
        except (EOFError, OSError) as exc:
            code = self._kill()
            raise ModelError(
                f"the handler process died while {doing} (exit code {code}): {describe(exc)}"
            ) from exc
        status, *rest = reply
        if status == "ok":
            return rest[0]
        kind, detail = rest
        raise ERROR_KINDS.get(str(kind), ModelError)(str(detail))

    def _connection(self) -> socket.socket:
        if self._conn is not None and self._process is not None and self._process.poll() is None:
            return self._conn
        self._kill()
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workers.runners.host",
                    str(theirs.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=(theirs.fileno(),),
                # Its own session: a Ctrl-C or group SIGTERM meant for the worker
                # does not kill a handler call the worker is finishing.
                start_new_session=True,
            )
        finally:
            theirs.close()
        self._conn = ours
        self.starts += 1
        logger.info("handler host started (pid %d)", self._process.pid)
        return self._conn

    def _kill(self) -> int | None:
        """Stop the host at once (stuck or dead); the next call starts a fresh one."""
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        self._in_host.clear()
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        return process.wait()


class HostedPythonRunner(Runner):
    """A python handler as the worker sees it: calls forwarded to its host process."""

    def __init__(self, host: HandlerHost, path: Path, *, framework: str = "python") -> None:
        self.host = host
        self.path = path
        self.key = str(path)
        traits = host.load(self.key, path, framework=framework)
        # "list" / "stack": the worker sends it whole batches (`invoke_batch`).
        self.batch_mode: str | None = traits["batch_mode"]
        self.whole_payload_output: bool = traits["whole_payload_output"]
        self.has_output_fn: bool = traits["output_fn"]

    def invoke(
        self, body: bytes, content_type: str, accept: str | None, *, timeout_s: float | None = None
    ) -> tuple[bytes, str]:
        limit = timeout_s if timeout_s is not None else float(DEFAULT_INVOCATION_TIMEOUT_S)
        return self.host.invoke(self.key, self.path, body, content_type, accept, timeout_s=limit)

    def invoke_batch(
        self, calls: list[tuple[bytes, str, str | None]], *, timeout_s: float | None = None
    ) -> list[tuple[bytes, str] | SluicewayError]:
        """A batching handler's answers to many calls at once (one per call, in order)."""
        limit = timeout_s if timeout_s is not None else float(DEFAULT_INVOCATION_TIMEOUT_S)
        return self.host.invoke_batch(self.key, self.path, calls, timeout_s=limit)

    # As a pipeline step (workers/runners/pipeline.py): values in, values out.

    def decode_instances(self, body: bytes, content_type: str) -> Any:
        return self._call("decode_instances", body, content_type)

    def predict_values(self, values: Any) -> list[Any]:
        result: list[Any] = self._call("predict_values", values)
        return result

    def encode_values(
        self, predictions: list[Any], content_type: str, accept: str | None
    ) -> tuple[bytes, str]:
        result: tuple[bytes, str] = self._call("encode_values", predictions, content_type, accept)
        return result

    def _call(self, method: str, *args: Any) -> Any:
        return self.host.call(
            self.key, self.path, method, *args, timeout_s=float(DEFAULT_INVOCATION_TIMEOUT_S)
        )

    def close(self) -> None:
        self.host.unload(self.key)


# --- the wire: a 4-byte length, then the pickled message ---------------------------------

HEADER = struct.Struct("!I")
FIRST_READ = 4096  # most realtime bodies and answers fit; larger ones take a second read


def send_message(sock: socket.socket, message: Any, *, deadline: float | None = None) -> None:
    """Send one message; TimeoutError if the other side takes none of it by `deadline`
    (a host stuck in a handler does not read: a large body would block for ever)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    _set_timeout(sock, deadline)
    sock.sendall(HEADER.pack(len(data)) + data)


def receive_message(sock: socket.socket, *, deadline: float | None = None) -> Any:
    """The next message; TimeoutError at `deadline` (monotonic), EOFError if the peer closed.

    One read usually brings the whole of a small message, header included (a
    system call saved each way, ~10 % of a round trip).
    """
    first = bytearray(FIRST_READ)
    got = 0
    while got < HEADER.size:
        got += _read_into(sock, memoryview(first)[got:], deadline)
    (size,) = HEADER.unpack_from(first)
    end = HEADER.size + size
    if got >= end:
        return pickle.loads(memoryview(first)[HEADER.size : end])
    body = bytearray(size)
    body[: got - HEADER.size] = memoryview(first)[HEADER.size : got]
    view, have = memoryview(body), got - HEADER.size
    while have < size:
        have += _read_into(sock, view[have:], deadline)
    return pickle.loads(body)


def _read_into(sock: socket.socket, view: memoryview, deadline: float | None) -> int:
    _set_timeout(sock, deadline)
    read = sock.recv_into(view)
    if read == 0:
        raise EOFError("the other side closed the connection")
    return read


def _set_timeout(sock: socket.socket, deadline: float | None) -> None:
    """Bound the next socket call by `deadline`; None leaves the socket as it is (blocking
    in the host, which waits for its worker as long as it takes)."""
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    sock.settimeout(left)


# --- the host process ---------------------------------------------------------------


def serve(conn: socket.socket) -> None:
    """Answer the worker's requests until it closes the connection."""
    from workers.runners.python import STEP_METHODS, PythonRunner

    handlers: dict[str, PythonRunner] = {}
    while True:
        try:
            message = receive_message(conn)
        except (EOFError, OSError):
            return
        op, key, *args = message
        try:
            if op == "invoke":
                reply: tuple[Any, ...] = ("ok", handlers[key].invoke(*args))
            elif op == "invoke_batch":
                reply = ("ok", handlers[key].run_batch(*args))
            elif op == "call":
                method, call_args = args
                if method not in STEP_METHODS:
                    raise ValueError(f"not a step method: {method!r}")
                reply = ("ok", getattr(handlers[key], method)(*call_args))
            elif op == "load":
                path, device, framework = args
                handlers[key] = PythonRunner(Path(path), device, framework=framework)
                reply = ("ok", handlers[key].traits())
            elif op == "unload":
                handlers.pop(key, None)
                reply = ("ok", None)
            else:
                reply = ("error", "internal", f"unknown request {op!r}")
        except SluicewayError as exc:
            reply = ("error", error_kind(exc), exc.detail)
        except Exception as exc:  # a bug of ours, not the handler's: keep serving
            logger.exception("handler host: %s %s failed", op, key)
            reply = ("error", "model", f"the handler host failed: {describe(exc)}")
        send_message(conn, reply)


def _exit_with_parent(parent: int) -> None:
    """Die with the worker, even while a handler is stuck."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    fd, parent = int(argv[1]), int(argv[2])
    _exit_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=os.environ.get("SLUICEWAY_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    serve(socket.socket(fileno=fd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

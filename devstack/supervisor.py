"""`sluice up`'s supervisor: the whole stack on one machine, in the foreground.

`Stack` applies the migrations, uses the configured Redis and S3 store when they
answer (else starts a private `redis-server` and a SeaweedFS S3 server under
`home`), runs `sluice api` and `sluice scheduler` as child processes (the
scheduler starts the workers) with the resolved settings in their environment,
waits for GET /readyz, and keeps everything alive until Ctrl-C or SIGTERM, then
stops the children before the servers they depend on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from core.config import Settings
from devstack.servers import (
    LOOPBACK,
    LocalServer,
    RedisServer,
    SeaweedServer,
    port_is_free,
    redis_reachable,
    s3_reachable,
    set_parent_death_signal,
)

logger = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Everything runs on this machine, so webhooks to it (a receiver under
# development, `sluice demo`'s own) are allowed on top of any configured networks.
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
DEFAULT_S3_PORT = 9000
STACK_FILE = "stack.json"
# A child that dies this many times within CRASH_WINDOW_S is broken, not
# unlucky: stop the stack instead of restarting it forever.
MAX_CRASHES = 5
CRASH_WINDOW_S = 60.0


class StackError(RuntimeError):
    """The stack could not start, or a child keeps dying."""


class Shutdown(Exception):
    """Raised in the main thread by SIGINT / SIGTERM."""


def _term_with_parent() -> None:
    # SIGTERM: a child left alone still gets to stop the workers it started.
    set_parent_death_signal(signal.SIGTERM)


@dataclass
class Child:
    """One supervised `sluice <command>` process, in its own process group."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    crashes: list[float] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        # Own session: a terminal's Ctrl-C reaches only `sluice up`, which then
        # sends each child one SIGTERM and stops the servers only after them.
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_term_with_parent,
        )
        logger.info("started %s (pid %d)", self.name, self.proc.pid)

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    def reap(self, deadline: float) -> None:
        """Wait for the child until `deadline`, then SIGKILL its whole group.

        The group kill also takes any worker the scheduler started and left behind.
        """
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %d) ignored SIGTERM; killing it", self.name, self.proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class Stack:
    """Everything `sluice up` runs, resolved from `settings` and the command's options."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str,
        port: int,
        cpu_slots: int = 0,
        ready_timeout_s: float = 120.0,
        stop_timeout_s: float = 20.0,
        console: Console | None = None,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.cpu_slots = cpu_slots
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        # Piped to a log (as `make demo` does), rich would wrap at 80 columns
        # and cut the URLs in the table short.
        self.console = console or Console(width=None if sys.stdout.isatty() else 160)
        self.home = settings.home.resolve()
        self.api_url = f"http://{LOOPBACK if host in {'0.0.0.0', '::'} else host}:{port}"
        self.redis_url = settings.redis_url
        self.s3_endpoint = settings.s3_endpoint
        self.servers: list[LocalServer] = []
        self.children: list[Child] = []
        self._env: dict[str, str] = {}

    # --- start -------------------------------------------------------------------
    def start(self) -> None:
        """Bring everything up and return once the API is ready; raise StackError if not."""
        if not port_is_free(self.port, host=self.host):
            raise StackError(f"port {self.port} on {self.host} is in use; pass --port")
        self.home.mkdir(parents=True, exist_ok=True)
        from core.db import upgrade_schema

        database_url = self.settings.sqlalchemy_url
        upgrade_schema(database_url)
        self._ensure_redis()
        self._ensure_s3()
        self._env = self._child_env(database_url)
        command = [sys.executable, "-m", "cli.main"]
        self.children = [
            Child("api", [*command, "api", "--host", self.host, "--port", str(self.port)]),
            Child("scheduler", [*command, "scheduler"]),
        ]
        for child in self.children:
            child.start(self._env)
        self._print_table(database_url)
        self._wait_ready()
        self._write_stack_file()
        self.console.print(f"[bold green]ready[/] at {self.api_url} (Ctrl-C stops everything)")

    def _ensure_redis(self) -> None:
        if redis_reachable(self.redis_url):
            logger.info("using Redis at %s", self.redis_url)
            return
        # A loopback URL whose port is free is started where it points, so the
        # configured URL stays true; anything else gets a free port.
        url = urlparse(self.redis_url)
        port = url.port or 6379
        if url.hostname in LOCAL_HOSTS and port_is_free(port):
            server = RedisServer(self.home / "redis", port=port, appendonly=True)
        else:
            logger.warning("Redis at %s does not answer; starting a local one", self.redis_url)
            server = RedisServer(self.home / "redis", appendonly=True)
        self._start_server(server)
        self.redis_url = server.url

    def _ensure_s3(self) -> None:
        if self.s3_endpoint and s3_reachable(self.settings):
            logger.info("using the S3 store at %s", self.s3_endpoint)
            return
        port: int | None = None
        if self.s3_endpoint:
            url = urlparse(self.s3_endpoint)
            if url.hostname in LOCAL_HOSTS and url.port and port_is_free(url.port):
                port = url.port
            else:
                logger.warning(
                    "S3 store at %s does not answer; starting a local one", self.s3_endpoint
                )
        elif port_is_free(DEFAULT_S3_PORT):
            port = DEFAULT_S3_PORT
        server = SeaweedServer(
            self.home / "s3",
            access_key=self.settings.s3_access_key,
            secret_key=self.settings.s3_secret_key,
            region=self.settings.s3_region,
            port=port,
        )
        self._start_server(server)
        self.s3_endpoint = server.endpoint

    def _start_server(self, server: LocalServer) -> None:
        # Recorded before it starts, so an interrupt mid-start still stops it.
        self.servers.append(server)
        try:
            server.start()
        except RuntimeError as exc:
            raise StackError(str(exc)) from exc

    def _child_env(self, database_url: str) -> dict[str, str]:
        """The parent's environment plus every setting this stack resolved."""
        env = dict(os.environ)
        env.update(
            {
                "SLUICEWAY_HOME": str(self.home),
                # Absolute: every child must open the very same SQLite file.
                "SLUICEWAY_DATABASE_URL": database_url,
                "SLUICEWAY_REDIS_URL": self.redis_url,
                "SLUICEWAY_S3_ENDPOINT": self.s3_endpoint,
                "SLUICEWAY_API_URL": self.api_url,
                "SLUICEWAY_API_HOST": self.host,
                "SLUICEWAY_API_PORT": str(self.port),
                "SLUICEWAY_LOCAL_CPU_SLOTS": str(self.cpu_slots),
                "SLUICEWAY_WEBHOOK_ALLOWED_NETWORKS": self._webhook_networks(),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _webhook_networks(self) -> str:
        configured = [n.strip() for n in self.settings.webhook_allowed_networks.split(",")]
        return ",".join(dict.fromkeys([*filter(None, configured), *LOOPBACK_NETWORKS]))

    def _print_table(self, database_url: str) -> None:
        started = {type(server) for server in self.servers}
        table = Table(title="sluice up", show_header=True, header_style="bold")
        table.add_column("part")
        table.add_column("where")
        table.add_column("note")
        table.add_row("API", self.api_url, "docs at /docs")
        table.add_row(
            "Redis", self.redis_url, "started here" if RedisServer in started else "configured"
        )
        table.add_row(
            "S3",
            self.s3_endpoint,
            f"started here, data in {self.home / 's3'}"
            if SeaweedServer in started
            else "configured",
        )
        table.add_row(
            "database", make_url(database_url).render_as_string(hide_password=True), "migrated"
        )
        slots = self.cpu_slots or os.cpu_count() or 1
        table.add_row(
            "workers",
            f"per variant, up to {slots} on CPU (one per GPU)",
            "scaled from queue depth by the scheduler",
        )
        self.console.print(table)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        last = "no answer"
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                self._check_children_alive()
                try:
                    response = http.get(f"{self.api_url}/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = str(exc) or type(exc).__name__
                time.sleep(0.2)
        raise StackError(
            f"API at {self.api_url} not ready within {self.ready_timeout_s:.0f} s: {last}"
        )

    def _check_children_alive(self) -> None:
        for child in self.children:
            code = child.exit_code()
            if code is not None:
                raise StackError(f"{child.name} exited with code {code} while starting")

    # --- run ---------------------------------------------------------------------
    def supervise(self, *, poll_s: float = 0.5) -> None:
        """Until interrupted: restart a child or server that died; raise if one keeps dying."""
        while True:
            for child in self.children:
                code = child.exit_code()
                if code is None:
                    continue
                now = time.monotonic()
                child.crashes = [t for t in child.crashes if now - t < CRASH_WINDOW_S] + [now]
                if len(child.crashes) >= MAX_CRASHES:
                    raise StackError(
                        f"{child.name} exited {len(child.crashes)} times within "
                        f"{CRASH_WINDOW_S:.0f} s (last code {code}); giving up"
                    )
                logger.error("%s exited with code %d; restarting it", child.name, code)
                child.start(self._env)
            for server in self.servers:
                if not server.is_running():
                    logger.error("%s stopped; starting it again", server.name)
                    try:
                        server.start()
                    except RuntimeError as exc:
                        raise StackError(str(exc)) from exc
            time.sleep(poll_s)

    # --- stop --------------------------------------------------------------------
    @property
    def stack_file(self) -> Path:
        return self.home / STACK_FILE

    def _write_stack_file(self) -> None:
        """Where this stack's parts answer, for local clients such as `sluice demo`
        (which uploads its batch-transform input straight to the object store)."""
        self.stack_file.write_text(
            json.dumps(
                {
                    "api_url": self.api_url,
                    "redis_url": self.redis_url,
                    "s3_endpoint": self.s3_endpoint,
                }
            )
        )

    def stop(self) -> None:
        """Children first (SIGTERM, grace, SIGKILL), then the servers they were using."""
        self.stack_file.unlink(missing_ok=True)
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + self.stop_timeout_s
        for child in self.children:
            child.reap(deadline)
        for server in reversed(self.servers):
            server.stop()
        self.children = []
        self.servers = []


def _raise_shutdown(signum: int, _frame: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def _ignore_repeat(signum: int, _frame: FrameType | None) -> None:
    logger.warning("%s: already stopping, please wait", signal.Signals(signum).name)


def run_stack(stack: Stack) -> int:
    """Start, supervise and stop `stack`; the exit code for `sluice up`."""
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGINT, _raise_shutdown)
    code = 0
    try:
        stack.start()
        stack.supervise()
    except Shutdown as exc:
        stack.console.print(f"{exc}: stopping")
    except StackError as exc:
        stack.console.print(f"[bold red]sluice up failed:[/] {exc}")
        code = 1
    finally:
        # Cleanup must finish: a second Ctrl-C would otherwise leave orphans.
        signal.signal(signal.SIGTERM, _ignore_repeat)
        signal.signal(signal.SIGINT, _ignore_repeat)
        stack.stop()
    return code

"""Real parts for integration tests: SeaweedFS, PostgreSQL, Redis, the API and workers.

One SeaweedFS server per test run; each stack gets its own database and Redis
namespace (random names), so runs never collide. API and workers are real
`sluice` processes, started and killed like in production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from core.broker import WorkerInfo, live_workers
from core.config import get_settings
from core.db import upgrade_schema
from devstack.servers import SeaweedServer, free_port
from tests.integration import models

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("SLUICEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SLUICEWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.integration


def wait_for(
    condition: Callable[[], Any], *, timeout_s: float, what: str, every_s: float = 0.1
) -> Any:
    """Poll until `condition()` is truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(
        tmp_path_factory.mktemp("s3"), access_key="test-access", secret_key="test-secret-key"
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "xgb": models.build_xgboost(folder / "model.json"),
        "torch": models.build_torch(folder / "mlp.pt"),
        "picky": models.build_torch(folder / "picky.pt", raise_on_negative=True),
        "slow": models.build_slow_handler(folder / "slow.tar.gz", delay_s=0.05),
        "recorder": models.build_recorder_handler(folder / "recorder.tar.gz"),
    }


def new_postgres_database() -> str:
    name = f"sluiceway_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


@dataclass
class Stack:
    """A running Sluiceway: API and worker processes sharing one environment."""

    env: dict[str, str]
    home: Path
    api_url: str = ""
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_logs: dict[int, str] = field(default_factory=dict)
    _counter: int = 0

    @property
    def namespace(self) -> str:
        return self.env["SLUICEWAY_NAMESPACE"]

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        out = (self.home / log).open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def start_api(self) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = self._spawn(["api", "--port", str(port)], "api.log")

        def ready() -> bool:
            assert self.api is not None
            if self.api.poll() is not None:
                raise AssertionError(f"API exited: {self.log('api.log')}")
            try:
                return httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout_s=60, what="the API to be ready", every_s=0.2)

    def start_worker(self, *extra: str) -> subprocess.Popen[bytes]:
        self._counter += 1
        name = f"t{self._counter}"
        process = self._spawn(
            ["worker", "--device", "cpu", "--name", name, *extra], f"worker-{name}.log"
        )
        self.workers.append(process)
        self.worker_logs[process.pid] = f"worker-{name}.log"
        return process

    def worker_log(self, process: subprocess.Popen[bytes]) -> str:
        return self.log(self.worker_logs[process.pid])

    def live_workers(self) -> list[WorkerInfo]:
        """Workers whose lease has not ended."""
        return live_workers(redis.Redis.from_url(self.env["SLUICEWAY_REDIS_URL"]), self.namespace)

    def heartbeat_pids(self) -> set[int]:
        return {worker.pid for worker in self.live_workers()}

    def worker_id(self, process: subprocess.Popen[bytes]) -> str:
        """The lease id of the worker running as `process` (it must have registered)."""
        (found,) = [w.id for w in self.live_workers() if w.pid == process.pid]
        return found

    def live_worker_count(self) -> int:
        return len(self.live_workers())

    def wait_workers(self, count: int, *, timeout_s: float = 60) -> None:
        wait_for(
            lambda: self.live_worker_count() >= count,
            timeout_s=timeout_s,
            what=f"{count} live worker(s)",
        )

    def kill_worker(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.workers.remove(process)

    def log(self, name: str) -> str:
        path = self.home / name
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=60)

    def stop(self) -> None:
        processes = [p for p in (self.api, *self.workers) if p is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def stack_settings(stack: Stack) -> Iterator[None]:
    """Let this test process read the stack's database, Redis and object store directly.

    Sets the stack's SLUICEWAY_* variables and drops every cached client built
    from the settings before (and again after, restoring the environment), so no
    later test talks to this stack's database once it is dropped.
    """
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in stack.env.items() if k.startswith("SLUICEWAY_")})
    _forget_clients()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _forget_clients()


def _forget_clients() -> None:
    from core import broker, db, storage

    if db.get_engine.cache_info().currsize:
        db.get_engine().dispose()
    for cached in (
        get_settings,
        db.get_engine,
        db._session_factory,
        broker.get_redis,
        storage.get_store,
    ):
        cached.cache_clear()


def make_stack(home: Path, s3: SeaweedServer, database_url: str, **overrides: str) -> Stack:
    env = dict(os.environ)
    env.update(s3.settings_env())
    env.update(
        {
            "SLUICEWAY_HOME": str(home),
            "SLUICEWAY_DATABASE_URL": database_url,
            "SLUICEWAY_REDIS_URL": REDIS_URL,
            "SLUICEWAY_NAMESPACE": f"t{uuid.uuid4().hex[:10]}",
            "SLUICEWAY_DEFAULT_OUTPUT_PREFIX": f"s3://results-{uuid.uuid4().hex[:8]}/",
            "SLUICEWAY_S3_BUCKET": f"sluiceway-{uuid.uuid4().hex[:8]}",
            "SLUICEWAY_QUEUE_REFRESH_S": "0.5",
            "SLUICEWAY_ENDPOINT_CACHE_S": "0.2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    upgrade_schema(database_url)
    return Stack(env=env, home=home)


@contextlib.contextmanager
def private_stack(s3: SeaweedServer, home: Path, **overrides: str) -> Iterator[Stack]:
    """A stack of its own (fresh PostgreSQL database, Redis namespace, running API)
    for a module whose tests need settings or faults the shared one must not see."""
    database = new_postgres_database()
    running = make_stack(home, s3, postgres_url(database), **overrides)
    try:
        running.start_api()
        yield running
    finally:
        running.stop()
        drop_postgres_database(database)


@pytest.fixture(scope="session")
def stack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The PostgreSQL-backed stack most tests share: an API and two workers."""
    database = new_postgres_database()
    home = tmp_path_factory.mktemp("stack")
    running = make_stack(home, s3, postgres_url(database))
    # The test process reads the same database and object store directly.
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in running.env.items() if k.startswith("SLUICEWAY_")})
    get_settings.cache_clear()
    try:
        running.start_api()
        running.start_worker()
        running.start_worker()
        running.wait_workers(2)
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        drop_postgres_database(database)


def register(client: httpx.Client, name: str, framework: str, path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        response = client.post(
            "/v1/models",
            data={"name": name, "framework": framework},
            files={"file": (path.name, f, "application/octet-stream")},
        )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def create_endpoint(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_job(client: httpx.Client, job_id: str, *, timeout_s: float = 60) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed") else None

    result: dict[str, Any] = wait_for(
        finished, timeout_s=timeout_s, what=f"job {job_id} to finish", every_s=0.2
    )
    return result

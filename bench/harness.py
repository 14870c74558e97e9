"""A local Sluiceway for benchmarks, and a `wrk` load generator that is not the bottleneck.

`LocalStack` starts a private SeaweedFS, applies the migrations to a SQLite
file, and runs real `sluice api` and `sluice worker` processes against the
local Redis, in a fresh namespace. `wrk` (Debian package `wrk`, a C load
generator) drives HTTP load; its Lua hook reports p50/p95/p99.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

from core.broker import live_workers, metrics_key, queue_name
from core.db import upgrade_schema
from devstack.servers import SeaweedServer, free_port

REPO = Path(__file__).resolve().parents[1]


class LocalStack:
    def __init__(self, *, workers: int = 1, extra_env: dict[str, str] | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="sluiceway-bench-"))
        self.s3 = SeaweedServer(self.home / "s3", access_key="bench", secret_key="bench-secret")
        self.namespace = f"bench{uuid.uuid4().hex[:8]}"
        self.redis_url = os.environ.get("SLUICEWAY_REDIS_URL", "redis://127.0.0.1:6379/0")
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.extra_env = extra_env or {}
        self.processes: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.s3.settings_env())
        env.update(
            {
                "SLUICEWAY_HOME": str(self.home),
                "SLUICEWAY_DATABASE_URL": f"sqlite:///{self.home / 'sluiceway.db'}",
                "SLUICEWAY_REDIS_URL": self.redis_url,
                "SLUICEWAY_NAMESPACE": self.namespace,
                "SLUICEWAY_LOG_LEVEL": "WARNING",
                "SLUICEWAY_QUEUE_REFRESH_S": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = (self.home / log).open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env=self.env(),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def __enter__(self) -> LocalStack:
        self.s3.start()
        upgrade_schema(f"sqlite:///{self.home / 'sluiceway.db'}")
        self.spawn("api", "--port", str(self.port), log="api.log")
        for n in range(self.workers):
            self.spawn("worker", "--device", "cpu", "--name", f"bench{n}", log=f"worker{n}.log")
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"API not ready; see {self.home / 'api.log'}")
            time.sleep(0.2)
        client = redis.Redis.from_url(self.redis_url)
        while len(live_workers(client, self.namespace)) < self.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not up; see {self.home}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.s3.stop()
        client = redis.Redis.from_url(self.redis_url)
        keys = list(client.scan_iter(match=f"{self.namespace}*"))
        if keys:
            client.delete(*keys)
        shutil.rmtree(self.home, ignore_errors=True)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=120)

    def register(self, name: str, framework: str, path: Path) -> None:
        with self.client() as client, path.open("rb") as f:
            response = client.post(
                "/v1/models",
                data={"name": name, "framework": framework},
                files={"file": (path.name, f, "application/octet-stream")},
            )
            response.raise_for_status()

    def worker_counters(self, endpoint: str, variant: str) -> dict[str, float]:
        client = redis.Redis.from_url(self.redis_url)
        key = metrics_key(self.namespace, queue_name(self.namespace, endpoint, variant))
        return {k.decode(): float(v) for k, v in client.hgetall(key).items()}


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "socket_errors": %%d, "non2xx": %%d, ' ..
    '"p50_us": %%d, "p95_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def wrk(url: str, body: str, *, connections: int, seconds: float) -> dict[str, Any]:
    """Closed-loop load: `connections` callers, each sending the next request on an answer."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % body)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--timeout",
            "30s",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result

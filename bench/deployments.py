"""Deployments under load: a linear update, a canary of a failing model, an all-at-once
update with the scheduler SIGKILLed mid-way.

Starts a private stack (bench/harness.py's `LocalStack`: API and two generic CPU
workers on a SQLite file, plus a `sluice scheduler` with no scaler backend),
registers three TorchScript models of the same shape (two good ones and one
that raises on a feature below -1000) and drives realtime load with an asyncio
client paced at `--rate` requests/s while the endpoint goes through:

- (a) a linear update in 3 steps (33 → 66 → 100 %) to a good model;
- (b) a canary (20 %) to the failing model while one request in five carries a
  bad row: about 20 % of the canary's requests fail, `rollback_on` trips;
- (c) an all-at-once update, the scheduler SIGKILLed while it bakes and started
  again.

Per phase it prints: requests, non-2xx answers (and how many came from the new
config), for (b) the time from the rollback transition (the deployment's
`finished_at`) to the last answer from the new config, and a timeline of the
new config's share of answers per second.

    .venv/bin/python bench/deployments.py [--rate 200] [--step-s 4]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import LocalStack  # noqa: E402
from tests.integration.models import build_torch  # noqa: E402

GOOD = b'{"instances": [[0.5, 1.0, -0.5, 2.0]]}'
BAD = b'{"instances": [[-5000.0, 1.0, 1.0, 1.0]]}'


@dataclass
class Answer:
    at: float  # epoch s when the answer came
    status: int
    config: str


@dataclass
class Load:
    url: str
    name: str
    rate: float
    bad_every: int = 0  # every n-th request carries a bad row (0: none)
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits) as client:
            tasks: set[asyncio.Task[None]] = set()
            sent = 0
            started = time.monotonic()
            while not self.stop.is_set():
                sent += 1
                body = BAD if self.bad_every and sent % self.bad_every == 0 else GOOD
                task = asyncio.create_task(self._one(client, body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                delay = started + sent / self.rate - time.monotonic()
                await asyncio.sleep(max(delay, 0))
            if tasks:
                await asyncio.gather(*tasks)

    async def _one(self, client: httpx.AsyncClient, body: bytes) -> None:
        try:
            answer = await client.post(
                f"/v1/endpoints/{self.name}/invocations",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            self.answers.append(
                Answer(time.time(), answer.status_code, answer.headers.get("X-Config-Version", "?"))
            )
        except httpx.HTTPError:
            self.answers.append(Answer(time.time(), 0, "?"))


async def _phase(
    stack: LocalStack,
    name: str,
    spec: dict[str, Any],
    *,
    rate: float,
    bad_every: int,
    kill_scheduler: Any = None,
) -> tuple[Load, dict[str, Any]]:
    load = Load(stack.api_url, name, rate, bad_every)
    runner = asyncio.create_task(load.run())
    await asyncio.sleep(2)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        put = await client.put(f"/v1/endpoints/{name}", json=spec)
        put.raise_for_status()
        deployment_id = put.json()["deployment_id"]
        killed = False
        while True:
            got = (await client.get(f"/v1/endpoints/{name}/deployments/{deployment_id}")).json()
            if kill_scheduler and not killed and got["state"] == "baking":
                kill_scheduler()
                killed = True
            if got["state"] not in ("in_progress", "baking"):
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    load.stop.set()
    await runner
    return load, got


def _report(label: str, load: Load, deployment: dict[str, Any], new: str) -> list[str]:
    answers = load.answers
    failed = [a for a in answers if not 200 <= a.status < 300]
    from_new = sum(1 for a in failed if a.config == new)
    lines = [
        f"### {label}",
        "",
        f"state: {deployment['state']}; reason: {deployment['reason']}",
        f"requests {len(answers)}, non-2xx {len(failed)} ({from_new} from config {new}), "
        f"by status {dict(Counter(a.status for a in answers))}",
    ]
    if deployment["state"] == "rolled_back" and deployment["finished_at"]:
        tripped = dt.datetime.fromisoformat(deployment["finished_at"].replace("Z", "+00:00"))
        last_new = max((a.at for a in answers if a.config == new), default=None)
        if last_new is not None:
            lines.append(
                f"trip → 100 % old: {max(0.0, last_new - tripped.timestamp()):.2f} s "
                "(last answer from the new config after the rollback transition)"
            )
    start = min(a.at for a in answers)
    per_second: dict[int, Counter[str]] = {}
    for a in answers:
        per_second.setdefault(int(a.at - start), Counter())[a.config] += 1
    timeline = " ".join(
        f"{round(100 * c[new] / sum(c.values()))}" for _, c in sorted(per_second.items())
    )
    lines += ["", f"new-config share per second (%): {timeline}", ""]
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--step-s", type=float, default=4.0, help="step_interval_s and baking_s")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-deployments-"))
    files = {
        "v1": build_torch(folder / "v1.pt", seed=0),
        "v2": build_torch(folder / "v2.pt", seed=1),
        "bad": build_torch(folder / "bad.pt", seed=1, raise_on_negative=True),
    }
    env = {"SLUICEWAY_SCALER_BACKEND": "none", "SLUICEWAY_ENDPOINT_CACHE_S": "0.5"}
    with LocalStack(workers=2, extra_env=env) as stack:
        scheduler = [stack.spawn("scheduler", log="scheduler.log")]

        def kill_and_restart() -> None:
            scheduler[0].send_signal(signal.SIGKILL)
            scheduler[0].wait()
            time.sleep(1.0)
            scheduler[0] = stack.spawn("scheduler", log="scheduler.log")

        for label, path in files.items():
            stack.register(f"m-{label}", "torch", path)
        name = "rollout"

        def spec(model: str, deployment: dict[str, Any]) -> dict[str, Any]:
            return {
                "name": name,
                "variants": [
                    {
                        "name": "a",
                        "model": model,
                        "min_workers": 1,
                        "max_workers": 2,
                        "batching": {"max_batch_size": 32, "max_delay_ms": 2},
                    }
                ],
                "deployment": deployment,
            }

        with stack.client() as client:
            create = {k: v for k, v in spec("m-v1", {}).items() if k != "deployment"}
            client.post("/v1/endpoints", json=create).raise_for_status()
        step = args.step_s
        lines = [f"rate {args.rate:g} req/s, step_interval_s = baking_s = {step:g}", ""]
        load, got = await _phase(
            stack,
            name,
            spec(
                "m-v2",
                {
                    "strategy": "linear",
                    "linear_step_percent": 33,
                    "step_interval_s": step,
                    "baking_s": step,
                },
            ),
            rate=args.rate,
            bad_every=0,
        )
        lines += _report("(a) linear, 3 steps, to a good model", load, got, "2")
        load, got = await _phase(
            stack,
            name,
            spec(
                "m-bad",
                {
                    "strategy": "canary",
                    "canary_percent": 20,
                    "step_interval_s": 60,
                    "rollback_on": {"error_rate_percent": 5, "min_requests": 20},
                },
            ),
            rate=args.rate,
            bad_every=5,
        )
        lines += _report("(b) canary 20 % to a model failing 1 request in 5", load, got, "3")
        load, got = await _phase(
            stack,
            name,
            spec("m-v1", {"strategy": "all_at_once", "baking_s": step}),
            rate=args.rate,
            bad_every=0,
            kill_scheduler=kill_and_restart,
        )
        lines += _report("(c) all at once, scheduler SIGKILLed while baking", load, got, "4")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())

"""Inference components benchmark: three models on one host, bursty traffic to each in turn.

Starts a private stack on this machine (`sluice up`'s `Stack`: API + scheduler, a
SQLite file in a temporary home) whose host offers component copies
`--host-cores` cores, registers two small XGBoost models and a torch MLP, and
runs the same traffic twice:

- **components**: one endpoint of three inference components (0.5, 0.5 and 1
  core per copy, 0 to 2 copies each), called with X-Target-Component;
- **variants**: one endpoint of three variants (0 to 2 workers each), today's
  way, called with X-Target-Variant; each worker holds one CPU slot (a core).

Traffic: a burst of realtime calls (`--concurrency` callers for `--burst-s`) to
each model in turn, a quiet `--gap-s` between them. A thread samples every
250 ms the live copies (workers) per model. Printed per mode and model: the
copies over time, the time from the first request to its answer from zero (a
cold start), and core-seconds reserved per 1,000 requests (cores held by live
copies or workers, integrated over the run). Answers are checked against the
models called in-process: the same in both modes.

    .venv/bin/python bench/components.py [--burst-s 8] [--gap-s 4] [--idle-s 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.broker import component_variant, get_redis, queue_name, workers_per_queue  # noqa: E402
from core.config import Settings, get_settings  # noqa: E402
from devstack.servers import free_port  # noqa: E402
from devstack.supervisor import Stack  # noqa: E402
from tests.integration import models  # noqa: E402

MODELS = (("xgb-a", "xgboost", 0.5), ("xgb-b", "xgboost", 0.5), ("mlp", "torch", 1.0))
ROWS = models.random_rows(4, seed=11)


@dataclass
class Run:
    mode: str
    endpoint: str
    cores: dict[str, float]  # per model: cores one copy (worker) holds
    queues: dict[str, str]
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    cold_s: dict[str, float] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)


class Sampler:
    """Live copies (workers with a lease on the queue) per model every `every_s`."""

    def __init__(self, run: Run, every_s: float = 0.25) -> None:
        self.run, self.every_s = run, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        redis = get_redis()
        namespace = get_settings().namespace
        while not self._stop.is_set():
            live = workers_per_queue(redis, namespace)
            counts = {m: live.get(q, 0) for m, q in self.run.queues.items()}
            self.run.samples.append((time.time(), counts))
            time.sleep(self.every_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def burst(api_url: str, run: Run, model: str, seconds: float, concurrency: int) -> None:
    """`concurrency` callers for `seconds`; the first call's time to answer is the cold start."""
    header = "X-Target-Component" if run.mode == "components" else "X-Target-Variant"
    path = f"/v1/endpoints/{run.endpoint}/invocations"
    body = {"instances": ROWS}
    async with httpx.AsyncClient(base_url=api_url, timeout=120) as client:
        started = time.perf_counter()
        first = await client.post(path, json=body, headers={header: model})
        first.raise_for_status()
        run.cold_s[model] = time.perf_counter() - started
        run.answers[model] = first.json()["predictions"]
        done = 1
        stop_at = time.perf_counter() + seconds

        async def caller() -> int:
            calls = 0
            while time.perf_counter() < stop_at:
                response = await client.post(path, json=body, headers={header: model})
                response.raise_for_status()
                calls += 1
            return calls

        done += sum(await asyncio.gather(*(caller() for _ in range(concurrency))))
    run.requests[model] = done


def core_seconds(run: Run) -> float:
    """Cores held by live copies, integrated over the samples (trapezoids)."""
    total = 0.0
    for (t0, c0), (t1, c1) in zip(run.samples, run.samples[1:], strict=False):
        held0 = sum(run.cores[m] * n for m, n in c0.items())
        held1 = sum(run.cores[m] * n for m, n in c1.items())
        total += (held0 + held1) / 2 * (t1 - t0)
    return total


def timeline(run: Run, t0: float, every_s: float = 2.0) -> None:
    print(f"  {'t (s)':>6}  " + "  ".join(f"{m:>6}" for m in run.cores) + "   cores held")
    next_at = t0
    for at, counts in run.samples:
        if at < next_at:
            continue
        next_at = at + every_s
        held = sum(run.cores[m] * n for m, n in counts.items())
        print(
            f"  {at - t0:6.1f}  "
            + "  ".join(f"{counts[m]:>6}" for m in run.cores)
            + f"   {held:10.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst-s", type=float, default=8.0)
    parser.add_argument("--gap-s", type=float, default=4.0)
    parser.add_argument("--idle-s", type=float, default=6.0, help="scale-to-zero idle period")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--host-cores", type=float, default=2.0)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sluiceway-bench-"))
    os.environ.update(
        {
            "SLUICEWAY_HOME": str(home),
            "SLUICEWAY_NAMESPACE": f"bench{uuid.uuid4().hex[:8]}",
            "SLUICEWAY_SCALE_TO_ZERO_IDLE_S": str(args.idle_s),
            "SLUICEWAY_SCALE_IN_COOLDOWN_S": "3",
            "SLUICEWAY_SCALE_IN_WINDOW_S": "3",
            "SLUICEWAY_HOST_CPU_CORES": str(args.host_cores),
            "SLUICEWAY_LOCAL_CPU_SLOTS": str(int(args.host_cores)),
            "SLUICEWAY_LOG_LEVEL": "WARNING",
        }
    )
    get_settings.cache_clear()
    stack = Stack(Settings(), host="127.0.0.1", port=free_port(), ready_timeout_s=120)
    try:
        stack.start()
        os.environ.update({k: v for k, v in stack._env.items() if k.startswith("SLUICEWAY_")})
        get_settings.cache_clear()
        os.nice(10)  # the load generator yields the CPU to the system it measures
        return run_both(stack, args, home)
    finally:
        stack.stop()


def run_both(stack: Stack, args: argparse.Namespace, home: Path) -> int:
    files = {
        "xgb-a": models.build_xgboost(home / "a.json", seed=0),
        "xgb-b": models.build_xgboost(home / "b.json", seed=1),
        "mlp": models.build_torch(home / "mlp.pt"),
    }
    expected = {
        "xgb-a": models.predict_xgboost(files["xgb-a"], ROWS),
        "xgb-b": models.predict_xgboost(files["xgb-b"], ROWS),
        "mlp": models.predict_torch(files["mlp"], ROWS),
    }
    namespace = get_settings().namespace
    suffix = uuid.uuid4().hex[:6]
    registered: dict[str, str] = {}
    with httpx.Client(base_url=stack.api_url, timeout=120) as client:
        for name, framework, _cores in MODELS:
            with files[name].open("rb") as f:
                response = client.post(
                    "/v1/models",
                    data={"name": f"{name}-{suffix}", "framework": framework},
                    files={"file": (files[name].name, f)},
                )
            response.raise_for_status()
            registered[name] = response.json()["name"]
        comp_ep, var_ep = f"ic-{suffix}", f"var-{suffix}"
        client.post("/v1/endpoints", json={"name": comp_ep}).raise_for_status()
        for name, _framework, cores in MODELS:
            client.post(
                f"/v1/endpoints/{comp_ep}/components",
                json={
                    "name": name,
                    "model": registered[name],
                    "compute": {"cpu_cores": cores, "memory_mb": 512},
                    "copies": {"min": 0, "max": 2},
                },
            ).raise_for_status()
        client.post(
            "/v1/endpoints",
            json={
                "name": var_ep,
                "variants": [
                    {"name": name, "model": registered[name], "min_workers": 0, "max_workers": 2}
                    for name, _f, _c in MODELS
                ],
            },
        ).raise_for_status()

    runs = [
        Run(
            "components",
            comp_ep,
            {name: cores for name, _f, cores in MODELS},
            {name: queue_name(namespace, comp_ep, component_variant(name)) for name, *_ in MODELS},
        ),
        Run(
            "variants",
            var_ep,
            dict.fromkeys((name for name, *_ in MODELS), 1.0),
            {name: queue_name(namespace, var_ep, name) for name, *_ in MODELS},
        ),
    ]
    for run in runs:
        t0 = time.time()
        with Sampler(run):
            for name, *_ in MODELS:
                asyncio.run(burst(stack.api_url, run, name, args.burst_s, args.concurrency))
                time.sleep(args.gap_s)
            # Until every copy is back to zero: what idling costs is part of the bill.
            deadline = time.time() + args.idle_s + 60
            while time.time() < deadline:
                if run.samples and not any(run.samples[-1][1].values()):
                    break
                time.sleep(0.5)
        print(f"\n{run.mode}: copies (workers) per model, every ~2 s")
        timeline(run, t0)
        for name, *_ in MODELS:
            models.assert_close(run.answers[name], expected[name])

    print(
        f"\n{os.cpu_count()} CPU cores, host offers {args.host_cores:g}; bursts of "
        f"{args.burst_s:g} s at {args.concurrency} callers, {args.gap_s:g} s apart; "
        f"idle period {args.idle_s:g} s; answers equal to the models called in-process"
    )
    print(
        "\n| mode | model | requests | first request → answer from zero (s) "
        "| most copies |\n| --- | --- | ---: | ---: | ---: |"
    )
    for run in runs:
        for name, *_ in MODELS:
            most = max(counts[name] for _at, counts in run.samples)
            print(
                f"| {run.mode} | {name} | {run.requests[name]} | {run.cold_s[name]:.1f} | {most} |"
            )
    print("\n| mode | requests | core-seconds reserved | per 1,000 requests | most cores held |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for run in runs:
        total = sum(run.requests.values())
        seconds = core_seconds(run)
        most = max(sum(run.cores[m] * n for m, n in c.items()) for _at, c in run.samples)
        print(f"| {run.mode} | {total} | {seconds:.1f} | {seconds / total * 1000:.1f} | {most:g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

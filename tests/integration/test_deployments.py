"""Endpoint updates on real processes: in-place changes, a linear deployment under realtime
and async load that loses nothing (with the scheduler SIGKILLed mid-way and resumed), a
canary of a failing model that rolls back by itself, 409 on a second deployment, a
variant added and removed under load, a shadow that raises without touching production,
and deletion that drains or fails queued work (issue 12 item 3).

This module runs its own stack: an API, a `sluice scheduler` (no scaler backend:
the workers are the test's) and ONE worker scoped with `--variant` to the
variants it serves (the deployments' new `~2` keys included), so an endpoint
left out of its list has no worker at all.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import select

from core.db import session_scope
from core.tables import Event
from devstack.servers import SeaweedServer
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    private_stack,
    register,
    stack_settings,
    unique,
    wait_for,
    wait_job,
)
from tests.integration.console_html import page_row
from tests.integration.test_errors import assert_problem

pytestmark = pytest.mark.integration

GOOD = {"instances": [[0.5, 1.0, -0.5, 2.0]]}
# The "picky" model raises on a feature below -1000; the plain MLP answers it.
BAD = {"instances": [[-5000.0, 1.0, 1.0, 1.0]]}


PROVISION_TIMEOUT_S = 15  # ample for the module's worker to take a new queue (~1-2 s)
ROUTE_CACHE_S = 1.0  # SLUICEWAY_ENDPOINT_CACHE_S: how long an API process keeps a route


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    return {
        label: unique(label)
        for label in (
            "linear",
            "canary",
            "drained",
            "nobody",
            "live",
            "shadow",
            "orphan",
            "unserved",
        )
    }


@pytest.fixture(scope="module")
def dstack(
    s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory, names: dict[str, str]
) -> Iterator[Stack]:
    with private_stack(
        s3,
        tmp_path_factory.mktemp("deployments"),
        SLUICEWAY_SCALER_BACKEND="none",
        SLUICEWAY_DEPLOYMENT_INTERVAL_S="0.2",
        SLUICEWAY_DEPLOYMENT_PROVISION_TIMEOUT_S=str(PROVISION_TIMEOUT_S),
    ) as running:
        running.workers.append(running._spawn(["scheduler"], "scheduler.log"))
        # `NAME/a` serves the deployments' new `a~2` variants too.
        served = [f"{names[label]}/a" for label in ("linear", "canary", "drained", "live")]
        served += [f"{names['live']}/b", f"{names['shadow']}/a", f"{names['shadow']}/s"]
        worker = running.start_worker(*(arg for v in served for arg in ("--variant", v)))
        wait_for(lambda: worker.pid in running.heartbeat_pids(), timeout_s=60, what="the worker")
        yield running


@pytest.fixture(scope="module")
def models(dstack: Stack, model_files: dict[str, Path]) -> dict[str, str]:
    with dstack.client() as client:
        mlp = register(client, unique("mlp"), "torch", model_files["torch"])["name"]
        picky = register(client, unique("picky"), "torch", model_files["picky"])["name"]
    return {"mlp": mlp, "picky": picky}


def _spec(name: str, model: str, **variant: Any) -> dict[str, Any]:
    return {
        "name": name,
        "variants": [{"name": "a", "model": model, "min_workers": 1, **variant}],
    }


def _wait_state(client: httpx.Client, name: str, deployment_id: str, states: set[str]) -> dict:
    def reached() -> dict[str, Any] | None:
        got: dict[str, Any] = client.get(f"/v1/endpoints/{name}/deployments/{deployment_id}").json()
        return got if got["state"] in states else None

    result: dict[str, Any] = wait_for(
        reached, timeout_s=90, what=f"deployment {deployment_id} to be {states}", every_s=0.2
    )
    return result


class Load:
    """Steady realtime calls (and an async job every few) from a thread until stopped."""

    def __init__(self, url: str, name: str, body: dict[str, Any]) -> None:
        self.url, self.name, self.body = url, name, body
        self.statuses: Counter[int] = Counter()
        self.configs: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self.timeline: list[tuple[float, str]] = []  # (answered at, config)
        self.jobs: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            sent = 0
            while not self.stop.is_set():
                answer = client.post(f"/v1/endpoints/{self.name}/invocations", json=self.body)
                self.statuses[answer.status_code] += 1
                config = answer.headers.get("X-Config-Version", "?")
                self.configs[config] += 1
                self.timeline.append((time.time(), config))
                self.variants[answer.headers.get("X-Invoked-Variant", "?")] += 1
                sent += 1
                if sent % 5 == 0:
                    job = client.post(
                        f"/v1/endpoints/{self.name}/async-invocations", json=self.body
                    )
                    assert job.status_code == 202, job.text
                    self.jobs.append(job.json()["job_id"])

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


def test_in_place_changes_make_a_new_config_without_a_deployment(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    name = names["drained"]
    with dstack.client() as client:
        created = create_endpoint(client, _spec(name, models["mlp"]))
        assert created["config_version"] == 1 and created["deployment"] is None
        wait_for(
            lambda: client.get(f"/v1/endpoints/{name}").json()["status"] == "in_service",
            timeout_s=60,
            what="creating → in_service once the worker consumes",
        )
        spec = _spec(name, models["mlp"], max_workers=2, batching={"max_batch_size": 8})
        answer = client.put(f"/v1/endpoints/{name}", json=spec)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["applied"] == "in_place" and body["deployment_id"] is None
        assert body["endpoint"]["config_version"] == 2
        assert body["endpoint"]["variants"][0]["batching"]["max_batch_size"] == 8
        configs = client.get(f"/v1/endpoints/{name}/configs").json()
        assert [c["version"] for c in configs] == [1, 2] and configs[1]["serving"]
        called = client.post(f"/v1/endpoints/{name}/invocations", json=GOOD)
        assert called.status_code == 200 and called.headers["X-Config-Version"] == "2"
        wrong = client.put(f"/v1/endpoints/{name}", json={**spec, "name": "other"})
        assert wrong.status_code == 422
        # No production variant left: nothing to shift traffic to (as deleting the last one).
        emptied = client.put(f"/v1/endpoints/{name}", json={**spec, "variants": []})
        assert_problem(emptied, 422, "no production variant")
        kept = client.get(f"/v1/endpoints/{name}").json()
        assert kept["config_version"] == 2 and kept["status"] == "in_service"
        assert [v["name"] for v in kept["variants"]] == ["a"]


def test_a_linear_update_under_load_loses_nothing_and_resumes_after_a_scheduler_kill(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    name = names["linear"]
    with dstack.client() as client:
        create_endpoint(client, _spec(name, models["mlp"]))
        with Load(dstack.api_url, name, GOOD) as load:
            wait_for(lambda: load.statuses[200] >= 10, timeout_s=60, what="load on config 1")
            spec = {
                **_spec(name, models["picky"]),
                "deployment": {
                    "strategy": "linear",
                    "linear_step_percent": 50,
                    "step_interval_s": 2,
                    "baking_s": 1,
                },
            }
            answer = client.put(f"/v1/endpoints/{name}", json=spec)
            assert answer.status_code == 202, answer.text
            deployment_id = answer.json()["deployment_id"]
            second = client.put(f"/v1/endpoints/{name}", json=spec)
            assert second.status_code == 409, second.text
            assert "in progress" in second.json()["detail"]
            _wait_state(client, name, deployment_id, {"in_progress"})
            wait_for(
                lambda: (
                    client.get(f"/v1/endpoints/{name}/deployments/{deployment_id}").json()[
                        "new_traffic_percent"
                    ]
                    > 0
                ),
                timeout_s=60,
                what="the first step",
            )
            # SIGKILL the scheduler mid-deployment; a new one resumes from the database.
            scheduler = dstack.workers[0]
            scheduler.send_signal(signal.SIGKILL)
            scheduler.wait()
            dstack.workers[0] = dstack._spawn(["scheduler"], "scheduler.log")
            done = _wait_state(client, name, deployment_id, {"succeeded", "rolled_back", "failed"})
            assert done["state"] == "succeeded", done
            wait_for(lambda: load.configs["2"] >= 10, timeout_s=60, what="load on config 2")
        assert [s["percent"] for s in done["steps"]] == [50.0, 100.0]
        assert all(s["outcome"] == "passed" for s in done["steps"])
        assert set(load.statuses) == {200}, load.statuses  # nothing failed
        assert load.configs["1"] > 0 and load.configs["2"] > 0
        # The 50 % step really split the traffic, within a band of its target: once the
        # API's route cache saw the step (SLUICEWAY_ENDPOINT_CACHE_S, 1 s), each request
        # went to the new config with probability 0.5. 20-80 % of at least 20 requests
        # fails by chance less than once in 300 runs.
        half = done["steps"][0]
        start = dt.datetime.fromisoformat(half["started_at"]).timestamp() + ROUTE_CACHE_S
        end = dt.datetime.fromisoformat(half["finished_at"]).timestamp()
        during = Counter(config for at, config in load.timeline if start < at <= end)
        answered = during["1"] + during["2"]
        assert answered >= 20, during
        assert 0.2 <= during["2"] / answered <= 0.8, during
        for job_id in load.jobs:
            assert wait_job(client, job_id)["status"] == "succeeded"
        endpoint = client.get(f"/v1/endpoints/{name}").json()
        assert endpoint["config_version"] == 2 and endpoint["status"] == "in_service"
        wait_for(
            lambda: (
                [v["key"] for v in client.get(f"/v1/endpoints/{name}").json()["variants"]]
                == ["a~2"]
            ),
            timeout_s=30,
            what="the old variant drained and removed",
        )


def test_a_canary_of_a_failing_model_rolls_back_by_itself(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    name = names["canary"]
    with dstack.client() as client:
        create_endpoint(client, _spec(name, models["mlp"]))
        spec = {
            **_spec(name, models["picky"]),
            "deployment": {
                "strategy": "canary",
                "canary_percent": 50,
                "step_interval_s": 600,
                "rollback_on": {"error_rate_percent": 5, "min_requests": 5},
            },
        }
        answer = client.put(f"/v1/endpoints/{name}", json=spec)
        assert answer.status_code == 202, answer.text
        deployment_id = answer.json()["deployment_id"]
        with Load(dstack.api_url, name, BAD) as load:
            done = _wait_state(client, name, deployment_id, {"rolled_back", "succeeded"})
        # Regression: the rolled-back variant was removed while the API still routed to
        # it from its cached config; a call queued there then waited 60 s for a 504.
        assert not load.thread.is_alive(), "a call was left waiting after the rollback"
        assert done["state"] == "rolled_back"
        assert "error rate" in done["reason"]
        assert "rollback_on.error_rate_percent 5%" in done["reason"]
        assert done["steps"][0]["outcome"] == "rolled_back" and done["steps"][0]["errors"] > 0
        console_shows_the_rollback(client, name, done)
        # Every failure came from the new config; the old one answered all it got.
        assert load.statuses[200] > 0

        def all_on_the_old_config() -> bool:
            # API processes re-read routes every SLUICEWAY_ENDPOINT_CACHE_S (0.2 s here).
            after = [client.post(f"/v1/endpoints/{name}/invocations", json=BAD) for _ in range(10)]
            return {(a.status_code, a.headers.get("X-Config-Version")) for a in after} == {
                (200, "1")
            }

        wait_for(all_on_the_old_config, timeout_s=10, what="all traffic back on config 1")
        wait_for(
            lambda: client.get(f"/v1/endpoints/{name}").json()["status"] == "in_service",
            timeout_s=30,
            what="rolling_back → in_service once the new variant drained",
        )
        assert client.get(f"/v1/endpoints/{name}").json()["config_version"] == 1
        again = client.post(f"/v1/endpoints/{name}/deployments/{deployment_id}/rollback")
        assert again.status_code == 409


def console_shows_the_rollback(client: httpx.Client, name: str, done: dict[str, Any]) -> None:
    """The endpoint's console page, rendered by the real API: the deployment's timeline."""
    page = client.get(f"/console/endpoints/{name}")
    assert page.status_code == 200, page.text
    assert f'id="deployment-{done["deployment_id"]}"' in page.text
    assert f"Rolled back: {escape(done['reason'])}" in page.text
    step = done["steps"][0]
    row = page_row(page.text, f"deployment-{done['deployment_id']}-step-1")
    assert row.startswith("1 50 % rolled_back "), row
    assert f" {step['requests']:,} {step['errors']:,} " in row, (row, step)
    live = client.get(f"/console/endpoints/{name}/deployments")  # what htmx swaps in
    assert live.status_code == 200, live.text
    again = page_row(live.text, f"deployment-{done['deployment_id']}-step-1")
    assert again.startswith("1 50 % rolled_back ") and f" {step['errors']:,} " in again, again


def test_an_endpoint_whose_variant_gets_no_worker_fails_with_the_reason_and_recovers(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    """`failed` was never set: an endpoint no worker would ever serve stayed `creating`."""
    name = names["unserved"]  # no worker serves it, and the scaler starts none here
    with dstack.client() as client:
        create_endpoint(client, _spec(name, models["mlp"]))
        queued = client.post(f"/v1/endpoints/{name}/async-invocations", json=GOOD)
        assert queued.status_code == 202, queued.text
        failed = wait_for(
            lambda: (
                (got := client.get(f"/v1/endpoints/{name}").json())["status"] == "failed" and got
            ),
            timeout_s=PROVISION_TIMEOUT_S + 30,
            what="creating → failed after the provision timeout",
        )
        assert failed["failure_reason"].startswith(
            f"variant(s) ['a'] had no live worker after {PROVISION_TIMEOUT_S} s"
        )
        page = client.get(f"/console/endpoints/{name}")
        assert page.status_code == 200 and "had no live worker" in page.text
        # Still accepting: requests wait in the queue, as while creating.
        later = client.post(f"/v1/endpoints/{name}/async-invocations", json=GOOD)
        assert later.status_code == 202, later.text
        # Its variant needs no worker any more: in service at once, the reason gone.
        lowered = client.patch(f"/v1/endpoints/{name}/variants/a", json={"min_workers": 0})
        assert lowered.status_code == 200, lowered.text
        recovered = wait_for(
            lambda: (
                (got := client.get(f"/v1/endpoints/{name}").json())["status"] == "in_service"
                and got
            ),
            timeout_s=30,
            what="failed → in_service",
        )
        assert recovered["failure_reason"] is None


def test_deleting_an_endpoint_drains_its_jobs_and_a_new_one_never_runs_them(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    """Issue 12.3: DELETE left queued jobs `queued` for ever, with no event, and an
    endpoint re-created under the same name later ran them with the old model."""
    name = names["nobody"]  # no worker serves it: its jobs cannot run
    with dstack.client() as client:
        create_endpoint(
            client,
            {
                **_spec(name, models["mlp"]),
                "variants": [
                    {"name": "a", "model": models["mlp"], "min_workers": 0, "max_workers": 0}
                ],
            },
        )
        jobs = [
            client.post(f"/v1/endpoints/{name}/async-invocations", json=GOOD).json()["job_id"]
            for _ in range(3)
        ]
        assert client.delete(f"/v1/endpoints/{name}").status_code == 204
        for job_id in jobs:
            job = wait_job(client, job_id, timeout_s=30)
            assert job["status"] == "failed" and "endpoint deleted" in job["error"]
        with stack_settings(dstack), session_scope() as session:
            events = session.scalars(select(Event.type).where(Event.job_id.in_(jobs))).all()
        assert sorted(events) == ["InferenceFailed"] * 3
        wait_for(
            lambda: client.get(f"/v1/endpoints/{name}").status_code == 404,
            timeout_s=30,
            what="the endpoint removed",
        )
        create_endpoint(client, _spec(name, models["picky"]))
        retried = client.post(f"/v1/jobs/{jobs[0]}/retry")
        assert retried.status_code == 409, retried.text


def test_deleting_an_endpoint_with_a_worker_lets_its_queued_jobs_finish(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    name = names["drained"]
    with dstack.client() as client:
        jobs = [
            client.post(f"/v1/endpoints/{name}/async-invocations", json=GOOD).json()["job_id"]
            for _ in range(5)
        ]
        assert client.delete(f"/v1/endpoints/{name}").status_code == 204
        shown = client.get(f"/v1/endpoints/{name}")
        assert shown.status_code == 404 or shown.json()["status"] == "deleting"
        refused = client.post(f"/v1/endpoints/{name}/invocations", json=GOOD)
        assert refused.status_code == 404
        for job_id in jobs:
            assert wait_job(client, job_id)["status"] == "succeeded"
        wait_for(
            lambda: client.get(f"/v1/endpoints/{name}").status_code == 404,
            timeout_s=30,
            what="the endpoint removed once drained",
        )


def test_a_variant_added_and_removed_under_load_fails_nothing(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    name = names["live"]
    with dstack.client() as client:
        create_endpoint(client, _spec(name, models["mlp"]))
        with Load(dstack.api_url, name, GOOD) as load:
            wait_for(lambda: load.statuses[200] >= 5, timeout_s=60, what="load on variant a")
            added = client.post(
                f"/v1/endpoints/{name}/variants",
                json={"name": "b", "model": models["mlp"], "weight": 1, "min_workers": 1},
            )
            assert added.status_code == 201, added.text
            assert added.json()["config_version"] == 2
            again = client.post(
                f"/v1/endpoints/{name}/variants", json={"name": "b", "model": models["mlp"]}
            )
            assert again.status_code == 409
            wait_for(lambda: load.variants["b"] >= 5, timeout_s=60, what="traffic on variant b")
            removed = client.delete(f"/v1/endpoints/{name}/variants/b")
            assert removed.status_code == 202, removed.text
            assert {v["key"]: v["role"] for v in removed.json()["variants"]}["b"] == "draining"
            last = client.delete(f"/v1/endpoints/{name}/variants/a")
            assert last.status_code == 409 and "last production variant" in last.json()["detail"]
            wait_for(
                lambda: (
                    load.statuses[200] >= sum(load.statuses.values()) and load.variants["a"] > 20
                ),
                timeout_s=60,
                what="more load after the removal",
            )
        assert set(load.statuses) == {200}, load.statuses
        for job_id in load.jobs:
            assert wait_job(client, job_id)["status"] == "succeeded"
        wait_for(
            lambda: (
                [v["key"] for v in client.get(f"/v1/endpoints/{name}").json()["variants"]] == ["a"]
            ),
            timeout_s=30,
            what="variant b drained and removed",
        )


def test_a_shadow_that_raises_never_changes_a_production_answer(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    name = names["shadow"]
    with dstack.client() as client:
        spec = _spec(name, models["mlp"])
        spec["shadow_variants"] = [
            {"name": "s", "model": models["picky"], "sampling_percent": 100, "min_workers": 1}
        ]
        created = create_endpoint(client, spec)
        assert [v["name"] for v in created["variants"]] == ["a"]
        assert created["shadow_variants"][0]["sampling_percent"] == 100
        expected = {
            "good": client.post(f"/v1/endpoints/{name}/invocations", json=GOOD).json(),
            "bad": client.post(f"/v1/endpoints/{name}/invocations", json=BAD).json(),
        }
        for _ in range(10):
            for label, body in (("good", GOOD), ("bad", BAD)):
                answer = client.post(f"/v1/endpoints/{name}/invocations", json=body)
                assert answer.status_code == 200, answer.text
                assert answer.headers["X-Invoked-Variant"] == "a"
                assert answer.json() == expected[label]

        # Async jobs are copied too; each is compared with its job's output once it ends.
        jobs = [
            client.post(f"/v1/endpoints/{name}/async-invocations", json=body).json()["job_id"]
            for body in (GOOD, BAD, GOOD, BAD)
        ]
        for job_id in jobs:
            assert wait_job(client, job_id)["status"] == "succeeded"

        def counted() -> dict[str, Any] | None:
            report = client.get(f"/v1/endpoints/{name}/shadow-report").json()
            (shadow,) = report["shadow_variants"]
            return shadow if shadow["errors"] >= 12 and shadow["requests_compared"] >= 12 else None

        shadow = wait_for(counted, timeout_s=60, what="the shadow report to count the copies")
        assert shadow["name"] == "s"
        assert shadow["agreement_rate"] == 1.0  # the same weights where it answers
        assert shadow["mean_abs_diff"] == 0.0
        assert shadow["production_p50_ms"] is not None and shadow["shadow_p99_ms"] is not None
        page = client.get(f"/console/endpoints/{name}")  # the console's shadow report
        assert page.status_code == 200, page.text
        row = page_row(page.text, "shadow-s")
        assert row.startswith("s 100 % ") and " 100 % 0 " in row, row
        bad_tolerance = client.get(f"/v1/endpoints/{name}/shadow-report?tolerance=-1")
        assert bad_tolerance.status_code == 422


def test_a_removed_variant_that_cannot_run_fails_its_queued_jobs_with_the_reason(
    dstack: Stack, models: dict[str, str], names: dict[str, str]
) -> None:
    """Issue 12.3 for variants: queued work of a removed variant never lingers."""
    name = names["orphan"]  # no worker serves it
    with dstack.client() as client:
        variants = [
            {"name": "a", "model": models["mlp"]},
            {"name": "b", "model": models["mlp"], "max_workers": 0},
        ]
        create_endpoint(client, {"name": name, "variants": variants})
        jobs = [
            client.post(
                f"/v1/endpoints/{name}/async-invocations",
                json=GOOD,
                headers={"X-Target-Variant": "b"},
            ).json()["job_id"]
            for _ in range(2)
        ]
        assert client.delete(f"/v1/endpoints/{name}/variants/b").status_code == 202
        for job_id in jobs:
            job = wait_job(client, job_id, timeout_s=30)
            assert job["status"] == "failed" and "variant removed" in job["error"]
        wait_for(
            lambda: (
                [v["key"] for v in client.get(f"/v1/endpoints/{name}").json()["variants"]] == ["a"]
            ),
            timeout_s=30,
            what="variant b removed",
        )

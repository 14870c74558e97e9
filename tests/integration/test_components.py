"""Inference components on real parts: `sluice scheduler` placing and running their copies.

One private stack (API + scheduler, no hand-started workers) whose host offers
component copies 2 cores: two XGBoost components of 0.5 core and a torch MLP of
1 core fill it (the docs' worked example), a fourth asking for 4 cores is
reported pending and never runs. Each is called with X-Target-Component; one
scales to zero and wakes on its first request; the MLP is patched to two copies,
which stay pending until a deleted component has drained and freed its core.
A thread samples the live copies all along: their cores never pass the host's.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    private_stack,
    register,
    stack_settings,
    unique,
    wait_for,
    wait_job,
)
from tests.integration.console_html import page_row

pytestmark = pytest.mark.integration

HOST_CORES = 2.0
SETTINGS = {
    "SLUICEWAY_SCHEDULER_INTERVAL_S": "0.5",
    "SLUICEWAY_SCALE_IN_COOLDOWN_S": "2",
    "SLUICEWAY_SCALE_IN_WINDOW_S": "2",
    "SLUICEWAY_SCALE_TO_ZERO_IDLE_S": "300",
    "SLUICEWAY_HOST_CPU_CORES": str(HOST_CORES),
    "SLUICEWAY_HOST_MEMORY_MB": "4096",
    "SLUICEWAY_WORKER_STOP_GRACE_S": "20",
}


@pytest.fixture(scope="module")
def placed(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        private_stack(s3, tmp_path_factory.mktemp("components"), **SETTINGS) as running,
        stack_settings(running),
    ):
        scheduler = running._spawn(["scheduler"], "scheduler.log")
        running.workers.append(scheduler)  # stopped (SIGTERM) with the stack
        yield running


STARTED = re.compile(r"started a worker for (\S+) on \S+: .* \(pid (\d+)\)")


def alive_child(pid: int, parent: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state, ppid = stat.rsplit(") ", 1)[1].split()[:2]
    return state != "Z" and int(ppid) == parent


class CoreWatch:
    """Samples the copies' processes every 50 ms: the most cores they held at once.

    Processes, not leases: a copy asked to stop gives its lease back before its
    process has exited, and holds its share until then. Which component each
    process runs is read from the scheduler's log ("started a worker for K ... (pid N)").
    """

    def __init__(self, stack: Stack, cores_by_key: dict[str, float]) -> None:
        self.stack = stack
        self.scheduler = stack.workers[0].pid
        self.cores_by_key = cores_by_key
        self.most = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        log = self.stack.home / "scheduler.log"
        while not self._stop.is_set():
            started = STARTED.findall(log.read_text(errors="replace"))
            held = sum(
                self.cores_by_key.get(key, 0.0)
                for key, pid in started
                if alive_child(int(pid), self.scheduler)
            )
            self.most = max(self.most, held)
            time.sleep(0.05)

    def __enter__(self) -> CoreWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def component(client: httpx.Client, endpoint: str, name: str) -> dict[str, Any]:
    response = client.get(f"/v1/endpoints/{endpoint}/components/{name}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def call(client: httpx.Client, endpoint: str, name: str, rows: list[list[float]]) -> Any:
    response = client.post(
        f"/v1/endpoints/{endpoint}/invocations",
        json={"instances": rows},
        headers={"X-Target-Component": name},
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Invoked-Component"] == name
    assert "X-Invoked-Variant" not in response.headers
    return response.json()["predictions"]


def test_components_share_a_host_scale_on_their_own_and_never_overcommit(
    placed: Stack, model_files: dict[str, Path]
) -> None:
    ep = unique("multi")
    key = f"{ep}/ic."
    cores = {key + "small-a": 0.5, key + "small-b": 0.5, key + "mlp": 1.0, key + "big": 4.0}
    rows = models.random_rows(3, seed=7)
    xgb_expected = models.predict_xgboost(model_files["xgb"], rows)
    mlp_expected = models.predict_torch(model_files["torch"], rows)
    with placed.client() as client, CoreWatch(placed, cores) as watch:
        xgb = register(client, unique("xgb"), "xgboost", model_files["xgb"])["name"]
        mlp = register(client, unique("mlp"), "torch", model_files["torch"])["name"]
        created = client.post("/v1/endpoints", json={"name": ep})
        assert created.status_code == 201, created.text
        assert created.json()["variants"] == []
        no_header = client.post(f"/v1/endpoints/{ep}/invocations", json={"instances": rows})
        assert no_header.status_code == 400
        assert "X-Target-Component" in no_header.json()["detail"]

        specs = [
            {"name": "small-a", "model": xgb, "copies": {"min": 1, "max": 1}},
            {
                "name": "small-b",
                "model": xgb,
                "copies": {"min": 0, "max": 1},
                "scaling": {"scale_to_zero_idle_s": 2},
            },
            {"name": "mlp", "model": mlp, "compute": {"cpu_cores": 1, "memory_mb": 512}},
            {"name": "big", "model": mlp, "compute": {"cpu_cores": 4}, "copies": {"min": 1}},
        ]
        for spec in specs:
            spec.setdefault("compute", {"cpu_cores": 0.5, "memory_mb": 256})
            spec.setdefault("copies", {"min": 1, "max": 1})
            response = client.post(f"/v1/endpoints/{ep}/components", json=spec)
            assert response.status_code == 201, response.text
        again = client.post(f"/v1/endpoints/{ep}/components", json=specs[0])
        assert again.status_code == 409

        # min copies start where they fit; big fits nowhere and says why.
        wait_for(
            lambda: all(
                component(client, ep, n)["copies"]["current"] == 1 for n in ("small-a", "mlp")
            ),
            timeout_s=60,
            what="small-a and mlp copies",
        )
        big = component(client, ep, "big")
        assert big["copies"]["desired"] == 1 and big["copies"]["current"] == 0
        assert big["placements"] == []
        assert "needs 4 cores, 0.5 free" in big["pending_reason"], big
        view = client.get(f"/v1/endpoints/{ep}").json()
        assert {c["name"] for c in view["components"]} == {"small-a", "small-b", "mlp", "big"}
        (host,) = view["hosts"]
        assert host["cpu_cores"] == HOST_CORES and host["free_cpu_cores"] == 0.5
        placements = component(client, ep, "mlp")["placements"]
        assert [(p["host"], p["cpu_cores"]) for p in placements] == [(host["name"], 1.0)]

        # Each component answers with its own model.
        models.assert_close(call(client, ep, "small-a", rows), xgb_expected)
        models.assert_close(call(client, ep, "mlp", rows), mlp_expected)
        unknown = client.post(
            f"/v1/endpoints/{ep}/invocations",
            json={"instances": rows},
            headers={"X-Target-Component": "nope"},
        )
        assert unknown.status_code == 404

        # small-b sleeps at zero copies; its first request wakes it, and idle it goes back.
        assert component(client, ep, "small-b")["copies"]["current"] == 0
        models.assert_close(call(client, ep, "small-b", rows), xgb_expected)
        wait_for(
            lambda: component(client, ep, "small-b")["copies"]["current"] == 0,
            timeout_s=30,
            what="small-b back to zero copies",
        )

        # Two MLP copies wanted; one core is not free while small-a holds its half.
        patched = client.patch(
            f"/v1/endpoints/{ep}/components/mlp", json={"copies": {"min": 2, "max": 2}}
        )
        assert patched.status_code == 200, patched.text
        wait_for(
            lambda: (
                "needs 1 cores, 0.5 free" in (component(client, ep, "mlp")["pending_reason"] or "")
            ),
            timeout_s=20,
            what="the second mlp copy reported pending",
        )
        assert component(client, ep, "mlp")["copies"] | {"min": 2} == {
            "min": 2,
            "max": 2,
            "current": 1,
            "desired": 2,
        }
        console_shows_the_pending_copy(client, ep, host["name"])

        # Delete small-a with async work queued: it drains (the jobs succeed), refuses
        # new calls, goes away, and its half core lets the second mlp copy start.
        jobs = [
            client.post(
                f"/v1/endpoints/{ep}/async-invocations",
                json={"instances": rows},
                headers={"X-Target-Component": "small-a"},
            )
            for _ in range(5)
        ]
        assert all(j.status_code == 202 for j in jobs), [j.text for j in jobs]
        assert jobs[0].headers["X-Invoked-Component"] == "small-a"
        deleted = client.delete(f"/v1/endpoints/{ep}/components/small-a")
        assert deleted.status_code == 202 and deleted.json()["status"] == "deleting"
        refused = client.post(
            f"/v1/endpoints/{ep}/invocations",
            json={"instances": rows},
            headers={"X-Target-Component": "small-a"},
        )
        assert refused.status_code == 404
        for job in jobs:
            done = wait_job(client, job.json()["job_id"])
            assert done["status"] == "succeeded", done
        models.assert_close(call(client, ep, "mlp", rows), mlp_expected)  # serves meanwhile
        wait_for(
            lambda: client.get(f"/v1/endpoints/{ep}/components/small-a").status_code == 404,
            timeout_s=30,
            what="small-a removed once drained",
        )
        wait_for(
            lambda: component(client, ep, "mlp")["copies"]["current"] == 2,
            timeout_s=60,
            what="the second mlp copy in small-a's freed room",
        )
        assert component(client, ep, "mlp")["pending_reason"] is None
        assert component(client, ep, "big")["copies"]["current"] == 0

        metrics = client.get("/metrics").text
        assert (
            f'sluiceway_component_copies{{component="mlp",endpoint="{ep}",state="current"}} 2.0'
            in metrics
        )
        assert (
            f'sluiceway_component_copies{{component="big",endpoint="{ep}",state="pending"}} 1.0'
            in metrics
        )
        assert "sluiceway_placement_host_cpu_cores{" in metrics
    assert watch.most > 0, "the watch saw the copies"
    assert watch.most <= HOST_CORES, f"copies held {watch.most} cores of {HOST_CORES}"


def console_shows_the_pending_copy(client: httpx.Client, ep: str, host: str) -> None:
    """The console's endpoint page and list, rendered by the real API from the scheduler's
    published placements: copies current/desired, where each runs, why one waits."""
    page = client.get(f"/console/endpoints/{ep}")
    assert page.status_code == 200, page.text
    assert 'id="panel-components"' in page.text and 'id="panel-variants"' not in page.text
    mlp = page_row(page.text, "component-mlp")
    assert "1 core · 512 MB 1 2 2..2" in mlp, mlp
    assert f"{host}: 1 core, 512 MB" in mlp and "needs 1 cores, 0.5 free" in mlp, mlp
    big = page_row(page.text, "component-big")
    assert "4 cores · 1 GB 0 1 1..1" in big and "no copy" in big, big
    assert "needs 4 cores" in big, big
    assert page_row(page.text, f"host-{host}").startswith(f"{host} 2 0.50 4 GB"), page.text
    live = client.get(f"/console/endpoints/{ep}/components")  # what htmx swaps in
    assert live.status_code == 200 and 'id="component-mlp"' in live.text
    listing = client.get("/console/endpoints-table").text
    assert page_row(listing, f"row-{ep}-ic-mlp").endswith("- 0 1 2 pending"), listing


def test_bad_component_requests_are_refused_and_change_nothing(
    placed: Stack, model_files: dict[str, Path]
) -> None:
    """Refused before any work: clear 4xx answers, and the component as it was."""
    ep = unique("bad")
    with placed.client() as client:
        assert client.post("/v1/endpoints", json={"name": ep}).status_code == 201
        xgb = register(client, unique("xgb"), "xgboost", model_files["xgb"])["name"]
        base = f"/v1/endpoints/{ep}/components"
        spec = {"name": "c", "model": xgb, "copies": {"min": 0, "max": 1}}
        assert client.post(base, json=spec).status_code == 201
        cases = [
            ("POST", f"/v1/endpoints/{unique('none')}/components", spec, 404, "no endpoint"),
            ("POST", base, {**spec, "name": "d", "model": "nope"}, 422, "nope"),
            ("POST", base, {**spec, "name": "d", "compute": {"cpu_cores": -1}}, 422, "cpu_cores"),
            ("PATCH", f"{base}/c", {"copies": {"min": 3}}, 422, "copies.max 1 is below"),
            ("PATCH", f"{base}/c", {"compute": {"gpus": "1"}}, 422, "gpus"),
            ("PATCH", f"{base}/zz", {"copies": {"max": 2}}, 404, "no inference component"),
            ("GET", f"{base}/zz", None, 404, "no inference component 'zz'"),
            ("DELETE", f"{base}/zz", None, 404, "no inference component 'zz'"),
        ]
        for method, url, body, status, named in cases:
            response = client.request(method, url, json=body)
            assert response.status_code == status, (method, url, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert named in response.json()["detail"], response.text
        kept = client.get(f"{base}/c").json()
        assert kept["copies"]["min"] == 0 and kept["copies"]["max"] == 1
        assert kept["compute"]["gpus"] == 0

        # Regression (schemathesis): a PUT of a components-only endpoint was a 500 (a
        # deployment of no variants). Its async block now applies in place.
        moved = {"name": ep, "async": {"output_prefix": f"s3://outputs/{ep}/moved/"}}
        put = client.put(f"/v1/endpoints/{ep}", json=moved)
        assert put.status_code == 200 and put.json()["applied"] == "in_place", put.text
        assert client.get(f"/v1/endpoints/{ep}").json()["async"]["output_prefix"] == (
            f"s3://outputs/{ep}/moved/"
        )
        assert client.get(f"{base}/c").status_code == 200  # the component is untouched
        shadow_only = {"name": ep, "shadow_variants": [{"name": "s", "model": xgb}]}
        refused = client.put(f"/v1/endpoints/{ep}", json=shadow_only)
        assert refused.status_code == 422 and "production variant" in refused.text

        # Transform jobs: a components-only endpoint needs a component that exists.
        tx = {"endpoint": ep, "input_prefix": "s3://inputs/x/", "output_prefix": "s3://outputs/y/"}
        missing = client.post("/v1/transform-jobs", json=tx)
        assert missing.status_code == 422 and "X-Target-Component" in missing.text
        unknown = client.post("/v1/transform-jobs", json=tx, headers={"X-Target-Component": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.text
        both = client.post(
            "/v1/transform-jobs", json={**tx, "component": "a"}, headers={"X-Target-Component": "b"}
        )
        assert both.status_code == 400
        # Regression (schemathesis): the header on a model's job, or an empty one, was a 500.
        model_job = {**tx, "endpoint": None, "model": "m"}
        for header, named in (("b", "component goes with endpoint"), ("", "should match")):
            wrong = client.post(
                "/v1/transform-jobs", json=model_job, headers={"X-Target-Component": header}
            )
            assert wrong.status_code == 422 and named in wrong.text, wrong.text

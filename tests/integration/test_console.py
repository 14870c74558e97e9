"""The web console in a real headless Chromium, against a real stack with auth on.

One stack for the module (API with SLUICEWAY_AUTH=on, a worker, a scheduler
sampling history every second and delivering webhooks), one browser, three
tests that each check a lot: sign-in and scopes; every page with live data,
plots with points while the endpoint is under load, a failed job retried from
its page, a transform's progress; a dead delivery redriven. Screenshots of the
main pages go to a folder the tests print (`console screenshots: ...`, with -s).

Chromium is Debian's (`/usr/bin/chromium`, which `.ci/run` installs); Playwright
drives it and never downloads a browser of its own.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.servers import SeaweedServer, free_port
from sluiceway import Client
from tests.integration import models
from tests.integration.conftest import REPO, Stack, private_stack, unique, wait_for
from tests.integration.test_auth import new_key
from tests.integration.webhook_parts import BAD_ROW, Receiver, Scheduler

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@dataclass
class Console:
    stack: Stack
    admin_key: str
    endpoint: str  # variants a (xgboost) and p (picky torch, weight 0); errors go to `topic`
    other: str  # a second endpoint, which the invoke key may not see
    topic: str
    receiver_port: int
    shots: Path

    @property
    def url(self) -> str:
        return self.stack.api_url

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)


@pytest.fixture(scope="module")
def console(
    s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]
) -> Iterator[Console]:
    with private_stack(
        s3,
        tmp_path_factory.mktemp("console"),
        SLUICEWAY_AUTH="on",
        SLUICEWAY_HISTORY_INTERVAL_S="1",
        SLUICEWAY_SCALER_BACKEND="none",  # the test runs the worker
        SLUICEWAY_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        SLUICEWAY_WEBHOOK_TIMEOUT_S="2",
        SLUICEWAY_WEBHOOK_POLL_S="0.1",
        SLUICEWAY_TRANSFORM_INTERVAL_S="0.2",
    ) as stack:
        scheduler = Scheduler(stack)
        try:
            stack.start_worker()
            scheduler.start()
            stack.wait_workers(1)
            admin = new_key(stack, "--scope", "admin")
            port = free_port()
            shots = tmp_path_factory.mktemp("console-screenshots")
            print(f"\nconsole screenshots: {shots}")
            with Client(stack.api_url, api_key=admin) as client:
                xgb = client.models.register(
                    unique("xgb"), framework="xgboost", file=model_files["xgb"]
                )
                picky = client.models.register(
                    unique("picky"), framework="torch", file=model_files["picky"]
                )
                topic = unique("errors")
                client.request("POST", "/v1/topics", json={"name": topic})
                # Nothing listens on the port yet: one attempt, and the delivery is dead.
                client.request(
                    "POST",
                    f"/v1/topics/{topic}/subscriptions",
                    json={"url": f"http://127.0.0.1:{port}/hook", "max_attempts": 1},
                )
                endpoint = client.endpoints.create(
                    name=unique("churn"),
                    variants=[
                        {"name": "a", "model": xgb.name, "weight": 1, "max_workers": 1},
                        {"name": "p", "model": picky.name, "weight": 0, "max_workers": 1},
                    ],
                    **{"async": {"error_topic": topic}},
                )
                other = client.endpoints.create(
                    name=unique("other"), variants=[{"name": "a", "model": xgb.name}]
                )
            yield Console(stack, admin, endpoint.name, other.name, topic, port, shots)
        finally:
            scheduler.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have Debian's chromium (.ci/run installs it)")
        pytest.skip("no /usr/bin/chromium here (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def signed_in(browser: Any, console: Console, key: str) -> Any:
    """A fresh browser context, signed in through the login form with `key`."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{console.url}/console")
    assert "/console/login" in page.url  # no key yet: sent to the login form
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{console.url}/console")
    return page


def shoot(page: Any, console: Console, name: str) -> None:
    page.screenshot(path=str(console.shots / name), full_page=True)


def test_auth_on_refuses_without_a_key_and_an_invoke_key_sees_only_its_endpoint(
    console: Console, browser: Any
) -> None:
    with httpx.Client(base_url=console.url, timeout=30) as anonymous:
        page = anonymous.get("/console")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/login?next=%2Fconsole"
        assert (
            anonymous.get(f"/console/endpoints/{console.endpoint}/history.json").status_code == 303
        )
        assert anonymous.post("/console/jobs/x/retry").status_code == 401
        assert anonymous.get("/console/static/console.css").status_code == 200  # assets are public
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{console.url}/console/models")
    page.fill("input[name=key]", "sw_nothing_wrong")
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("[role=alert]")
    context.close()

    invoke = new_key(console.stack, "--scope", "invoke", "--endpoint", console.endpoint)
    page = signed_in(browser, console, invoke)
    cookie = next(c for c in page.context.cookies() if c["name"] == "sluiceway_session")
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    table = page.inner_text("#endpoints-table")
    assert console.endpoint in table and console.other not in table
    assert page.locator("nav >> text=Models").count() == 0  # admin pages are not offered
    assert page.goto(f"{console.url}/console/models").status == 403
    assert page.goto(f"{console.url}/console/endpoints/{console.other}").status == 404
    assert page.goto(f"{console.url}/console/endpoints/{console.endpoint}").status == 200
    page.goto(f"{console.url}/console/logout")
    assert "/console/login" in page.url
    page.context.close()


def load(console: Console, stop: threading.Event) -> None:
    """Realtime calls through the SDK until `stop`, so the plots have something to show."""
    with Client(console.url, api_key=console.admin_key) as client:
        churn = client.endpoint(console.endpoint)
        while not stop.is_set():
            churn.predict(models.random_rows(4, seed=int(time.time() * 1000) % 1000))


def test_every_page_shows_live_data_plots_move_and_a_failed_job_is_retried(
    console: Console, browser: Any, s3: SeaweedServer
) -> None:
    stop = threading.Event()
    loader = threading.Thread(target=load, args=(console, stop), daemon=True)
    loader.start()
    try:
        with console.admin() as admin:
            failed = admin.post(
                f"/v1/endpoints/{console.endpoint}/async-invocations",
                json={"instances": BAD_ROW},
                headers={"X-Target-Variant": "p"},
            ).json()["job_id"]
            bucket = unique("console-in")
            s3_client = s3.client()
            s3_client.make_bucket(bucket)
            rows = b"".join(b"0.1,0.2,0.3,0.4\n" for _ in range(20))
            s3_client.put_object(bucket, "in/part-0.csv", io.BytesIO(rows), len(rows))
            transform = admin.post(
                "/v1/transform-jobs",
                json={
                    "endpoint": console.endpoint,
                    "input_prefix": f"s3://{bucket}/in/",
                    "output_prefix": f"s3://{bucket}/out/",
                },
            ).json()

            def history_has_traffic() -> bool:
                url = f"/console/endpoints/{console.endpoint}/history.json"
                charts = {c["id"]: c for c in admin.get(url).json()["charts"]}
                return any(v and v > 0 for v in charts["rps"]["data"][1])

            wait_for(history_has_traffic, timeout_s=60, what="sampled requests/s above zero")

        page = signed_in(browser, console, console.admin_key)
        assert console.endpoint in page.inner_text("#endpoints-table")
        shoot(page, console, "endpoints.png")

        page.goto(f"{console.url}/console/endpoints/{console.endpoint}")
        variants = page.inner_text("#variants")
        assert "a" in variants and "workers".upper() in variants.upper()
        # The page asks for newer points every 5 s: the plot grows without a reload.
        first = int(page.get_attribute("#chart-rps", "data-points") or "0")
        assert first >= 2
        page.wait_for_function(
            f"Number(document.querySelector('#chart-rps').dataset.points) > {first}",
            timeout=20_000,
        )
        assert page.locator("#chart-rps canvas").count() == 1  # drawn by uPlot
        shoot(page, console, "endpoint.png")

        page.goto(f"{console.url}/console/jobs?status=failed&endpoint={console.endpoint}")
        page.wait_for_selector(f"a[href='/console/jobs/{failed}']")
        shoot(page, console, "jobs.png")

        with console.admin() as admin:
            before = wait_for(
                lambda: (
                    (job := admin.get(f"/v1/jobs/{failed}").json())["status"] == "failed" and job
                ),
                timeout_s=60,
                what="the bad job to fail",
            )
        page.goto(f"{console.url}/console/jobs/{failed}")
        assert page.inner_text("#job-error")  # the model's error, as the job recorded it
        page.click("#retry")
        assert "Queued again" in page.inner_text("[role=status]")
        with console.admin() as admin:
            again = wait_for(
                lambda: (
                    (job := admin.get(f"/v1/jobs/{failed}").json())["finished_at"]
                    not in (None, before["finished_at"])
                    and job
                ),
                timeout_s=60,
                what="the retried job to run again",
            )
        assert again["attempts"] == 1  # a fresh run, not a continuation
        shoot(page, console, "job.png")

        with console.admin() as admin:
            wait_for(
                lambda: (
                    admin.get(f"/v1/transform-jobs/{transform['job_id']}").json()["status"]
                    == "succeeded"
                ),
                timeout_s=90,
                what="the transform job to succeed",
            )
        page.goto(f"{console.url}/console/transform-jobs")
        page.click(f"a[href='/console/transform-jobs/{transform['job_id']}']")
        bar = page.locator("#transform-progress")
        assert bar.get_attribute("value") == bar.get_attribute("max") == "20"
        shoot(page, console, "transform.png")

        page.goto(f"{console.url}/console/models")
        assert page.locator("table.grid tbody tr").count() >= 2
        shoot(page, console, "models.png")
        page.context.close()
    finally:
        stop.set()
        loader.join(30)


def test_a_dead_delivery_is_redriven_from_the_console(console: Console, browser: Any) -> None:
    with console.admin() as admin:
        admin.post(
            f"/v1/endpoints/{console.endpoint}/async-invocations",
            json={"instances": BAD_ROW},
            headers={"X-Target-Variant": "p"},
        )

        def dead() -> dict[str, Any] | None:
            found = admin.get(f"/v1/topics/{console.topic}/deliveries?status=dead").json()
            return found[0] if found else None

        delivery = wait_for(dead, timeout_s=60, what="a dead delivery")
    receiver = Receiver(port=console.receiver_port).start()  # the receiver is back
    try:
        page = signed_in(browser, console, console.admin_key)
        page.goto(f"{console.url}/console/topics")
        row = page.locator(f"#delivery-{delivery['delivery_id']}")
        assert "dead" in row.inner_text()
        shoot(page, console, "topics.png")
        row.locator("button.redrive").click()
        assert "redriven" in page.inner_text("[role=status]")
        with console.admin() as admin:
            wait_for(
                lambda: (
                    admin.get(f"/v1/deliveries/{delivery['delivery_id']}").json()["status"]
                    == "delivered"
                ),
                timeout_s=60,
                what="the redriven delivery to arrive",
            )
        assert receiver.received("/hook")
        page.context.close()
    finally:
        receiver.stop()


def test_every_metric_the_dashboard_and_alerts_query_is_served(console: Console) -> None:
    """Run after the tests above, so the stack has variants, batches and deliveries."""
    from tests.unit.test_observability import promql_metric_names

    text = httpx.get(f"{console.url}/metrics", timeout=30).text  # public, even with auth on
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}
    # GPU figures exist only where a worker has a GPU (none here); their names must
    # still be the ones api/metrics.py writes.
    gpu_only = {name for name in promql_metric_names() if name.startswith("sluiceway_worker_gpu_")}
    source = (REPO / "api" / "metrics.py").read_text()
    for name in gpu_only:
        assert name.removeprefix("sluiceway_worker_") in source
    missing = promql_metric_names() - gpu_only - served
    assert not missing, f"queried but not in /metrics: {sorted(missing)}"
    assert "sluiceway_worker_cpu_seconds_total" in served
    assert "process_resident_memory_bytes" in served

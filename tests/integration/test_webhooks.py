"""Webhooks through real parts: API, worker and scheduler processes, PostgreSQL, Redis, S3,
and a real HTTP receiver on loopback (tests/integration/webhook_parts.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.webhooks import verify_signature
from devstack.servers import SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    drop_postgres_database,
    new_postgres_database,
    postgres_url,
    unique,
    wait_for,
    wait_job,
)
from tests.integration.webhook_parts import (
    CALLBACK_SECRET,
    Hooks,
    Receiver,
    running_hooks,
)

pytestmark = pytest.mark.integration

BODY_FIELDS = {
    "type",
    "job_id",
    "endpoint",
    "variant",
    "output_location",
    "error",
    "finished_at",
    "inference_id",
    "failure_location",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def hooks(
    s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]
) -> Iterator[Hooks]:
    """The PostgreSQL-backed stack most tests here share."""
    database = new_postgres_database()
    try:
        with running_hooks(
            tmp_path_factory.mktemp("webhooks"),
            s3,
            postgres_url(database),
            model_files,
            workers=2,
        ) as running:
            yield running
    finally:
        drop_postgres_database(database)


# --- the tests -----------------------------------------------------------------------


def test_events_are_signed_with_each_subscriptions_secret(hooks: Hooks, receiver: Receiver) -> None:
    ok_secret, err_secret = "ok-secret-0123456789abcdef", "err-secret-0123456789abcdef"
    with hooks.client() as client:
        ok, err = hooks.topic(client), hooks.topic(client)
        created = hooks.subscribe(client, ok, receiver.url("/ok"), secret=ok_secret)
        assert "secret" not in created  # given by the user: never echoed
        hooks.subscribe(client, err, receiver.url("/err"), secret=err_secret)
        endpoint = hooks.endpoint(client, success=ok, error=err)
        good = hooks.submit(client, endpoint)
        bad = hooks.submit(client, endpoint, bad=True)
        assert wait_job(client, good)["status"] == "succeeded"
        assert wait_job(client, bad)["status"] == "failed"
        wait_for(
            lambda: receiver.received("/ok") and receiver.received("/err"),
            timeout_s=30,
            what="both webhooks",
        )
        ((success,), (failure,)) = receiver.received("/ok"), receiver.received("/err")
        for request, secret, other in (
            (success, ok_secret, err_secret),
            (failure, err_secret, ok_secret),
        ):
            signature = request.headers["x-sluiceway-signature"]
            digest = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
            assert signature == f"sha256={digest}"
            assert verify_signature(secret, request.body, signature)
            assert not verify_signature(other, request.body, signature)
            assert request.headers["content-type"] == "application/json"
            assert set(request.event) == BODY_FIELDS
            assert request.headers["x-sluiceway-event"] == request.event["type"]
        assert success.event["type"] == "InferenceSucceeded" and success.event["job_id"] == good
        assert success.event["endpoint"] == endpoint and success.event["variant"] == "a"
        assert success.event["output_location"].endswith(f"{good}.out")
        assert success.event["error"] is None and success.event["finished_at"].endswith("Z")
        assert failure.event["type"] == "InferenceFailed" and failure.event["job_id"] == bad
        assert failure.event["output_location"] is None
        assert "feature below -1000" in failure.event["error"]

        (delivery,) = hooks.deliveries(client, ok)
        assert delivery["delivery_id"] == success.delivery_id
        assert (delivery["status"], delivery["attempts"], delivery["job_id"]) == (
            "delivered",
            1,
            good,
        )
        # The secret never comes back from the API.
        for path in (
            f"/v1/topics/{ok}",
            f"/v1/topics/{ok}/subscriptions",
            f"/v1/topics/{ok}/deliveries",
        ):
            assert ok_secret not in client.get(path).text
        assert ok_secret not in client.get(f"/v1/deliveries/{success.delivery_id}").text


def test_a_generated_secret_is_shown_once_and_signs_the_deliveries(
    hooks: Hooks, receiver: Receiver
) -> None:
    with hooks.client() as client:
        topic = hooks.topic(client)
        created = hooks.subscribe(client, topic, receiver.url("/gen"))
        secret = created["secret"]
        assert len(secret) >= 32
        assert secret not in client.get(f"/v1/topics/{topic}").text
        job_id = hooks.submit(client, hooks.endpoint(client, success=topic))
        (request,) = wait_for(lambda: receiver.received("/gen"), timeout_s=30, what="the webhook")
        assert request.event["job_id"] == job_id
        assert verify_signature(secret, request.body, request.headers["x-sluiceway-signature"])


def test_webhooks_on_the_sqlite_default(
    s3: SeaweedServer,
    tmp_path: Path,
    model_files: dict[str, Path],
    receiver: Receiver,
) -> None:
    """API, worker and scheduler all writing one SQLite file: every event still arrives."""
    with (
        running_hooks(
            tmp_path, s3, f"sqlite:///{tmp_path / 'sluiceway.db'}", model_files, workers=1
        ) as lite,
        lite.client() as client,
    ):
        topic = lite.topic(client)
        lite.subscribe(client, topic, receiver.url("/lite"), secret="lite-secret-0123456789")
        endpoint = lite.endpoint(client, success=topic, error=topic)
        jobs = {lite.submit(client, endpoint) for _ in range(10)}
        jobs.add(lite.submit(client, endpoint, bad=True))
        wait_for(lambda: receiver.job_ids("/lite") == jobs, timeout_s=60, what="11 webhooks")
        for request in receiver.received("/lite"):
            signature = request.headers["x-sluiceway-signature"]
            assert verify_signature("lite-secret-0123456789", request.body, signature)
        types = sorted(r.event["type"] for r in receiver.received("/lite"))
        assert types == ["InferenceFailed"] + ["InferenceSucceeded"] * 10


def test_x_callback_url_gets_its_own_signed_delivery(hooks: Hooks, receiver: Receiver) -> None:
    with hooks.client() as client:
        endpoint = hooks.endpoint(client)  # no topics at all
        job_id = hooks.submit(client, endpoint, **{"X-Callback-Url": receiver.url("/cb")})
        (request,) = wait_for(lambda: receiver.received("/cb"), timeout_s=30, what="the callback")
        assert request.event["job_id"] == job_id
        assert verify_signature(
            CALLBACK_SECRET, request.body, request.headers["x-sluiceway-signature"]
        )
        (listed,) = client.get("/v1/deliveries", params={"job_id": job_id}).json()
        assert listed["topic"] is None and listed["delivery_id"] == request.delivery_id


def test_a_receiver_failing_three_times_gets_the_event_with_the_same_delivery_id(
    hooks: Hooks, receiver: Receiver
) -> None:
    receiver.status_for = lambda _request, nth: 500 if nth <= 3 else 200
    with hooks.client() as client:
        topic = hooks.topic(client)
        hooks.subscribe(client, topic, receiver.url("/flaky"), secret="flaky-secret-0123456789")
        job_id = hooks.submit(client, hooks.endpoint(client, success=topic))
        wait_for(lambda: len(receiver.received("/flaky")) >= 4, timeout_s=30, what="4 attempts")
        (delivery,) = wait_for(
            lambda: hooks.deliveries(client, topic, status="delivered"),
            timeout_s=10,
            what="the delivery to be recorded as delivered",
        )
        detail = client.get(f"/v1/topics/{topic}/deliveries/{delivery['delivery_id']}").json()
    attempts = receiver.received("/flaky")
    assert len(attempts) == 4
    assert {r.delivery_id for r in attempts} == {delivery["delivery_id"]}
    assert {r.body for r in attempts} == {attempts[0].body}
    assert {r.headers["x-sluiceway-signature"] for r in attempts} == {
        attempts[0].headers["x-sluiceway-signature"]
    }
    assert [r.headers["x-sluiceway-attempt"] for r in attempts] == ["1", "2", "3", "4"]
    assert attempts[0].event["job_id"] == job_id
    assert detail["status"] == "delivered" and detail["attempts"] == 4
    assert [a["status_code"] for a in detail["history"]] == [500, 500, 500, 200]
    assert all(a["latency_ms"] >= 0 and a["started_at"] for a in detail["history"])
    assert detail["history"][0]["error"].startswith("HTTP 500")
    assert detail["body"]["job_id"] == job_id


def test_a_dead_delivery_can_be_redriven(hooks: Hooks, receiver: Receiver) -> None:
    receiver.status_for = lambda _request, _nth: 503
    with hooks.client() as client:
        topic = hooks.topic(client)
        hooks.subscribe(client, topic, receiver.url("/dead"), max_attempts=2)
        hooks.submit(client, hooks.endpoint(client, success=topic))
        (dead,) = wait_for(
            lambda: hooks.deliveries(client, topic, status="dead"), timeout_s=30, what="dead"
        )
        assert dead["attempts"] == 2 and dead["last_status_code"] == 503
        receiver.status_for = lambda _request, _nth: 200
        url = f"/v1/topics/{topic}/deliveries/{dead['delivery_id']}/redrive"
        redriven = client.post(url)
        assert redriven.status_code == 200, redriven.text
        assert redriven.json()["status"] == "pending" and redriven.json()["redrives"] == 1
        wait_for(
            lambda: hooks.deliveries(client, topic, status="delivered"),
            timeout_s=30,
            what="the redriven delivery",
        )
        again = client.post(url)
        assert again.status_code == 409, again.text
        assert again.headers["content-type"] == "application/problem+json"
    assert [r.delivery_id for r in receiver.received("/dead")] == [dead["delivery_id"]] * 3


def test_a_receiver_down_for_10_s_gets_every_one_of_200_events(hooks: Hooks) -> None:
    receiver = Receiver()  # not started: connections to its port are refused
    with hooks.client() as client:
        topic = hooks.topic(client)
        hooks.subscribe(client, topic, receiver.url("/late"), secret="late-secret-0123456789")
        endpoint = hooks.endpoint(client, success=topic)
        down_since = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            jobs = set(pool.map(lambda _: hooks.submit(client, endpoint), range(200)))
        assert len(jobs) == 200

        def all_tried_and_failing() -> bool:
            pending = hooks.deliveries(client, topic, status="pending")
            return len(pending) == 200 and all(d["attempts"] >= 1 for d in pending)

        wait_for(all_tried_and_failing, timeout_s=25, what="200 deliveries failing", every_s=0.5)
        time.sleep(max(0.0, 10 - (time.monotonic() - down_since)))  # the outage itself
        receiver.start()
        try:
            wait_for(
                lambda: receiver.job_ids("/late") == jobs,
                timeout_s=60,
                what="all 200 events after the receiver came back",
                every_s=0.5,
            )
            delivered = wait_for(
                lambda: len(hooks.deliveries(client, topic, status="delivered")) == 200,
                timeout_s=15,
                what="200 deliveries recorded as delivered",
            )
            assert delivered
        finally:
            receiver.stop()
    ids = [r.delivery_id for r in receiver.received("/late")]
    assert len(ids) == len(set(ids)) == 200  # refused connections are never ambiguous


def test_a_scheduler_killed_mid_delivery_loses_nothing(hooks: Hooks, receiver: Receiver) -> None:
    receiver.delay_s = 0.5  # answers slowly, so the kill finds attempts in flight
    with hooks.client() as client:
        topic = hooks.topic(client)
        hooks.subscribe(client, topic, receiver.url("/kill"), secret="kill-secret-0123456789")
        endpoint = hooks.endpoint(client, success=topic)
        # Jobs finish while no scheduler runs: their events wait in the outbox.
        hooks.scheduler.kill()
        jobs = {hooks.submit(client, endpoint) for _ in range(40)}
        for job_id in jobs:
            assert wait_job(client, job_id)["status"] == "succeeded"
        assert receiver.received("/kill") == []
        hooks.scheduler.start()
        wait_for(lambda: receiver.answered >= 1, timeout_s=30, what="the first answer")
        answered_at_kill = receiver.answered
        hooks.scheduler.kill()  # SIGKILL, with attempts in flight and others not yet sent
        assert answered_at_kill < 40
        hooks.scheduler.start()
        wait_for(
            lambda: receiver.job_ids("/kill") == jobs,
            timeout_s=60,
            what="every event after the restart",
            every_s=0.5,
        )
        wait_for(
            lambda: len(hooks.deliveries(client, topic, status="delivered")) == 40,
            timeout_s=30,
            what="40 deliveries recorded as delivered",
        )
    # At least once: a request the kill interrupted may have arrived twice.
    assert len({r.delivery_id for r in receiver.received("/kill")}) == 40


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/hook",
        "file:///etc/passwd",
        "not a url",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.1.1/hook",
        "http://10.0.0.7/hook",
        "http://192.168.0.7/hook",
        "http://metadata.google.internal/",
    ],
)
def test_bad_subscription_urls_get_422(hooks: Hooks, url: str) -> None:
    with hooks.client() as client:
        topic = hooks.topic(client)
        response = client.post(f"/v1/topics/{topic}/subscriptions", json={"url": url})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 422
        assert client.get(f"/v1/topics/{topic}/subscriptions").json() == []


def test_bad_callback_urls_and_unknown_topics_are_refused(hooks: Hooks) -> None:
    with hooks.client() as client:
        endpoint = hooks.endpoint(client)
        response = client.post(
            f"/v1/endpoints/{endpoint}/async-invocations",
            json={"instances": models.random_rows(1, seed=1)},
            headers={"X-Callback-Url": "http://169.254.169.254/latest/"},
        )
        assert response.status_code == 422, response.text
        assert "cloud metadata" in response.json()["detail"]

        missing = unique("nope")
        response = client.post(
            "/v1/endpoints",
            json={
                "name": unique("ep"),
                "variants": [{"name": "a", "model": hooks.xgb}],
                "async": {"error_topic": missing},
            },
        )
        assert response.status_code == 422, response.text
        assert f"async.error_topic {missing!r}" in response.json()["detail"]

        topic = hooks.topic(client)
        hooks.endpoint(client, success=topic)
        assert client.delete(f"/v1/topics/{topic}").status_code == 409
        assert client.post("/v1/topics", json={"name": topic}).status_code == 409
        short = client.post(
            f"/v1/topics/{topic}/subscriptions",
            json={"url": "https://hooks.example.com/x", "secret": "short"},
        )
        assert short.status_code == 422

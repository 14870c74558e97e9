"""Nothing accepted is ever lost: real faults injected under a steady load.

One private stack — its own SeaweedFS, an append-only Redis, PostgreSQL behind a
TCP proxy that can cut it off, an API, two workers and the scheduler (its
reconciler requeues lost messages) — takes async and realtime traffic while:
(a) a worker is SIGKILLed mid-batch, three times; (b) Redis restarts;
(c) the S3 server stops for 20 s; (d) PostgreSQL is cut off for 10 s;
(e) the API and the scheduler are SIGKILLed and restarted.
Afterwards every job accepted with 202 has finished, each successful one with
exactly one output object, and no realtime caller hung.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from core.broker import queue_name
from core.tables import Job
from devstack.servers import RedisServer, SeaweedServer
from tests.integration import models
from tests.integration.conftest import (
    Stack,
    create_endpoint,
    drop_postgres_database,
    make_stack,
    new_postgres_database,
    postgres_url,
    register,
    unique,
    wait_for,
)
from tests.integration.faults import Load, TcpProxy, where_are

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("faults")
    s3 = SeaweedServer(home / "s3", access_key="faults", secret_key="faults-secret")
    redis_server = RedisServer(home / "redis", appendonly=True)
    database = new_postgres_database()
    proxy = TcpProxy("127.0.0.1", 5432)
    s3.start()
    redis_server.start()
    proxy.start()
    url = postgres_url(database).replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    stack = make_stack(
        home / "stack",
        s3,
        url,
        SLUICEWAY_REDIS_URL=redis_server.url,
        SLUICEWAY_SCALER_BACKEND="none",  # the test starts and kills the workers itself
        SLUICEWAY_RECONCILE_INTERVAL_S="3",
        # The retry delay of work let go during the S3 and PostgreSQL outages (the
        # default, 300 s, would outlast the test); a lease it may not be shorter than 2x.
        SLUICEWAY_VISIBILITY_TIMEOUT_S="8",
        SLUICEWAY_WORKER_LEASE_S="3",
    )
    (home / "stack").mkdir(exist_ok=True)
    try:
        yield {"stack": stack, "s3": s3, "redis": redis_server, "proxy": proxy, "url": url}
    finally:
        stack.stop()
        proxy.cut()
        redis_server.stop()
        s3.stop()
        drop_postgres_database(database)


def test_every_accepted_job_finishes_exactly_once_through_faults(
    rig: dict[str, Any], model_files: dict[str, Path]
) -> None:
    stack: Stack = rig["stack"]
    s3: SeaweedServer = rig["s3"]
    redis_server: RedisServer = rig["redis"]
    proxy: TcpProxy = rig["proxy"]
    stack.start_api()
    scheduler = stack._spawn(["scheduler"], "scheduler.log")
    for _ in range(2):
        stack.start_worker()
    stack.wait_workers(2)
    bucket = unique("faults")
    with stack.client() as client:
        model = register(client, unique("xgb"), "xgboost", model_files["xgb"])
        name = unique("f")
        create_endpoint(
            client,
            {
                "name": name,
                "variants": [
                    {
                        "name": "a",
                        "model": model["name"],
                        "batching": {"max_batch_size": 16, "max_delay_ms": 5},
                    }
                ],
                "async": {"output_prefix": f"s3://{bucket}/out/"},
            },
        )
    rows = models.random_rows(2, seed=3)
    expected = models.predict_xgboost(model_files["xgb"], rows)
    load = Load(api_url=stack.api_url, endpoint=name, body={"instances": rows})
    timeline: list[str] = []

    def phase(label: str, seconds: float) -> None:
        timeline.append(f"{label}: accepted so far {len(load.accepted)}")
        time.sleep(seconds)  # the load runs meanwhile: this is the fault's duration

    load.start()
    try:
        phase("warm-up", 3)
        for round_ in range(3):  # (a) SIGKILL a worker mid-batch, three times
            stack.kill_worker(stack.workers[0])
            stack.start_worker()
            phase(f"worker SIGKILL {round_ + 1}", 3)
        redis_server.stop()  # (b) Redis restarts (append-only file kept)
        phase("redis down", 2)
        redis_server.start()
        phase("redis back", 5)
        s3.stop()  # (c) the object store is gone for 20 s
        phase("s3 down", 20)
        s3.start()
        phase("s3 back", 5)
        proxy.cut()  # (d) PostgreSQL is unreachable for 10 s
        phase("postgres down", 10)
        proxy.start()
        phase("postgres back", 5)
        assert stack.api is not None  # (e) the API and the scheduler are SIGKILLed
        load.api_killed.set()
        stack.api.send_signal(signal.SIGKILL)
        stack.api.wait()
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait()
        stack.start_api()
        load.api_url = stack.api_url
        load.api_killed.clear()
        scheduler = stack._spawn(["scheduler"], "scheduler.log")
        phase("api and scheduler restarted", 5)
    finally:
        load.stop()

    engine = create_engine(rig["url"])

    def statuses() -> dict[str, str]:
        # Every job of the endpoint, not only those whose 202 the load saw: an
        # async call in flight when the API was killed may have been committed
        # just before its answer was lost. It is a job like any other and must
        # finish too (and write its output).
        with engine.connect() as connection:
            rows_ = connection.execute(select(Job.id, Job.status).where(Job.endpoint == name))
            return {job_id: status for job_id, status in rows_}

    try:
        try:
            # Healthy, the last job finishes seconds after the load stops (a lost
            # message waits out the reconciler's grace, 3 leases = 9 s). The deadline leaves
            # room, inside the test's own timeout, for the report below.
            wait_for(
                lambda: set(statuses().values()) <= {"succeeded", "failed"},
                timeout_s=150,
                what=f"all {len(load.accepted)} accepted jobs to finish",
                every_s=1,
            )
        except AssertionError as exc:
            with engine.connect() as connection:
                unfinished = connection.execute(
                    select(Job.id, Job.status, Job.attempts).where(
                        Job.endpoint == name, Job.status.in_(("queued", "running"))
                    )
                ).all()
            report = where_are(
                [(job_id, status, attempts) for job_id, status, attempts in unfinished],
                redis_url=redis_server.url,
                namespace=stack.namespace,
                queue=queue_name(stack.namespace, name, "a"),
            )
            raise AssertionError(f"{exc}; {len(unfinished)} unfinished:\n{report}") from None
        every_job = statuses()
        final = Counter(every_job[job_id] for job_id in load.accepted if job_id in every_job)
        with engine.connect() as connection:
            failed = connection.execute(
                select(Job.id, Job.error).where(Job.endpoint == name, Job.status == "failed")
            ).all()
    finally:
        engine.dispose()
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(60)

    summary = (
        f"accepted {len(load.accepted)}, succeeded {final['succeeded']}, failed "
        f"{final['failed']}, lost {len(load.accepted) - sum(final.values())}; "
        f"async refused {dict(load.async_refused)}; realtime {dict(load.realtime)}; "
        + " | ".join(timeline)
    )
    logger.warning("fault run: %s", summary)
    print(summary)
    assert sum(final.values()) == len(load.accepted), summary  # none lost
    assert final["failed"] == 0, f"{summary}; failures: {failed[:5]}"
    assert len(load.accepted) > 100, summary
    # Exactly one output object per job, each holding that job's predictions.
    keys = sorted(
        o.object_name for o in s3.client().list_objects(bucket, prefix="out/", recursive=True)
    )
    assert keys == sorted(f"out/{job_id}.out" for job_id in every_job)
    for job_id in load.accepted[:: max(len(load.accepted) // 20, 1)]:
        import orjson

        stored = orjson.loads(s3.client().get_object(bucket, f"out/{job_id}.out").read())
        models.assert_close(stored["predictions"], expected)
    # Realtime callers got answers or clear refusals, never a hang or a 500.
    assert "hang" not in load.realtime and "500" not in load.realtime, summary
    allowed = {"200", "503", "504", "refused", "429", "dropped by the kill"}
    assert set(load.realtime) <= allowed, summary
    assert load.realtime["200"] > 0, summary

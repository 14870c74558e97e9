"""The local server launchers against the real binaries: SeaweedFS S3 and redis-server.

Each test starts its own server on free ports under `tmp_path`, so runs never
collide with the machine's shared Redis or with each other.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from core.config import Settings
from devstack.servers import RedisServer, SeaweedServer, redis_reachable, s3_reachable

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    with SeaweedServer(
        tmp_path_factory.mktemp("s3"),
        access_key=f"key-{uuid.uuid4().hex[:8]}",
        secret_key=uuid.uuid4().hex,
    ) as server:
        yield server


def _settings(server: SeaweedServer, *, secret_key: str) -> Settings:
    return Settings(
        s3_endpoint=server.endpoint, s3_access_key=server.access_key, s3_secret_key=secret_key
    )


def test_seaweed_put_get_round_trip(seaweed: SeaweedServer) -> None:
    client = seaweed.client()
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket)
    payload = b"sluiceway" * 1000
    client.put_object(bucket, "in/x.bin", io.BytesIO(payload), len(payload))

    response = client.get_object(bucket, "in/x.bin")
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()
    assert s3_reachable(_settings(seaweed, secret_key=seaweed.secret_key))


def test_seaweed_refuses_a_wrong_secret(seaweed: SeaweedServer) -> None:
    wrong = Minio(
        seaweed.endpoint.removeprefix("http://"),
        access_key=seaweed.access_key,
        secret_key=seaweed.secret_key + "-wrong",
        secure=False,
    )
    with pytest.raises(S3Error) as caught:
        wrong.list_buckets()
    assert caught.value.code in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}
    assert not s3_reachable(_settings(seaweed, secret_key=seaweed.secret_key + "-wrong"))


def test_seaweed_restart_keeps_endpoint_and_data(seaweed: SeaweedServer) -> None:
    client = seaweed.client()
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket)
    client.put_object(bucket, "kept", io.BytesIO(b"still here"), 10)
    endpoint = seaweed.endpoint

    seaweed.stop()
    assert not s3_reachable(_settings(seaweed, secret_key=seaweed.secret_key), timeout_s=0.5)
    seaweed.start()

    assert seaweed.endpoint == endpoint
    response = seaweed.client().get_object(bucket, "kept")
    try:
        assert response.read() == b"still here"
    finally:
        response.close()
        response.release_conn()


def test_seaweed_pause_makes_requests_hang_until_resumed(seaweed: SeaweedServer) -> None:
    seaweed.pause()
    try:
        assert not s3_reachable(_settings(seaweed, secret_key=seaweed.secret_key), timeout_s=0.5)
    finally:
        seaweed.resume()
    assert s3_reachable(_settings(seaweed, secret_key=seaweed.secret_key))


def test_redis_ping_and_restart_on_the_same_port(tmp_path: Path) -> None:
    with RedisServer(tmp_path, appendonly=True) as server:
        client = server.client()
        assert client.ping()
        client.set("kept", b"1")
        port = server.port

        server.restart()

        assert server.port == port
        # Append-only file on: the write survives the restart.
        assert server.client().get("kept") == b"1"


def test_redis_kill_then_start_again(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        assert redis_reachable(server.url)
        server.kill()
        assert not redis_reachable(server.url, timeout_s=0.5)
        server.start()
        assert redis_reachable(server.url)
    assert not redis_reachable(server.url, timeout_s=0.5)

"""Keys with every kind of character, through the platform's object-store client and a
real S3 server (SeaweedFS): written, listed, read and removed under the exact key."""

from __future__ import annotations

import pytest

from core.config import Settings
from core.storage import ObjectStore, S3Location
from devstack.servers import SeaweedServer
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration

# What a URL parser or a path normaliser would mangle; all are plain key characters to S3.
KEYS = [
    "in/data#v2",
    "in/q?x=1&y=2",
    "in/100%.csv",
    "in/a%20b.csv",
    "in/plus+sign.csv",
    "in/sp ace.csv",
    "in/données.json",
    "in/数据/文件.csv",
    "in/emoji😀.csv",
    "in/semi;colon,comma=eq@at!bang'quote(paren)*star~tilde",
    "in/tab\there",
]


@pytest.fixture(scope="module")
def store(s3: SeaweedServer) -> ObjectStore:
    env = s3.settings_env()
    return ObjectStore(
        Settings(
            s3_endpoint=env["SLUICEWAY_S3_ENDPOINT"],
            s3_access_key=env["SLUICEWAY_S3_ACCESS_KEY"],
            s3_secret_key=env["SLUICEWAY_S3_SECRET_KEY"],
        )
    )


def test_every_key_round_trips_through_the_store(store: ObjectStore) -> None:
    """Regression: keys went through a URL parser on their way to the store, so a
    '#' or '?' cut them short; each location here is formatted, parsed back and used."""
    bucket = unique("keys")
    locations = [S3Location.parse(str(S3Location(bucket, key))) for key in KEYS]
    for location in locations:
        store.put_bytes(location, location.key.encode(), "text/plain")
    listed = dict(store.iter_objects(S3Location(bucket, "in/")))
    assert sorted(listed) == sorted(KEYS)
    for location in locations:
        assert store.get_bytes(location) == location.key.encode()
        assert store.stat(location).size == len(location.key.encode())
    assert store.delete_uris(str(location) for location in locations) == []
    assert list(store.iter_objects(S3Location(bucket, ""))) == []

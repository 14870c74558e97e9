"""How the local server launchers build their command lines (no process is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import servers
from devstack.servers import SEAWEED_GRPC_OFFSET, RedisServer, SeaweedServer


@pytest.fixture(autouse=True)
def _fake_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "find_executable", lambda name, *, hint: f"/bin/{name}")


def _flags(command: list[str]) -> dict[str, str]:
    return dict(arg.lstrip("-").split("=", 1) for arg in command if arg.startswith("-"))


def test_weed_gets_every_listener_on_its_own_port(tmp_path: Path) -> None:
    """Regression: weed's default ports (9333, 8888, ...) collide between parallel servers."""
    server = SeaweedServer(tmp_path, access_key="a", secret_key="b", port=9123)
    flags = _flags(server._command())

    listeners = {
        "s3.port",
        "s3.port.grpc",
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "admin.port",
        "admin.port.grpc",
    }
    assert listeners <= flags.keys()
    ports = [int(flags[name]) for name in listeners]
    assert len(set(ports)) == len(ports)
    assert flags["s3.port"] == "9123"
    assert server.endpoint == "http://127.0.0.1:9123"


def test_weed_admin_grpc_keeps_the_fixed_offset(tmp_path: Path) -> None:
    """Regression: weed's embedded worker dials admin.port + 10000, ignoring admin.port.grpc."""
    flags = _flags(SeaweedServer(tmp_path, access_key="a", secret_key="b")._command())
    assert int(flags["admin.port.grpc"]) == int(flags["admin.port"]) + SEAWEED_GRPC_OFFSET


def test_weed_has_room_for_hundreds_of_buckets_whatever_the_free_disk(tmp_path: Path) -> None:
    """Regression: with weed's defaults (128 MB volumes, as many as fit the free disk)
    the 61st bucket of a test run got "no free volumes left" on every write; each
    bucket takes ~7 volumes when first written."""
    flags = _flags(SeaweedServer(tmp_path, access_key="a", secret_key="b")._command())
    assert int(flags["volume.max"]) // 7 >= 500
    assert int(flags["master.volumeSizeLimitMB"]) <= 16


def test_weed_listens_on_loopback_only_and_phones_nowhere(tmp_path: Path) -> None:
    flags = _flags(SeaweedServer(tmp_path, access_key="a", secret_key="b")._command())
    assert flags["ip"] == flags["ip.bind"] == "127.0.0.1"
    assert flags["master.telemetry"] == "false"
    assert flags["dir"] == str(tmp_path.resolve() / "data")


def test_weed_gets_the_keys_through_its_environment(tmp_path: Path) -> None:
    env = SeaweedServer(tmp_path, access_key="ak", secret_key="sk")._env()
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("ak", "sk")


@pytest.mark.parametrize(("appendonly", "expected"), [(True, "yes"), (False, "no")])
def test_redis_command(tmp_path: Path, appendonly: bool, expected: str) -> None:
    server = RedisServer(tmp_path, port=6390, appendonly=appendonly)
    command = server._command()
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options == {
        "--port": "6390",
        "--bind": "127.0.0.1",
        "--save": "",
        "--appendonly": expected,
        "--dir": str(tmp_path.resolve()),
    }
    assert server.url == "redis://127.0.0.1:6390/0"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("churn/a", True),
        ("churn/ic.small", True),
        ("_transform/m-v1", True),
        ("churn/ic.Small", True),  # names are case-sensitive, as in SageMaker
        ("churn/ic.small_x", False),
        ("churn/x.small", False),
        ("churn/ic.", False),
        ("churn/a~2", True),  # a deployment's new variant (core.tables.VARIANT_KEY_SEPARATOR)
        ("churn/a~", False),
        ("churn/a~x", False),
    ],
)
def test_worker_variant_names_a_variant_or_an_inference_component(value: str, ok: bool) -> None:
    """Regression: `--variant churn/ic.small` (a component's queue) was refused and the
    scheduler's copies exited at once with a usage error."""
    from cli.ops import VARIANT_PATTERN

    assert bool(VARIANT_PATTERN.match(value)) is ok


@pytest.mark.parametrize(
    "key", ["churn/a", "churn/a~2", "churn/ic.small", "_transform/churn-xgb-v3"]
)
def test_the_scalers_worker_command_passes_the_cli(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: workers the scaler started for a deployment's new variant (`a~2`)
    exited with a usage error, over and over; only a warm spare could serve it."""
    from typer.testing import CliRunner

    import workers.main
    from cli.main import app
    from scheduler.scaling.actuators.local import worker_command

    started: list[list[str]] = []
    monkeypatch.setattr(
        workers.main, "run_worker", lambda *, device, variants, name: started.append(variants)
    )
    argv = worker_command(key, "cpu", "w1")
    result = CliRunner().invoke(app, argv[argv.index("worker") :])
    assert result.exit_code == 0, result.output
    assert started == [[key]]

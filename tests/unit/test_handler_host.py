"""The handler host: python handlers run in a child process a worker can stop.

Real child processes (local socket pairs, no network): a handler stuck in a
loop is stopped at its timeout and the next call runs on a fresh host; a
handler that kills its process fails only its call; errors keep their kind;
the host never outlives its worker.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.errors import InvalidInput, InvocationTimeout, ModelError
from workers.runners.host import HandlerHost, HostedPythonRunner

JSON = "application/json"

HANDLER = """
import os


def model_fn(model_dir):
    with open(os.path.join(model_dir, "loads.log"), "a") as log:
        log.write("loaded\\n")
    return 2.0


def input_fn(body, content_type):
    if body == b"refuse":
        raise ValueError("not a payload I take")
    import json
    return json.loads(body)["instances"]


def predict_fn(data, model):
    first = data[0][0]
    if first == -1:
        while True:  # stuck: never returns
            pass
    if first == -2:
        os._exit(3)  # the handler takes its process down
    if first == -3:
        raise KeyError("no such column")
    return [model * row[0] for row in data]
"""


def bundle(path: Path, source: str) -> Path:
    data = textwrap.dedent(source).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("handler.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def body(*firsts: float) -> bytes:
    return orjson.dumps({"instances": [[v, 0] for v in firsts]})


@pytest.fixture
def host() -> Iterator[HandlerHost]:
    running = HandlerHost(device="cpu")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def runner(host: HandlerHost, tmp_path: Path) -> HostedPythonRunner:
    return HostedPythonRunner(host, bundle(tmp_path / "doubler.tar.gz", HANDLER))


def loads(tmp_path: Path) -> int:
    return len((tmp_path / "doubler.tar.gz.d" / "loads.log").read_text().splitlines())


def test_a_handler_answers_through_its_host(runner: HostedPythonRunner, tmp_path: Path) -> None:
    assert runner.invoke(body(1, 2.5), JSON, None, timeout_s=10) == (
        b'{"predictions":[2.0,5.0]}',
        JSON,
    )
    assert loads(tmp_path) == 1  # model_fn ran once, in the host
    assert runner.host.pid is not None and runner.host.pid != os.getpid()


def test_a_stuck_handler_is_stopped_at_its_timeout_and_the_next_call_runs(
    runner: HostedPythonRunner, tmp_path: Path
) -> None:
    first_host = runner.host.pid
    with pytest.raises(InvocationTimeout, match=r"no answer within 0\.5 s"):
        runner.invoke(body(-1), JSON, None, timeout_s=0.5)
    assert first_host is not None
    with pytest.raises(ProcessLookupError):
        os.kill(first_host, 0)  # the stuck host is gone
    assert runner.invoke(body(3), JSON, None, timeout_s=10)[0] == b'{"predictions":[6.0]}'
    assert runner.host.starts == 2 and loads(tmp_path) == 2  # a fresh host loaded it again


def test_a_handler_that_kills_its_process_fails_only_its_call(runner: HostedPythonRunner) -> None:
    with pytest.raises(ModelError, match=r"the handler process died .*exit code 3"):
        runner.invoke(body(-2), JSON, None, timeout_s=10)
    assert runner.invoke(body(1), JSON, None, timeout_s=10)[0] == b'{"predictions":[2.0]}'


def test_errors_keep_their_kind_across_the_process_boundary(runner: HostedPythonRunner) -> None:
    with pytest.raises(InvalidInput, match="input_fn rejected the payload: not a payload"):
        runner.invoke(b"refuse", JSON, None, timeout_s=10)
    with pytest.raises(ModelError, match="the handler raised KeyError"):
        runner.invoke(body(-3), JSON, None, timeout_s=10)
    assert runner.host.starts == 1  # a handler's exception costs no restart


def test_a_handler_that_will_not_load_is_a_model_error(host: HandlerHost, tmp_path: Path) -> None:
    path = bundle(tmp_path / "broken.tar.gz", "def model_fn(d):\n    raise RuntimeError('gone')\n")
    with pytest.raises(ModelError, match="model_fn raised RuntimeError: gone"):
        HostedPythonRunner(host, path)


def test_an_evicted_handler_is_unloaded_and_loads_again_when_called(
    runner: HostedPythonRunner, tmp_path: Path
) -> None:
    runner.close()
    assert runner.invoke(body(1), JSON, None, timeout_s=10)[0] == b'{"predictions":[2.0]}'
    assert loads(tmp_path) == 2 and runner.host.starts == 1


WORKER = """
import sys, threading, time
from pathlib import Path
from workers.runners.host import HandlerHost, HostedPythonRunner

host = HandlerHost(device="cpu")
runner = HostedPythonRunner(host, Path(sys.argv[1]))
print(host.pid, flush=True)
runner.invoke(b'{"instances": [[-1, 0]]}', "application/json", None, timeout_s=600)
"""


def test_the_host_dies_with_its_worker_even_while_a_handler_is_stuck(tmp_path: Path) -> None:
    """A worker killed with SIGKILL must not leave its host spinning in a handler's loop."""
    path = bundle(tmp_path / "doubler.tar.gz", HANDLER)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        host_pid = int(worker.stdout.readline())
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        deadline = time.monotonic() + 10
        while _alive(host_pid):
            assert time.monotonic() < deadline, "the host outlived its worker"
            time.sleep(0.05)
    finally:
        if worker.poll() is None:
            worker.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent, the killed worker, cannot reap it).
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False

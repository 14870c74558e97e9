"""Batching python handlers: `batch_predict` makes one `predict_fn` call for many requests.

In this process (PythonRunner) and through a real handler host process: whole
batches reach `predict_fn` ("list": one input per request; "stack": rows
stacked and split back), `input_fn`/`output_fn` stay per request, and a
request that makes the batch raise fails alone.
"""

from __future__ import annotations

import io
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.errors import InvalidInput, ModelError, SluicewayError
from workers.runners.host import HandlerHost, HostedPythonRunner
from workers.runners.python import PythonRunner, batch_mode_of

JSON = "application/json"

LIST_HANDLER = """
import json
import os

batch_predict = True


def model_fn(model_dir):
    return os.path.join(model_dir, "calls.log")


def input_fn(body, content_type):
    if body == b"refuse":
        raise ValueError("not a payload I take")
    return json.loads(body)["instances"]


def predict_fn(batch, model):
    with open(model, "a") as log:
        log.write(f"{len(batch)}\\n")
    if any(row[0] == -3 for request in batch for row in request):
        raise KeyError("no such column")
    return [[2 * row[0] for row in request] for request in batch]
"""

STACK_HANDLER = """
import numpy as np

batch_predict = "stack"


def input_fn(body, content_type):
    import json
    return np.asarray(json.loads(body)["instances"], dtype=float)


def predict_fn(rows, model):
    assert isinstance(rows, np.ndarray) and rows.ndim == 2
    return rows.sum(axis=1) + len(rows) * 0
"""


def bundle(path: Path, source: str) -> Path:
    data = textwrap.dedent(source).encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("handler.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def body(rows: list[list[float]]) -> bytes:
    return orjson.dumps({"instances": rows})


def calls_logged(runner: PythonRunner) -> list[int]:
    return [int(line) for line in Path(runner.model).read_text().split()]


def test_batch_mode_declarations() -> None:
    assert batch_mode_of(False) is None
    assert batch_mode_of(True) == "list"
    assert batch_mode_of("stack") == "stack"
    with pytest.raises(InvalidInput, match="batch_predict = 'rows'"):
        batch_mode_of("rows")


def test_a_list_handler_gets_every_request_in_one_call(tmp_path: Path) -> None:
    runner = PythonRunner(bundle(tmp_path / "h.tar.gz", LIST_HANDLER), "cpu")
    assert runner.batch_mode == "list"
    answers = runner.invoke_batch([(body([[1.0], [2.0]]), JSON, None), (body([[5.0]]), JSON, None)])
    assert [orjson.loads(a[0]) for a in answers if isinstance(a, tuple)] == [
        {"predictions": [2.0, 4.0]},
        {"predictions": [10.0]},
    ]
    assert calls_logged(runner) == [2]


def test_a_poisoned_request_fails_alone_after_bisection(tmp_path: Path) -> None:
    runner = PythonRunner(bundle(tmp_path / "h.tar.gz", LIST_HANDLER), "cpu")
    calls = [(body([[float(i)]]), JSON, None) for i in range(8)]
    calls[5] = (body([[-3.0]]), JSON, None)
    calls[2] = (b"refuse", JSON, None)
    answers = runner.invoke_batch(calls)
    assert isinstance(answers[2], InvalidInput) and "input_fn rejected" in answers[2].detail
    assert isinstance(answers[5], ModelError) and "KeyError" in answers[5].detail
    good = [i for i in range(8) if i not in (2, 5)]
    assert all(isinstance(answers[i], tuple) for i in good)
    assert orjson.loads(answers[7][0]) == {"predictions": [14.0]}  # type: ignore[index]
    # The first call had all 7 decoded requests; bisection found the poisoned one.
    assert calls_logged(runner)[0] == 7
    assert len(calls_logged(runner)) <= 2 * 3 + 1


def test_a_stack_handler_gets_rows_stacked_and_split_back(tmp_path: Path) -> None:
    runner = PythonRunner(bundle(tmp_path / "s.tar.gz", STACK_HANDLER), "cpu")
    answers = runner.invoke_batch(
        [(body([[1, 2], [3, 4], [5, 6]]), JSON, None), (body([[10, 20]]), JSON, None)]
    )
    assert [orjson.loads(a[0]) for a in answers if isinstance(a, tuple)] == [
        {"predictions": [3.0, 7.0, 11.0]},
        {"predictions": [30.0]},
    ]


def test_a_list_handler_must_return_one_prediction_per_request(tmp_path: Path) -> None:
    source = "batch_predict = True\ndef predict_fn(batch, model):\n    return [[1]]\n"
    runner = PythonRunner(bundle(tmp_path / "bad.tar.gz", source), "cpu")
    answers = runner.invoke_batch([(body([[1.0]]), JSON, None), (body([[2.0]]), JSON, None)])
    # Bisected down to single requests, where one prediction for one request is right.
    assert all(isinstance(a, tuple) for a in answers)
    single = runner.invoke_batch([(body([[1.0], [2.0]]), JSON, None)])
    assert isinstance(single[0], ModelError)
    assert "1 predictions for 2 instances" in single[0].detail


def test_a_single_invoke_of_a_batching_handler_is_a_batch_of_one(tmp_path: Path) -> None:
    runner = PythonRunner(bundle(tmp_path / "h.tar.gz", LIST_HANDLER), "cpu")
    payload, _ = runner.invoke(body([[3.0]]), JSON, None)
    assert orjson.loads(payload) == {"predictions": [6.0]}
    with pytest.raises(ModelError, match="KeyError"):
        runner.invoke(body([[-3.0]]), JSON, None)


@pytest.fixture
def host() -> Iterator[HandlerHost]:
    running = HandlerHost(device="cpu")
    yield running
    running.stop()


def test_the_handler_host_runs_a_batch_in_one_round_trip(tmp_path: Path, host: HandlerHost) -> None:
    runner = HostedPythonRunner(host, bundle(tmp_path / "h.tar.gz", LIST_HANDLER))
    assert runner.batch_mode == "list"
    answers = runner.invoke_batch(
        [(body([[1.0]]), JSON, None), (b"refuse", JSON, None), (body([[-3.0]]), JSON, None)],
        timeout_s=30,
    )
    assert orjson.loads(answers[0][0]) == {"predictions": [2.0]}  # type: ignore[index]
    assert isinstance(answers[1], InvalidInput)
    assert isinstance(answers[2], ModelError) and "KeyError" in answers[2].detail
    log = tmp_path / "h.tar.gz.d" / "calls.log"
    assert next(int(n) for n in log.read_text().split()) == 2


def test_a_non_batching_handler_in_the_host_answers_call_by_call(
    tmp_path: Path, host: HandlerHost
) -> None:
    source = "def predict_fn(data, model):\n    return [row[0] for row in data]\n"
    runner = HostedPythonRunner(host, bundle(tmp_path / "one.tar.gz", source))
    assert runner.batch_mode is None
    answers = runner.invoke_batch([(body([[1.0]]), JSON, None), (b"{", JSON, None)], timeout_s=30)
    assert orjson.loads(answers[0][0]) == {"predictions": [1.0]}  # type: ignore[index]
    assert isinstance(answers[1], SluicewayError)

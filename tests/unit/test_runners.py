"""Model runners on real small models built in a temporary folder (no network, no workers).

Each runner must give what the model gives when called directly, and turn every
failure into the project error that names it: InvalidInput for what the caller
sent (or a broken artifact), ModelError for what the model did.
"""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from api import payloads
from core.codecs import CSV, JSON
from core.errors import InvalidInput, ModelError
from tests.integration import models
from workers.runners import Runner, load_runner
from workers.runners.base import NumericRunner


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runners")


@pytest.fixture(scope="module")
def artifacts(folder: Path) -> dict[str, Path]:
    import torch

    program = torch.export.export(
        torch.nn.Sequential(torch.nn.Linear(models.FEATURES, 3)).eval(),
        (torch.zeros(2, models.FEATURES),),
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
    )
    exported = folder / "seq.pt2"
    torch.export.save(program, str(exported))
    return {
        "xgboost": models.build_xgboost(folder / "model.json"),
        "torch": models.build_torch(folder / "mlp.pt"),
        "picky": models.build_torch(folder / "picky.pt", raise_on_negative=True),
        "torch-export": exported,
    }


def _expected(kind: str, path: Path, rows: list[list[float]]) -> Any:
    if kind == "xgboost":
        return models.predict_xgboost(path, rows)
    if kind == "torch-export":
        import torch

        module = torch.export.load(str(path)).module()
        with torch.inference_mode():
            return module(torch.tensor(rows, dtype=torch.float32)).tolist()
    return models.predict_torch(path, rows)


def _framework(kind: str) -> str:
    return "xgboost" if kind == "xgboost" else "torch"


def _json(rows: list[Any]) -> bytes:
    return orjson.dumps({"instances": rows})


def _csv(rows: list[list[float]]) -> bytes:
    return ("\n".join(",".join(repr(v) for v in row) for row in rows) + "\n").encode()


# --- numeric runners: same answers as the model called directly ---------------------


@pytest.mark.parametrize("kind", ["xgboost", "torch"])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_json_predictions_equal_the_model_called_directly(
    artifacts: dict[str, Path], kind: str, n: int
) -> None:
    rows = models.random_rows(n, seed=n)
    runner = load_runner(_framework(kind), artifacts[kind], "cpu")
    body, content_type = runner.invoke(_json(rows), JSON, None)
    assert content_type == JSON
    predictions = orjson.loads(body)["predictions"]
    assert len(predictions) == n
    models.assert_close(predictions, _expected(kind, artifacts[kind], rows))


def test_torch_export_archive_loads_and_predicts(artifacts: dict[str, Path]) -> None:
    """Regression: docs/api.md accepts `torch.export` archives, but TorchRunner called
    `.eval()` on the exported module, which raises NotImplementedError, so no .pt2
    model could ever be loaded (and the worker's error was not a project error)."""
    path = artifacts["torch-export"]
    runner = load_runner("torch", path, "cpu")
    assert isinstance(runner, NumericRunner)
    assert runner.expected_features == models.FEATURES
    rows = models.random_rows(5, seed=5)
    body, _ = runner.invoke(_json(rows), JSON, None)
    models.assert_close(orjson.loads(body)["predictions"], _expected("torch-export", path, rows))
    with pytest.raises(InvalidInput, match=f"expects {models.FEATURES} features"):
        runner.invoke(_json([[1.0, 2.0]]), JSON, None)


@pytest.mark.parametrize("kind", ["xgboost", "torch"])
def test_csv_in_gives_csv_out_with_the_same_values(artifacts: dict[str, Path], kind: str) -> None:
    rows = models.random_rows(5, seed=11)
    runner = load_runner(_framework(kind), artifacts[kind], "cpu")
    body, content_type = runner.invoke(_csv(rows), CSV, None)
    assert content_type == CSV
    got = [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]
    expected = np.asarray(_expected(kind, artifacts[kind], rows)).reshape(len(rows), -1)
    models.assert_close(got, expected)


@pytest.mark.parametrize("kind", ["xgboost", "torch"])
def test_csv_in_with_accept_json_gives_json(artifacts: dict[str, Path], kind: str) -> None:
    rows = models.random_rows(3, seed=12)
    runner = load_runner(_framework(kind), artifacts[kind], "cpu")
    body, content_type = runner.invoke(_csv(rows), CSV, "application/json")
    assert content_type == JSON
    models.assert_close(orjson.loads(body)["predictions"], _expected(kind, artifacts[kind], rows))


@pytest.mark.parametrize("kind", ["xgboost", "torch"])
def test_numeric_runners_know_their_feature_count(artifacts: dict[str, Path], kind: str) -> None:
    runner = load_runner(_framework(kind), artifacts[kind], "cpu")
    assert isinstance(runner, NumericRunner)
    assert runner.expected_features == models.FEATURES


# --- numeric runners: errors ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["xgboost", "torch"])
@pytest.mark.parametrize("width", [3, 5, 1])
def test_wrong_feature_count_is_invalid_input_naming_both_counts(
    artifacts: dict[str, Path], kind: str, width: int
) -> None:
    runner = load_runner(_framework(kind), artifacts[kind], "cpu")
    with pytest.raises(InvalidInput) as caught:
        runner.invoke(_json([[0.5] * width, [1.5] * width]), JSON, None)
    detail = caught.value.detail
    assert f"expects {models.FEATURES} features" in detail
    assert f"got {width}" in detail


@pytest.mark.parametrize("kind", ["xgboost", "torch"])
@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b'{"instances": [[1, 2, 3, 4], [1, 2]]}', JSON, InvalidInput),
        (b'{"instances": [[1, 2, "x", 4]]}', JSON, InvalidInput),
        (b'{"instances": []}', JSON, InvalidInput),
        (b"1,2,3,four\n", CSV, InvalidInput),
        (b'{"instances": [[1e39, 1, 1, 1]]}', JSON, InvalidInput),
        (b"1,2,3,nan\n", CSV, InvalidInput),
    ],
    ids=["ragged", "string", "empty", "csv-word", "beyond-float32", "csv-nan"],
)
def test_bad_payloads_are_invalid_input(
    artifacts: dict[str, Path], kind: str, body: bytes, content_type: str, error: type
) -> None:
    runner = load_runner(_framework(kind), artifacts[kind], "cpu")
    with pytest.raises(error):
        runner.invoke(body, content_type, None)


def test_the_api_checks_payloads_against_the_runners_input_type() -> None:
    """The API refuses what the worker would (api/payloads.py cannot import workers/)."""
    assert NumericRunner.input_dtype == payloads.BUILTIN_INPUT_DTYPE


def test_a_value_beyond_float32_is_refused_not_turned_into_infinity(
    artifacts: dict[str, Path],
) -> None:
    """Regression: the runner cast 1e39 to float32 inf without a word and answered
    {"predictions": [null, ...]}; an async input object is checked only here."""
    runner = load_runner("torch", artifacts["torch"], "cpu")
    assert isinstance(runner, NumericRunner)
    with pytest.raises(InvalidInput, match="instance 1, feature 3: -1e\\+39 is outside float32"):
        runner.to_array(b'{"instances": [[1, 2, 3, 4], [1, 2, 3, -1e39]]}', JSON)


def test_a_model_that_raises_is_a_model_error(artifacts: dict[str, Path]) -> None:
    runner = load_runner("torch", artifacts["picky"], "cpu")
    rows = models.random_rows(3, seed=13)
    runner.invoke(_json(rows), JSON, None)  # fine on ordinary rows
    rows[1][2] = -5000.0
    with pytest.raises(ModelError) as caught:
        runner.invoke(_json(rows), JSON, None)
    assert caught.value.status == 424
    assert "feature below -1000" in caught.value.detail


class _Fake(NumericRunner):
    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour

    def predict_array(self, rows: np.ndarray) -> list[Any]:
        result: list[Any] = self.behaviour(rows)
        return result


def _raise(rows: np.ndarray) -> list[Any]:
    raise ZeroDivisionError("division by zero in layer 3")


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (_raise, "the model raised ZeroDivisionError: division by zero in layer 3"),
        (lambda rows: [0.0] * (len(rows) - 1), "returned 2 predictions for 3 instances"),
        (lambda rows: [0.0] * (len(rows) + 2), "returned 5 predictions for 3 instances"),
    ],
    ids=["raises", "too-few", "too-many"],
)
def test_numeric_runner_turns_model_failures_into_model_errors(
    behaviour: Any, message: str
) -> None:
    with pytest.raises(ModelError) as caught:
        _Fake(behaviour).invoke(_json([[1.0], [2.0], [3.0]]), JSON, None)
    assert message in caught.value.detail


def test_numeric_runner_refuses_an_unsupported_content_type() -> None:
    from core.errors import UnsupportedMediaType

    with pytest.raises(UnsupportedMediaType):
        _Fake(lambda rows: list(rows)).invoke(b"1 2 3", "text/plain", None)


# --- corrupt artifacts ------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "xgboost", "python"])
@pytest.mark.parametrize(
    "content",
    [b"this is not a model at all", b"PK\x03\x04garbage-zip", b'{"learner": 1', b"\x1f\x8b\x08"],
    ids=["text", "bad-zip", "bad-json", "bad-gzip"],
)
def test_a_corrupt_artifact_is_invalid_input(
    tmp_path: Path, framework: str, content: bytes
) -> None:
    """Regression (bad-gzip-python): a truncated .tar.gz passes the registry's sniff,
    then PythonRunner let tarfile's EOFError escape instead of raising InvalidInput."""
    path = tmp_path / "artifact.bin"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as caught:
        load_runner(framework, path, "cpu")
    assert "artifact.bin" in caught.value.detail


# --- python handler bundles -------------------------------------------------------------


def _bundle(path: Path, files: dict[str, str | bytes]) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return path


LINEAR_HANDLER = textwrap.dedent(
    """
    import json
    import os


    def model_fn(model_dir):
        with open(os.path.join(model_dir, "weights.json")) as f:
            return json.load(f)


    def predict_fn(data, model):
        return [float(sum(w * x for w, x in zip(model["w"], row)) + model["b"]) for row in data]
    """
)
WEIGHTS = '{"w": [1.0, -2.0, 0.5, 4.0], "b": 0.25}'


def _linear(rows: list[list[float]]) -> list[float]:
    w, b = [1.0, -2.0, 0.5, 4.0], 0.25
    return [sum(wi * xi for wi, xi in zip(w, row, strict=True)) + b for row in rows]


@pytest.mark.parametrize("handler_path", ["handler.py", "inference.py", "code/inference.py"])
def test_python_bundle_runs_model_fn_and_predict_fn(tmp_path: Path, handler_path: str) -> None:
    path = _bundle(
        tmp_path / "linear.tar.gz", {handler_path: LINEAR_HANDLER, "weights.json": WEIGHTS}
    )
    runner = load_runner("python", path, "cpu")
    rows = models.random_rows(4, seed=21)
    body, content_type = runner.invoke(_json(rows), JSON, None)
    assert content_type == JSON
    models.assert_close(orjson.loads(body)["predictions"], _linear(rows))

    body, content_type = runner.invoke(_csv(rows), CSV, None)
    assert content_type == CSV
    models.assert_close([float(v) for v in body.decode().split()], _linear(rows))


def test_python_bundle_custom_input_and_output_functions(tmp_path: Path) -> None:
    handler = textwrap.dedent(
        """
        def input_fn(body, content_type):
            assert content_type == "text/plain", content_type
            return body.decode().split()


        def predict_fn(data, model):
            return [word.upper() for word in data]


        def output_fn(prediction, accept):
            return " ".join(prediction), "text/plain"
        """
    )
    runner = load_runner(
        "python", _bundle(tmp_path / "shout.tar.gz", {"handler.py": handler}), "cpu"
    )
    assert runner.invoke(b"hello sluice way", "text/plain", None) == (
        b"HELLO SLUICE WAY",
        "text/plain",
    )


def test_python_bundle_default_predict_calls_the_model(tmp_path: Path) -> None:
    handler = textwrap.dedent(
        """
        def model_fn(model_dir):
            return lambda data: data.sum(axis=1)
        """
    )
    runner = load_runner("python", _bundle(tmp_path / "sum.tar.gz", {"handler.py": handler}), "cpu")
    body, _ = runner.invoke(_json([[1, 2], [3, 4.5]]), JSON, None)
    assert orjson.loads(body) == {"predictions": [3.0, 7.5]}


@pytest.mark.parametrize(
    ("handler", "error", "message"),
    [
        (
            "def predict_fn(data, model):\n    raise KeyError('no such column')\n",
            ModelError,
            "the handler raised KeyError",
        ),
        (
            "def model_fn(model_dir):\n    raise RuntimeError('weights missing')\n",
            ModelError,
            "model_fn raised RuntimeError: weights missing",
        ),
        ("import not_a_real_module_xyz\n", ModelError, "importing handler.py raised"),
        (
            "def input_fn(body, content_type):\n    raise ValueError('bad row 3')\n",
            InvalidInput,
            "input_fn rejected the payload: bad row 3",
        ),
        (
            "from core.errors import InvalidInput\n"
            "def predict_fn(data, model):\n    raise InvalidInput('age must be positive')\n",
            InvalidInput,
            "age must be positive",
        ),
    ],
    ids=["predict-raises", "model-fn-raises", "import-fails", "input-fn-raises", "own-error"],
)
def test_python_bundle_failures_are_named(
    tmp_path: Path, handler: str, error: type[Exception], message: str
) -> None:
    path = _bundle(tmp_path / "broken.tar.gz", {"handler.py": handler})
    with pytest.raises(error) as caught:
        runner: Runner = load_runner("python", path, "cpu")
        runner.invoke(_json([[1.0, 2.0]]), JSON, None)
    assert message in str(caught.value)


def test_python_bundle_without_a_handler_is_invalid(tmp_path: Path) -> None:
    path = _bundle(tmp_path / "empty.tar.gz", {"README.md": "nothing to see"})
    with pytest.raises(InvalidInput, match=r"handler\.py"):
        load_runner("python", path, "cpu")


def test_python_bundle_cannot_write_outside_its_folder(tmp_path: Path) -> None:
    """Members are unpacked with tarfile's "data" filter: `../` paths are refused."""
    box = tmp_path / "box"
    box.mkdir()
    outside = tmp_path / "escaped.py"
    path = _bundle(
        box / "evil.tar.gz",
        {"handler.py": LINEAR_HANDLER, "../../escaped.py": "print('pwned')"},
    )
    with pytest.raises(InvalidInput):
        load_runner("python", path, "cpu")
    assert not outside.exists()


def test_python_bundle_default_input_refuses_unsupported_types(tmp_path: Path) -> None:
    path = _bundle(
        tmp_path / "linear.tar.gz", {"handler.py": LINEAR_HANDLER, "weights.json": WEIGHTS}
    )
    runner = load_runner("python", path, "cpu")
    with pytest.raises(InvalidInput, match="text/plain"):
        runner.invoke(b"1 2 3 4", "text/plain", None)


COUNTING_HANDLER = textwrap.dedent(
    """
    def predict_fn(data, model):
        return [0.0, 1.0]  # two predictions, whatever came in
    """
)


@pytest.mark.parametrize("instances", [1, 3])
def test_a_handler_must_answer_one_prediction_per_instance(tmp_path: Path, instances: int) -> None:
    """Regression: a handler whose predict_fn returned 2 values answered realtime and async
    calls with 2 predictions for 3 rows, or for 1, with status 200 — only batch
    transform and the built-in runners checked the count."""
    path = _bundle(tmp_path / "two.tar.gz", {"handler.py": COUNTING_HANDLER})
    runner = load_runner("python", path, "cpu")
    rows = [[float(n)] * 4 for n in range(instances)]
    with pytest.raises(ModelError, match=f"returned 2 predictions for {instances} instances"):
        runner.invoke(_json(rows), JSON, None)


def test_a_whole_payload_handler_is_not_counted(tmp_path: Path) -> None:
    handler = COUNTING_HANDLER + "\nwhole_payload_output = True\n"
    path = _bundle(tmp_path / "two.tar.gz", {"handler.py": handler})
    body, _ = load_runner("python", path, "cpu").invoke(_json([[1.0, 2.0]] * 3), JSON, None)
    assert orjson.loads(body) == {"predictions": [0.0, 1.0]}


def test_a_handler_whose_instances_cannot_be_counted_is_told_how_to_opt_out(
    tmp_path: Path,
) -> None:
    handler = textwrap.dedent(
        """
        def input_fn(body, content_type):
            return {"text": body.decode()}

        def predict_fn(data, model):
            return [len(data["text"])]
        """
    )
    runner = load_runner("python", _bundle(tmp_path / "d.tar.gz", {"handler.py": handler}), "cpu")
    with pytest.raises(ModelError, match=r"input_fn returned a dict.*whole_payload_output = True"):
        runner.invoke(b"some words", "text/plain", None)

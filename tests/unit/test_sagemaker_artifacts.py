"""SageMaker `model.tar.gz` artifacts registered as `xgboost` or `torch` (no network).

Real small models packed as a training job leaves them: each loads with the
workers' loaders and predicts as the bare model does; what cannot be served
(a pickled Booster, no model, two models, a requirements.txt) is refused
with a message that says what was found.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import orjson
import pytest

from api.services.registry import sniff_artifact
from core.codecs import JSON
from core.errors import InvalidInput
from tests.integration import models
from tests.integration.models import tarball
from workers.runners import load_runner
from workers.runners.base import NumericRunner
from workers.runners.python import PythonRunner

INFERENCE_PY = """
import json

import numpy as np


def input_fn(body, content_type):
    return np.asarray(json.loads(body)["rows"], dtype=np.float32)


def output_fn(prediction, accept):
    return json.dumps({"scores": np.asarray(prediction).tolist()}), "application/json"
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import xgboost as xgb

    folder = tmp_path_factory.mktemp("sagemaker")
    json_model = models.build_xgboost(folder / "model.json")
    booster = xgb.Booster()
    booster.load_model(str(json_model))
    booster.save_model(str(folder / "model.ubj"))
    return {
        "json": json_model,
        "ubj": folder / "model.ubj",
        "torch": models.build_torch(folder / "mlp.pt"),
    }


ROWS = models.random_rows(3, seed=5)


@pytest.mark.parametrize("kind", ["json", "ubj"])
def test_an_xgboost_model_tar_gz_serves_like_the_booster(
    built: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    path = tarball(tmp_path / "model.tar.gz", {"xgboost-model": built[kind].read_bytes()})
    sniff_artifact("xgboost", path.read_bytes()[:16])
    runner = load_runner("xgboost", path, "cpu")
    assert isinstance(runner, NumericRunner)
    got = runner.predict(np.asarray(ROWS, dtype=np.float32))
    models.assert_close(got, models.predict_xgboost(built["json"], ROWS))


def test_a_pickled_booster_is_refused_never_unpickled(tmp_path: Path) -> None:
    path = tarball(tmp_path / "model.tar.gz", {"xgboost-model": pickle.dumps({"not": "run"})})
    with pytest.raises(InvalidInput, match=r"is a Python pickle .* never loads"):
        load_runner("xgboost", path, "cpu")
    with pytest.raises(InvalidInput, match="a Python pickle: never loaded"):
        sniff_artifact("xgboost", pickle.dumps({"a": 1})[:16])


def test_a_tarball_without_a_model_says_what_it_holds(tmp_path: Path) -> None:
    path = tarball(tmp_path / "model.tar.gz", {"notes.txt": b"hi", "code/x.py": b""})
    with pytest.raises(InvalidInput, match=r"holds no saved Booster file .*found: \['code/x.py'"):
        load_runner("xgboost", path, "cpu")
    with pytest.raises(InvalidInput, match="holds no TorchScript"):
        load_runner("torch", tarball(tmp_path / "t.tar.gz", {"a.txt": b"x"}), "cpu")


def test_a_torchscript_model_tar_gz_serves_like_the_module(
    built: dict[str, Path], tmp_path: Path
) -> None:
    path = tarball(tmp_path / "model.tar.gz", {"model.pth": built["torch"].read_bytes()})
    sniff_artifact("torch", path.read_bytes()[:16])
    runner = load_runner("torch", path, "cpu")
    assert isinstance(runner, NumericRunner)
    got = runner.predict(np.asarray(ROWS, dtype=np.float32))
    models.assert_close(got, models.predict_torch(built["torch"], ROWS))


def test_code_inference_py_runs_as_the_handler_with_sagemakers_defaults(
    built: dict[str, Path], tmp_path: Path
) -> None:
    path = tarball(
        tmp_path / "model.tar.gz",
        {"model.pth": built["torch"].read_bytes(), "code/inference.py": INFERENCE_PY.encode()},
    )
    runner = load_runner("torch", path, "cpu")
    assert isinstance(runner, PythonRunner)
    payload, content_type = runner.invoke(orjson.dumps({"rows": ROWS}), JSON, None)
    assert content_type == "application/json"
    models.assert_close(orjson.loads(payload)["scores"], models.predict_torch(built["torch"], ROWS))


def test_requirements_txt_is_refused_with_the_way_out(
    built: dict[str, Path], tmp_path: Path
) -> None:
    path = tarball(
        tmp_path / "model.tar.gz",
        {
            "model.pth": built["torch"].read_bytes(),
            "code/inference.py": INFERENCE_PY.encode(),
            "code/requirements.txt": b"scikit-learn\n",
        },
    )
    with pytest.raises(
        InvalidInput, match=r"carries code/requirements\.txt: workers do not install"
    ):
        load_runner("torch", path, "cpu")


def test_two_archives_are_ambiguous(built: dict[str, Path], tmp_path: Path) -> None:
    data = built["torch"].read_bytes()
    path = tarball(tmp_path / "model.tar.gz", {"a.pt": data, "b.pt": data})
    with pytest.raises(InvalidInput, match=r"holds 2 TorchScript .*found: \['a.pt', 'b.pt'\]"):
        load_runner("torch", path, "cpu")

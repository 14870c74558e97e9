"""Serial inference pipelines in one process: real small models as steps (no network).

A pipeline's answer equals its steps called by hand; one batch is one call per
step; a failing step is named, and a bad record fails alone through the merged
call's bisection; the definition's rules (2-15 steps, distinct names, no nested
pipeline) and direct mode's step lookup.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from core import pipeline
from core.codecs import JSON
from core.errors import InvalidInput, ModelError, NotFound
from core.pipeline import PipelineStep
from core.worker_metrics import step_field, step_names
from tests.integration import models
from workers.merged import run_merged
from workers.metrics import batch_increments
from workers.runners import load_runner
from workers.runners.base import NumericRunner
from workers.runners.host import HandlerHost, HostedPythonRunner
from workers.runners.pipeline import PipelineRunner, as_instances, numeric_rows

POST = """
import json

def predict_fn(probabilities, model):
    with open(model_path(), "a") as log:
        log.write(f"{len(probabilities)}\\n")
    if any(p is None for p in probabilities):
        raise KeyError("p")
    return [[p, int(p > 0.5)] for p in probabilities]

def model_path():
    import os
    return os.path.join(os.path.dirname(__file__), "calls.log")

def output_fn(predictions, accept):
    return json.dumps({"scored": predictions}), "application/json"
"""


def step(name: str, framework: str = "xgboost", model: str = "m") -> PipelineStep:
    return PipelineStep(name, model, 1, framework, f"s3://b/{name}")


def bundle(path: Path, source: str) -> Path:
    data = source.encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("handler.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def xgb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build_xgboost(tmp_path_factory.mktemp("pipe") / "model.json")


@pytest.fixture
def host() -> Iterator[HandlerHost]:
    running = HandlerHost(device="cpu")
    yield running
    running.stop()


def test_the_definition_rules() -> None:
    pipeline.check_steps([step("a"), step("b")])
    with pytest.raises(InvalidInput, match="2 to 15 steps, this one has 1"):
        pipeline.check_steps([step("a")])
    with pytest.raises(InvalidInput, match="this one has 16"):
        pipeline.check_steps([step(f"s{i}") for i in range(16)])
    with pytest.raises(InvalidInput, match="two steps are named 'a'"):
        pipeline.check_steps([step("a"), step("a")])
    with pytest.raises(InvalidInput, match="step 'b' is model 'm' version 1, itself a pipeline"):
        pipeline.check_steps([step("a"), step("b", "pipeline")])
    steps = [step("a"), step("b", "python")]
    assert pipeline.loads(pipeline.dumps(steps)) == steps
    with pytest.raises(InvalidInput, match="not a pipeline definition"):
        pipeline.loads(b'{"stages": []}')


def test_direct_mode_finds_a_step_or_names_the_steps() -> None:
    assert pipeline.target_step(["prep", "xgb", "post"], "xgb", model="churn") == 1
    with pytest.raises(NotFound, match=r"no step 'scale'; its steps are \['prep', 'xgb'\]"):
        pipeline.target_step(["prep", "xgb"], "scale", model="churn")
    with pytest.raises(NotFound, match="not a pipeline"):
        pipeline.target_step([], "xgb", model="churn-xgb")


def test_instances_between_steps() -> None:
    class Four(NumericRunner):
        expected_features = 4

        def predict_array(self, rows: np.ndarray) -> list[Any]:
            return rows.sum(axis=1).tolist()

    class One(Four):
        expected_features = 1

    assert numeric_rows([0.1, 0.7], One()).shape == (2, 1)  # scalars become a column
    with pytest.raises(InvalidInput, match="expects 4 features per instance, got 1"):
        numeric_rows([0.1, 0.7], Four())
    with pytest.raises(InvalidInput, match="not numbers"):
        numeric_rows(["a", "b"], One())
    assert as_instances([[1, 2], [3, 4]]).shape == (2, 2)
    texts = as_instances(["good", "bad"])
    assert texts.dtype == object and texts.tolist() == ["good", "bad"]
    ragged = as_instances([[1], [2, 3]])
    assert ragged.dtype == object and len(ragged) == 2


def test_xgboost_then_a_python_step_as_the_steps_called_by_hand(
    xgb_path: Path, host: HandlerHost, tmp_path: Path
) -> None:
    xgb = load_runner("xgboost", xgb_path, "cpu")
    post = HostedPythonRunner(host, bundle(tmp_path / "post.tar.gz", POST))
    runner = PipelineRunner([(step("xgb"), xgb), (step("post", "python"), post)])
    assert runner.expected_features == models.FEATURES  # the first step's
    rows = models.random_rows(5, seed=3)
    timings: dict[str, float] = {}
    got = runner.predict_steps(np.asarray(rows, dtype=np.float32), timings=timings)
    expected = [[p, int(p > 0.5)] for p in models.predict_xgboost(xgb_path, rows)]
    models.assert_close([p for p, _ in got], [p for p, _ in expected])
    assert set(timings) == {"xgb", "post"}
    payload, content_type = runner.invoke(orjson.dumps({"instances": rows}), JSON, None)
    assert content_type == "application/json"
    assert len(orjson.loads(payload)["scored"]) == 5  # the last step's own output_fn
    assert runner.step_runner("xgb") is xgb
    with pytest.raises(NotFound):
        runner.step_runner("prep")


def test_one_merged_call_per_step_and_a_bad_request_fails_alone_naming_the_step(
    xgb_path: Path, host: HandlerHost, tmp_path: Path
) -> None:
    class Gate(NumericRunner):
        """A first step that refuses any feature below -1000."""

        def predict_array(self, rows: np.ndarray) -> list[Any]:
            if (rows < -1000).any():
                raise ValueError("feature below -1000")
            return rows.tolist()

    post_path = bundle(tmp_path / "post.tar.gz", POST)
    runner = PipelineRunner(
        [
            (step("gate"), Gate()),
            (step("xgb"), load_runner("xgboost", xgb_path, "cpu")),
            (step("post", "python"), HostedPythonRunner(host, post_path)),
        ]
    )

    class Item:
        records = False
        one_per_call = False
        deadline_s = None

        def __init__(self, rows: list[list[float]]) -> None:
            self.rows = np.asarray(rows, dtype=np.float32)

        def timed_out(self) -> Any:
            raise AssertionError

    items = [Item(models.random_rows(2, seed=i)) for i in range(8)]
    run = run_merged(runner.predict, items, 64)
    assert run.calls == 1 and all(o.error is None for o in run.outcomes)
    assert (tmp_path / "post.tar.gz.d" / "calls.log").read_text().split() == ["16"]

    items[3] = Item([[-5000.0, 0, 0, 0]])
    run = run_merged(runner.predict, items, 64)
    failed = [i for i, o in enumerate(run.outcomes) if o.error is not None]
    assert failed == [3]
    error = run.outcomes[3].error
    assert isinstance(error, ModelError)  # the step's model raised: 424, as for any model
    assert "pipeline step 'gate' (m:1)" in error.detail and "below -1000" in error.detail


def test_a_later_step_refusing_its_input_is_the_models_fault(xgb_path: Path) -> None:
    torch_path = models.build_torch(xgb_path.parent / "mlp.pt")
    runner = PipelineRunner(
        [
            (step("xgb"), load_runner("xgboost", xgb_path, "cpu")),
            (step("mlp", "torch"), load_runner("torch", torch_path, "cpu")),
        ]
    )
    with pytest.raises(ModelError, match=r"pipeline step 'mlp' .*expects 4 features .* got 1"):
        runner.predict(np.asarray(models.random_rows(2, seed=1), dtype=np.float32))


def test_step_seconds_reach_the_variants_metrics() -> None:
    class Stats:
        model_s = 0.01
        calls = 1
        step_seconds = {"prep": 0.002, "xgb": 0.0004}

    added = batch_increments([], Stats(), "size")
    assert added[f"{step_field('prep')}_sum"] == 0.002
    assert added[f"{step_field('xgb')}_le_0.001"] == 1
    assert step_names(added) == ["prep", "xgb"]

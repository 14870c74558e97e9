"""Serial inference pipelines: one dynamic batch through every step, as one batch per step.

A pipeline (core/pipeline.py) is 2 to 15 loaded runners in order. Steps
exchange values, not bytes: the request is decoded once by the first step
(a numeric model's JSON/CSV rows, or a python handler's `input_fn`), each
step's predictions — one per instance, in order — become the next step's
instances, and the answer is encoded once by the last step (a python
handler's own `output_fn`, else the payload protocol). A python step in the
middle runs only its `predict_fn`, in the worker's handler host.

To the worker a pipeline is a numeric model: `predict(rows)` takes the merged
rows of a whole dynamic batch (workers/merged.py), so 64 requests of one row
cost one call per step, not 64. A step that raises fails the merged call,
which is then bisected like any model's, so only the guilty requests (or, in
a batch transform, records) fail — with an error that names the step:
`pipeline step 'post' (churn-post:2): the handler raised KeyError: 'p'`.

Between steps, a numeric step takes its instances as a float32 matrix: a
list of scalars (an XGBoost step's probabilities) becomes one column, so
`xgboost → torch` works when the torch model takes one feature. Each step's
time is added to `timings[step]` (sluiceway_pipeline_step_seconds).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import InvalidInput, InvocationTimeout, ModelError, NotFound, SluicewayError
from core.pipeline import PipelineStep
from workers.runners.base import NumericRunner, Runner
from workers.runners.host import HostedPythonRunner


class PipelineRunner(NumericRunner):
    """Runners of a pipeline's steps, called in order on one batch's values."""

    def __init__(self, steps: Sequence[tuple[PipelineStep, Runner]]) -> None:
        self.steps = list(steps)
        first = self.steps[0][1]
        if isinstance(first, NumericRunner):
            self.input_dtype = first.input_dtype
            self.expected_features = first.expected_features
        last = self.steps[-1][1]
        self._encoder = (
            last if isinstance(last, HostedPythonRunner) and last.has_output_fn else None
        )

    @property
    def step_names(self) -> list[str]:
        return [step.name for step, _ in self.steps]

    def step_runner(self, name: str) -> Runner:
        """The runner of one step (direct mode, `X-Target-Container`); NotFound naming the steps."""
        for step, runner in self.steps:
            if step.name == name:
                return runner
        raise NotFound(f"the pipeline has no step {name!r}; its steps are {self.step_names}")

    def to_array(self, body: bytes, content_type: str) -> np.ndarray:
        """The request's instances as the first step reads them: a numeric model's rows,
        or what a python handler's `input_fn` returned (numbers as a numeric array, other
        values one per item of an object array)."""
        step, first = self.steps[0]
        if isinstance(first, NumericRunner):
            return first.to_array(body, content_type)
        if isinstance(first, HostedPythonRunner):
            try:
                return as_instances(first.decode_instances(body, content_type))
            except SluicewayError as exc:
                raise _named(exc, step, first_step=True) from exc
        raise ModelError(f"step {step.name!r} cannot be a pipeline's first step")

    def predict_array(self, rows: np.ndarray) -> list[Any]:
        return self.predict_steps(rows, timings=None)

    def predict_steps(self, rows: np.ndarray, *, timings: dict[str, float] | None) -> list[Any]:
        """Every step on these instances in turn; the last step's predictions, one per row.

        `timings` (step name → seconds) gets each step's time added.
        """
        values: Any = rows
        for index, (step, runner) in enumerate(self.steps):
            started = time.perf_counter()
            try:
                values = run_step(runner, values)
            except SluicewayError as exc:
                raise _named(exc, step, first_step=index == 0) from exc
            except Exception as exc:
                raise ModelError(f"pipeline step {step.name!r} ({_ref(step)}): {exc}") from exc
            finally:
                if timings is not None:
                    timings[step.name] = timings.get(step.name, 0.0) + time.perf_counter() - started
        result: list[Any] = list(values)
        return result

    def encode(
        self,
        predictions: list[Any],
        content_type: str,
        accept: str | None,
        *,
        blank_lines: tuple[int, ...] = (),
    ) -> tuple[bytes, str]:
        """One request's answer: the last step's `output_fn` if it has one, else the protocol."""
        if self._encoder is None:
            return super().encode(predictions, content_type, accept, blank_lines=blank_lines)
        step = self.steps[-1][0]
        try:
            return self._encoder.encode_values(predictions, content_type, accept)
        except SluicewayError as exc:
            raise _named(exc, step, first_step=False) from exc

    def close(self) -> None:
        for _step, runner in self.steps:
            runner.close()


def run_step(runner: Runner, values: Any) -> list[Any]:
    """One step on one batch's instances: one prediction per instance."""
    if isinstance(runner, NumericRunner):
        return runner.predict(numeric_rows(values, runner))
    if isinstance(runner, HostedPythonRunner):
        if isinstance(values, np.ndarray) and values.dtype == object:
            values = values.tolist()
        return runner.predict_values(values)
    raise ModelError(f"a {type(runner).__name__} cannot run as a pipeline step")


def numeric_rows(values: Any, runner: NumericRunner) -> np.ndarray:
    """Instances as the float32 matrix a numeric step takes (scalars → one column).

    InvalidInput names what does not fit: "instances must be rows of numbers, got
    an array of shape (3, 2, 2)", or the feature counts.
    """
    try:
        rows = np.asarray(values, dtype=runner.input_dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the instances are not numbers: {exc}") from exc
    if rows.ndim == 1:
        rows = rows.reshape(-1, 1)
    if rows.ndim != 2:
        raise InvalidInput(f"instances must be rows of numbers, got an array of shape {rows.shape}")
    if runner.expected_features is not None and rows.shape[1] != runner.expected_features:
        raise InvalidInput(
            f"the model expects {runner.expected_features} features per instance, "
            f"got {rows.shape[1]}"
        )
    return rows


def as_instances(data: Any) -> np.ndarray:
    """A first step's decoded instances as an array the batcher can concatenate.

    Numbers stay numbers (`[[1, 2], [3, 4]]` → a 2-by-2 float array); anything else
    (strings, dicts, ragged rows) becomes a 1-D object array, one item per instance.
    """
    if isinstance(data, np.ndarray) and data.ndim >= 1:
        return data
    items = list(data)
    try:
        array = np.asarray(items, dtype=np.float64)
        if array.ndim >= 1 and len(array) == len(items):
            return array
    except (TypeError, ValueError):
        pass
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        array[index] = item
    return array


def _ref(step: PipelineStep) -> str:
    return f"{step.model}:{step.version}"


def _named(exc: SluicewayError, step: PipelineStep, *, first_step: bool) -> SluicewayError:
    """The step's error with the step named. A step after the first was fed by the
    pipeline, not the caller: what it refuses is the model's fault (424), not 422."""
    detail = f"pipeline step {step.name!r} ({_ref(step)}): {exc.detail}"
    if isinstance(exc, InvocationTimeout):
        return InvocationTimeout(detail)
    if isinstance(exc, InvalidInput) and first_step:
        return InvalidInput(detail)
    return ModelError(detail)

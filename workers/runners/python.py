"""Custom Python handlers: a .tar.gz whose `handler.py` (or `inference.py`) defines any of
`model_fn(model_dir)`, `input_fn(body, content_type)`, `predict_fn(data, model)`,
`output_fn(prediction, accept)` — SageMaker's handler contract.

Running a handler runs its author's code, by design; the bundle is unpacked
with tarfile's "data" filter so it cannot write outside its own folder. A
worker runs its handlers in a child process (workers/runners/host.py) where a
stuck one can be stopped; `PythonRunner` is the handler itself, loaded there
(and, at registration, in the validating process).

One prediction per instance, as for every model: `predict_fn` must return as
many predictions as `input_fn` returned instances (3 rows in, 2 predictions out
fails with "the model returned 2 predictions for 3 instances"). A handler whose
answer is about the payload as a whole (a summary, a ranking, one document for
many rows) says so with `whole_payload_output = True` in its module, and is not
counted.

Batching handlers (docs/handlers.md): a module that sets `batch_predict = True`
has its `predict_fn` called once for many requests — with the list of what
`input_fn` returned for each (one item per request; it returns one prediction
per request) — and with `batch_predict = "stack"`, with those inputs stacked
row-wise into one array (it returns one prediction per row; the worker splits
them back, e.g. requests of 3, 1 and 2 rows → one call with 6 rows). `input_fn`
and `output_fn` still run once per request. A batch that raises is bisected so
only the guilty requests fail (`invoke_batch`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tarfile
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from core import codecs
from core.errors import ERROR_KINDS, InvalidInput, ModelError, SluicewayError, describe, error_kind
from workers.batching import isolate
from workers.runners.base import Runner

logger = logging.getLogger(__name__)

HANDLER_FILES = ("handler.py", "inference.py", "code/inference.py")
BATCH_MODES = ("list", "stack")

# One call's request as the handler host receives it: body, content type, accept.
Call = tuple[bytes, str, str | None]
# One call's outcome: ("ok", (payload, content type)) or ("error", kind, detail).
CallResult = tuple[Any, ...]


def _default_input(body: bytes, content_type: str) -> Any:
    codecs.check_supported(content_type)
    return np.asarray(codecs.decode_instances(body, content_type))


def _default_predict(data: Any, model: Any) -> Any:
    return model(data)


def _default_output(prediction: Any, accept: str) -> tuple[bytes, str]:
    if isinstance(prediction, np.ndarray):
        prediction = prediction.tolist()
    return codecs.encode_predictions(list(prediction), accept)


class PythonRunner(Runner):
    """A handler bundle loaded in this process. `framework="torch"`: a SageMaker PyTorch
    `model.tar.gz` whose `code/inference.py` may leave `model_fn`/`predict_fn` to
    SageMaker's defaults (the tarball's archive, run on the rows as a tensor)."""

    def __init__(self, path: Path, device: str, *, framework: str = "python") -> None:
        self.model_dir = path.parent / (path.name + ".d")
        if not self.model_dir.exists():
            self._unpack(path)
        module = self._import_handler()
        default_predict: Callable[[Any, Any], Any] = _default_predict
        default_model: Callable[[str], Any] | None = None
        if framework == "torch":  # SageMaker PyTorch's defaults, where the handler has none
            from workers.runners import sagemaker

            default_predict = sagemaker.torch_predict
            if not hasattr(module, "model_fn"):
                default_model = partial(sagemaker.torch_model_fn, path, device)
        self.input_fn: Callable[[bytes, str], Any] = getattr(module, "input_fn", _default_input)
        self.predict_fn: Callable[[Any, Any], Any] = getattr(module, "predict_fn", default_predict)
        self.output_fn: Callable[[Any, str], Any] = getattr(module, "output_fn", _default_output)
        self.whole_payload_output = bool(getattr(module, "whole_payload_output", False))
        self.batch_mode = batch_mode_of(getattr(module, "batch_predict", False))
        model_fn = getattr(module, "model_fn", default_model)
        try:
            self.model = model_fn(str(self.model_dir)) if model_fn else None
        except Exception as exc:
            raise ModelError(f"model_fn raised {describe(exc)}") from exc
        self.device = device

    def _unpack(self, path: Path) -> None:
        """Unpack into a folder of this process's own, then move it into place.

        The workers of a host share the model cache, and the scaler starts several
        at once: each extracts apart, the first rename wins, the others drop theirs.
        """
        staging = path.parent / f"{path.name}.staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with tarfile.open(path, "r:gz") as bundle:
                bundle.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise InvalidInput(f"{path.name} is not a valid .tar.gz bundle: {exc}") from exc
        try:
            staging.rename(self.model_dir)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not self.model_dir.is_dir():
                raise
            logger.info("model folder %s unpacked by another worker first", self.model_dir)

    def _import_handler(self) -> ModuleType:
        for relative in HANDLER_FILES:
            candidate = self.model_dir / relative
            if candidate.is_file():
                name = f"sluiceway_handler_{abs(hash(str(candidate)))}"
                spec = importlib.util.spec_from_file_location(name, candidate)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                try:
                    spec.loader.exec_module(module)
                except Exception as exc:
                    raise ModelError(f"importing {relative} raised {describe(exc)}") from exc
                return module
        raise InvalidInput(f"the bundle has none of {list(HANDLER_FILES)}")

    def invoke(
        self, body: bytes, content_type: str, accept: str | None, *, timeout_s: float | None = None
    ) -> tuple[bytes, str]:
        """Run the handler in this process (`timeout_s` is the host's business, not ours)."""
        if self.batch_mode is not None:  # its predict_fn takes a batch: a batch of one
            status, *rest = self.run_batch([(body, content_type, accept)])[0]
            if status == "ok":
                result: tuple[bytes, str] = rest[0]
                return result
            raise ERROR_KINDS.get(str(rest[0]), ModelError)(str(rest[1]))
        data = self._decode(body, content_type)
        try:
            prediction = self.predict_fn(data, self.model)
        except (InvalidInput, ModelError):
            raise
        except Exception as exc:
            raise ModelError(f"the handler raised {describe(exc)}") from exc
        if not self.whole_payload_output:
            check_one_per_instance(data, prediction)
        return self._encode(prediction, content_type, accept)

    def invoke_batch(
        self, calls: list[Call], *, timeout_s: float | None = None
    ) -> list[tuple[bytes, str] | SluicewayError]:
        """Each call's answer, or the error that failed it alone (see `run_batch`)."""
        out: list[tuple[bytes, str] | SluicewayError] = []
        for status, *rest in self.run_batch(calls):
            if status == "ok":
                out.append(rest[0])
            else:
                out.append(ERROR_KINDS.get(str(rest[0]), ModelError)(str(rest[1])))
        return out

    def run_batch(self, calls: list[Call]) -> list[CallResult]:
        """Run many requests with one `predict_fn` call (a batching handler); one result each.

        `input_fn` and `output_fn` run per request, and a request they reject
        fails alone. The batch's `predict_fn` call is bisected when it raises, so
        a request that makes it raise fails alone (8 requests, one poisoned → 7
        answers and one error after ~6 calls). Returns ("ok", (payload, type)) or
        ("error", kind, detail) per call, in order.
        """
        results: list[CallResult | None] = [None] * len(calls)
        decoded: list[tuple[int, Any]] = []
        for index, (body, content_type, _accept) in enumerate(calls):
            try:
                decoded.append((index, self._decode(body, content_type)))
            except SluicewayError as exc:
                results[index] = _error_result(exc)
        outcomes = isolate([data for _, data in decoded], self._predict_many)
        for (index, data), outcome in zip(decoded, outcomes, strict=True):
            body, content_type, accept = calls[index]
            try:
                if isinstance(outcome, BaseException):
                    raise _handler_error(outcome)
                if not self.whole_payload_output:
                    check_one_per_instance(data, outcome)
                results[index] = ("ok", self._encode(outcome, content_type, accept))
            except SluicewayError as exc:
                results[index] = _error_result(exc)
        return [result for result in results if result is not None]

    def _decode(self, body: bytes, content_type: str) -> Any:
        try:
            return self.input_fn(body, content_type)
        except (InvalidInput, ModelError):
            raise
        except Exception as exc:
            raise InvalidInput(f"input_fn rejected the payload: {exc}") from exc

    def _predict_many(self, inputs: Sequence[Any]) -> list[Any]:
        """One `predict_fn` call for these requests' inputs: one prediction each."""
        if self.batch_mode == "stack":
            sizes = [len(data) for data in inputs]
            stacked = np.concatenate([np.asarray(data) for data in inputs])
            predictions = self.predict_fn(stacked, self.model)
            check_one_per_instance(stacked, predictions)
            bounds = np.cumsum([0, *sizes])
            return [predictions[bounds[i] : bounds[i + 1]] for i in range(len(inputs))]
        predictions = self.predict_fn(list(inputs), self.model)
        count = _count(predictions)
        if count != len(inputs):
            got = f"{count} predictions" if count is not None else f"a {type(predictions).__name__}"
            raise ModelError(
                "a batching predict_fn must return one prediction per request: "
                f"it returned {got} for {len(inputs)} requests"
            )
        return list(predictions)

    def _encode(self, prediction: Any, content_type: str, accept: str | None) -> tuple[bytes, str]:
        try:
            output = self.output_fn(prediction, codecs.response_type(content_type, accept))
        except (InvalidInput, ModelError):
            raise
        except Exception as exc:
            raise ModelError(f"the handler raised {describe(exc)}") from exc
        if isinstance(output, tuple):
            payload, out_type = output
        else:
            payload, out_type = output, codecs.response_type(content_type, accept)
        if isinstance(payload, str):
            payload = payload.encode()
        return bytes(payload), str(out_type)

    # --- as a pipeline step (workers/runners/pipeline.py): values in, values out ----------

    def traits(self) -> dict[str, Any]:
        """What the worker needs to know of the handler without importing it."""
        return {
            "batch_mode": self.batch_mode,
            "whole_payload_output": self.whole_payload_output,
            "output_fn": self.output_fn is not _default_output,
        }

    def decode_instances(self, body: bytes, content_type: str) -> Any:
        """`input_fn` as a pipeline's first step: the request's instances (one item each)."""
        data = self._decode(body, content_type)
        if _count(data) is None:
            raise ModelError(
                f"input_fn returned a {type(data).__name__}, not one item per instance: "
                "a pipeline's steps pass instances on"
            )
        if isinstance(data, np.ndarray):
            return data
        return list(data)

    def predict_values(self, values: Any) -> list[Any]:
        """`predict_fn` on a whole batch's instances (a pipeline step): one value per instance.

        A batching handler of the "list" kind gets them as one request (`[values]`).
        """
        try:
            if self.batch_mode == "list":
                (predictions,) = self.predict_fn([values], self.model)
            else:
                predictions = self.predict_fn(values, self.model)
        except (InvalidInput, ModelError):
            raise
        except Exception as exc:
            raise ModelError(f"the handler raised {describe(exc)}") from exc
        check_one_per_instance(values, predictions)
        if isinstance(predictions, np.ndarray):
            result: list[Any] = predictions.tolist()
            return result
        return list(predictions)

    def encode_values(self, predictions: list[Any], content_type: str, accept: str | None) -> Any:
        """`output_fn` as a pipeline's last step: one request's answer (payload, type)."""
        return self._encode(predictions, content_type, accept)


STEP_METHODS = ("decode_instances", "predict_values", "encode_values")


def batch_mode_of(declared: Any) -> str | None:
    """A handler's `batch_predict` as a mode: None (one request per call), "list" or "stack".

    Raises InvalidInput naming the value for anything else (`batch_predict = "rows"`).
    """
    if declared is False or declared is None:
        return None
    if declared is True:
        return "list"
    if declared in BATCH_MODES:
        return str(declared)
    raise InvalidInput(
        f'batch_predict = {declared!r} in the handler module: use True, "list" or "stack"'
    )


def _handler_error(exc: BaseException) -> SluicewayError:
    if isinstance(exc, SluicewayError):
        return exc
    return ModelError(f"the handler raised {describe(exc)}")


def _error_result(exc: SluicewayError) -> CallResult:
    return ("error", error_kind(exc), exc.detail)


def check_one_per_instance(data: Any, prediction: Any) -> None:
    """One prediction per instance: `predict_fn`'s answer as long as `input_fn`'s instances.

    Raises ModelError naming both counts, or naming what cannot be counted (a
    dict, a string, a scalar) and the way out (`whole_payload_output = True`).
    """
    instances, predictions = _count(data), _count(prediction)
    if instances is None or predictions is None:
        culprit, value = ("input_fn", data) if instances is None else ("predict_fn", prediction)
        raise ModelError(
            f"cannot check one prediction per instance: {culprit} returned a "
            f"{type(value).__name__}, not a sequence with one item per instance; return one, "
            "or declare whole_payload_output = True in the handler module"
        )
    if instances != predictions:
        raise ModelError(f"the model returned {predictions} predictions for {instances} instances")


def _count(value: Any) -> int | None:
    """Items of a sequence (list, tuple, array, tensor, data frame); None if it is not one."""
    if isinstance(value, str | bytes | bytearray | Mapping):
        return None
    try:
        return len(value)
    except TypeError:
        return None

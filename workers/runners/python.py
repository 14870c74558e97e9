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
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from core import codecs
from core.errors import InvalidInput, ModelError, describe
from workers.runners.base import Runner

logger = logging.getLogger(__name__)

HANDLER_FILES = ("handler.py", "inference.py", "code/inference.py")


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
    def __init__(self, path: Path, device: str) -> None:
        self.model_dir = path.parent / (path.name + ".d")
        if not self.model_dir.exists():
            self._unpack(path)
        module = self._import_handler()
        self.input_fn: Callable[[bytes, str], Any] = getattr(module, "input_fn", _default_input)
        self.predict_fn: Callable[[Any, Any], Any] = getattr(module, "predict_fn", _default_predict)
        self.output_fn: Callable[[Any, str], Any] = getattr(module, "output_fn", _default_output)
        self.whole_payload_output = bool(getattr(module, "whole_payload_output", False))
        model_fn = getattr(module, "model_fn", None)
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
        try:
            data = self.input_fn(body, content_type)
        except (InvalidInput, ModelError):
            raise
        except Exception as exc:
            raise InvalidInput(f"input_fn rejected the payload: {exc}") from exc
        try:
            prediction = self.predict_fn(data, self.model)
            if not self.whole_payload_output:
                check_one_per_instance(data, prediction)
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

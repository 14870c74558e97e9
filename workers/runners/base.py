"""The runner interface, and the shared path of numeric models (rows in, predictions out)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from core import codecs
from core.errors import InvalidInput, InvocationTimeout, ModelError, SluicewayError, describe


class Runner(ABC):
    """A loaded model: turns one request body into one response body.

    `batch_mode` is set for a python handler whose `predict_fn` takes a batch
    ("list" or "stack", docs/handlers.md): the worker then gives it whole
    batches through `invoke_batch`.
    """

    batch_mode: str | None = None

    @abstractmethod
    def invoke(
        self, body: bytes, content_type: str, accept: str | None, *, timeout_s: float | None = None
    ) -> tuple[bytes, str]:
        """The answer's bytes and content type.

        `timeout_s` bounds the call where the runner can stop it (a python handler
        runs in a process of its own, killed at the limit: InvocationTimeout). A
        runner in the worker's own process cannot interrupt a forward pass and
        ignores it; its callers check deadlines between calls instead.
        """

    def invoke_batch(
        self, calls: list[tuple[bytes, str, str | None]], *, timeout_s: float | None = None
    ) -> list[tuple[bytes, str] | SluicewayError]:
        """Many calls (body, content type, accept) at once: each one's answer or its error.

        This default runs them one by one; a batching handler runs them in one
        `predict_fn` call. An error of one call fails that call alone, except an
        InvocationTimeout, which is raised for the batch.
        """
        out: list[tuple[bytes, str] | SluicewayError] = []
        for body, content_type, accept in calls:
            try:
                out.append(self.invoke(body, content_type, accept, timeout_s=timeout_s))
            except InvocationTimeout:
                raise
            except SluicewayError as exc:
                out.append(exc)
        return out

    def close(self) -> None:  # noqa: B027 (most runners hold nothing outside the process)
        """Free what the runner holds outside this process (called when it is evicted)."""


class NumericRunner(Runner):
    """Models that take a 2-D array of instances and return one prediction per row.

    `input_dtype` is the array's type; a value it cannot hold (1e39 for float32)
    is a 422 naming its instance and feature, never a silent infinity.
    """

    expected_features: int | None = None
    input_dtype = "float32"

    @abstractmethod
    def predict_array(self, rows: np.ndarray) -> list[Any]: ...

    def to_array(self, body: bytes, content_type: str) -> np.ndarray:
        instances = codecs.decode_numeric(body, content_type, dtype=self.input_dtype)
        rows = np.asarray(instances, dtype=self.input_dtype)
        if rows.ndim != 2:
            raise InvalidInput(
                f"instances must be rows of numbers, got an array of shape {rows.shape}"
            )
        if self.expected_features is not None and rows.shape[1] != self.expected_features:
            raise InvalidInput(
                f"the model expects {self.expected_features} features per instance, "
                f"got {rows.shape[1]}"
            )
        return rows

    def predict(self, rows: np.ndarray) -> list[Any]:
        """Run the model; any exception it raises becomes a ModelError naming it."""
        try:
            predictions = self.predict_array(rows)
        except SluicewayError:
            raise
        except Exception as exc:
            raise ModelError(f"the model raised {describe(exc)}") from exc
        if len(predictions) != len(rows):
            raise ModelError(
                f"the model returned {len(predictions)} predictions for {len(rows)} instances"
            )
        return predictions

    def encode(
        self,
        predictions: list[Any],
        content_type: str,
        accept: str | None,
        *,
        blank_lines: tuple[int, ...] = (),
    ) -> tuple[bytes, str]:
        """One request's answer from its predictions, as the payload protocol says
        (a pipeline's last python step encodes its own)."""
        return codecs.encode_predictions(
            predictions, codecs.response_type(content_type, accept), blank_lines=blank_lines
        )

    def invoke(
        self, body: bytes, content_type: str, accept: str | None, *, timeout_s: float | None = None
    ) -> tuple[bytes, str]:
        predictions = self.predict(self.to_array(body, content_type))
        return self.encode(predictions, content_type, accept)

"""Multi-model variants: which model a request names, as the message that carries it.

A multi-model variant serves every object under its S3 prefix; a request
picks one with `X-Target-Model`, the object's key relative to the prefix
(`chicago.json`, `eu/paris.json`). The API turns that into the invocation's
`ModelRef`: the key as its `name`, version 0 (no registry version: the worker
checks the object's ETag instead, so a replaced object is loaded fresh) and
the full object URI — prefix `s3://models/cities/` + `eu/paris.json` →
`s3://models/cities/eu/paris.json`. Workers, the reconciler and transform
dispatch all build the same reference through `target_ref`.
"""

from __future__ import annotations

from core.errors import BadRequest
from core.locations import key_problem
from core.protocol import ModelRef

MULTI_MODEL_VERSION = 0  # a ModelRef with this version names an object under a prefix
TARGET_MODEL_HEADER = "X-Target-Model"


def is_multi_model(ref: ModelRef) -> bool:
    """True for a reference to one object under a multi-model variant's prefix."""
    return ref.version == MULTI_MODEL_VERSION


def check_target_model(key: str | None, *, prefix: str) -> str:
    """The target model's key as sent; BadRequest (400) when missing or not a key.

    A key is relative to the prefix: not empty, not a folder (`eu/`), no `..`
    segment, nothing S3 cannot hold once joined to the prefix.
    """
    if key is None or key == "":
        raise BadRequest(
            f"this variant serves many models: name one with {TARGET_MODEL_HEADER} "
            f"(an object key under {prefix})"
        )
    if key.startswith("/") or key.endswith("/") or ".." in key.split("/"):
        raise BadRequest(
            f"{TARGET_MODEL_HEADER} {key!r} is not an object key relative to the prefix {prefix}"
        )
    bucket_and_key = prefix.removeprefix("s3://")
    problem = key_problem(bucket_and_key.partition("/")[2] + key)
    if problem is not None:
        raise BadRequest(f"{TARGET_MODEL_HEADER} {key!r}: {problem}")
    return key


def target_ref(*, prefix: str, framework: str, key: str) -> ModelRef:
    """The reference an invocation carries for model `key` under `prefix`."""
    return ModelRef(
        name=key, version=MULTI_MODEL_VERSION, framework=framework, artifact_uri=prefix + key
    )


def key_of(ref: ModelRef) -> str:
    """The model's name as users know it: its key under the prefix, or `name:version`."""
    return ref.name if is_multi_model(ref) else ref.key

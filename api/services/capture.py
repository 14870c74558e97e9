"""Data capture settings of an endpoint: checked by a real write, stored, changed live.

A destination is accepted only once the platform has written to it: a probe
object is put under it and removed again, so a bucket the S3 credentials may
not write (or a name the store refuses) is a 422 when the endpoint is created
or its capture changed, not a silent loss of every record later. Workers
re-read the stored settings every SLUICEWAY_CAPTURE_FLUSH_S seconds
(workers/capture.py), so a change reaches them without a restart or a
deployment. `set_data_capture` is the one service both the PATCH route and a
whole-endpoint update call.
"""

from __future__ import annotations

import logging
from typing import Any

from minio.error import S3Error

from api.schemas import DataCapture
from core.errors import InvalidInput, StorageError
from core.storage import S3Location, get_store
from core.tables import new_id

logger = logging.getLogger(__name__)

# The store's answers that mean "these credentials may not write there".
REFUSED = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidAccessKeyId"}


def check_destination(capture: DataCapture) -> None:
    """Put and remove a probe object under the destination; InvalidInput (422) if refused.

    StorageError (503) when the store is unreachable: that says nothing about
    the destination, so the caller should retry.
    """
    if not capture.enabled or capture.destination is None:
        return
    location = S3Location.parse(capture.destination)
    probe = location.child(f".sluiceway-write-check-{new_id()}")
    store = get_store()
    try:
        store.put_bytes(probe, b"ok", "text/plain")
    except StorageError as exc:
        cause = exc.__cause__
        if isinstance(cause, S3Error) and cause.code in REFUSED:
            raise InvalidInput(
                f"the platform may not write to data_capture.destination "
                f"{capture.destination!r}: the object store answered {cause.code}"
            ) from exc
        raise
    try:
        store.delete(probe.bucket, [probe.key])
    except StorageError:  # written is what mattered; a leftover probe is harmless
        logger.warning("could not remove the capture probe %s", probe)


def stored(capture: DataCapture | None) -> dict[str, Any] | None:
    """The JSON kept in `endpoints.data_capture` (None: no capture)."""
    return None if capture is None else capture.model_dump(mode="json")


def public(raw: dict[str, Any] | None) -> DataCapture | None:
    return None if raw is None else DataCapture.model_validate(raw)

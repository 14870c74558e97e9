"""`GET /v1/endpoints/{name}/models`: every model under a multi-model variant's prefix.

Objects come from S3 (a listing, in key order); where each is loaded, its
measured memory and last use come from the workers' reports in Redis
(core/broker/models.py), kept for live workers only; requests per model are
the workers' running totals. Paginated by key: `limit` entries after the key
`after` (S3 lists from there: a page costs the same however deep) — a listing
of 1,000 models in pages of 100 takes ten calls.
"""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy.orm import Session

from api.schemas import ModelLoadPublic
from api.services.endpoints import load_endpoint
from core.broker import get_redis, live_workers, queue_name, read_models
from core.config import get_settings
from core.errors import NotFound
from core.storage import S3Location, get_store


def list_models(
    session: Session, name: str, *, variant: str | None, after: str | None, limit: int
) -> tuple[list[ModelLoadPublic], str | None]:
    """One page of models, and the `after` of the next page (None on the last).

    NotFound (404) for an unknown endpoint or variant, or one serving a single model.
    """
    endpoint = load_endpoint(session, name)
    variants = [v for v in endpoint.variants if v.multi_model_prefix is not None]
    if variant is not None:
        variants = [v for v in variants if v.name == variant]
    if not variants:
        which = f"variant {variant!r}" if variant else "variant"
        raise NotFound(f"endpoint {name!r} has no multi-model {which}")
    settings = get_settings()
    redis = get_redis()
    workers = [w.id for w in live_workers(redis, settings.namespace)]
    entries: list[ModelLoadPublic] = []
    for v in variants:
        prefix = v.multi_model_prefix
        assert prefix is not None
        location = S3Location.parse(prefix)
        held, invocations = read_models(
            redis, settings.namespace, queue_name(settings.namespace, name, v.name), workers
        )
        start_after = location.key + after if after is not None else None
        objects = (
            (key.removeprefix(location.key), size)
            for key, size in get_store().iter_objects(location, start_after=start_after)
        )
        wanted = (pair for pair in objects if after is None or pair[0] > after)
        for model, size in itertools.islice(wanted, limit + 1 - len(entries)):
            holders = held.get(model, [])
            last_used = max((h.last_used_at for h in holders), default=None)
            entries.append(
                ModelLoadPublic(
                    model=model,
                    variant=v.name,
                    size_bytes=size,
                    memory_bytes=max((h.memory_bytes for h in holders), default=None),
                    loaded_on=sorted(h.worker_id for h in holders),
                    last_used_at=(
                        dt.datetime.fromtimestamp(last_used, dt.UTC)
                        if last_used is not None
                        else None
                    ),
                    invocations=invocations.get(model, 0),
                )
            )
        if len(entries) > limit:
            break
    if len(entries) > limit:
        return entries[:limit], entries[limit - 1].model
    return entries, None

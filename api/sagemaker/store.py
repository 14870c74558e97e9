"""The SageMaker documents: all of this package's SQL (the `sagemaker_resources` table).

A document is the caller's Create request plus what the translation decided
(`NativeVersion`: the model version CreateModel registered; an inference
component's `EndpointName` and `VariantName`). Endpoint configs
live only here; models, endpoints and transform jobs also exist natively, and
the native rows hold their state.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.tables import SageMakerResource

MODEL = "model"
ENDPOINT_CONFIG = "endpoint-config"
ENDPOINT = "endpoint"
TRANSFORM_JOB = "transform-job"
INFERENCE_COMPONENT = "inference-component"


@dataclass(frozen=True, slots=True)
class Document:
    name: str
    body: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


def _document(row: SageMakerResource) -> Document:
    return Document(row.name, dict(row.document), row.created_at, row.updated_at)


def get(session: Session, kind: str, name: str) -> Document | None:
    row = session.get(SageMakerResource, (kind, name))
    return _document(row) if row is not None else None


def get_many(session: Session, kind: str, names: list[str]) -> dict[str, Document]:
    rows = session.scalars(
        select(SageMakerResource).where(
            SageMakerResource.kind == kind, SageMakerResource.name.in_(names)
        )
    )
    return {row.name: _document(row) for row in rows}


def all_of(session: Session, kind: str) -> list[Document]:
    rows = session.scalars(select(SageMakerResource).where(SageMakerResource.kind == kind))
    return [_document(row) for row in rows]


def add(session: Session, kind: str, name: str, body: dict[str, Any]) -> bool:
    """Store a new document; False (nothing stored) when one of that kind and name exists."""
    session.add(SageMakerResource(kind=kind, name=name, document=body))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def put(session: Session, kind: str, name: str, body: dict[str, Any]) -> None:
    """Store or replace a document."""
    row = session.get(SageMakerResource, (kind, name))
    if row is None:
        session.add(SageMakerResource(kind=kind, name=name, document=body))
    else:
        row.document = body
    session.commit()


def remove(session: Session, kind: str, name: str) -> bool:
    """Delete a document; False when there was none."""
    result = session.execute(
        delete(SageMakerResource).where(
            SageMakerResource.kind == kind, SageMakerResource.name == name
        )
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))

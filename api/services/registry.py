"""The model registry: artifacts go to the object store, versions to SQL.

Each registration of a name adds version N+1. Artifacts are sniffed before they
are accepted so an obviously wrong file is a 422 now, not a failure at first use.
Nothing here deserializes an artifact: loading happens only in workers, and only
through safe loaders (TorchScript / torch.export archives, XGBoost JSON/UBJ).
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from api.schemas import ModelPublic, ModelVersionPublic, PipelineStepPublic
from api.services.artifact_check import validate_artifact
from core.config import NAME_MAX_LENGTH, NAME_PATTERN, get_settings
from core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from core.storage import S3Location, get_store
from core.tables import Model, ModelVersion, Variant

logger = logging.getLogger(__name__)

FRAMEWORKS = ("xgboost", "torch", "python")


def sniff_artifact(framework: str, head: bytes) -> None:
    """Reject files that cannot be an artifact of this framework (by magic bytes).

    torch: TorchScript and torch.export archives are zip files ("PK\\x03\\x04").
    xgboost: a saved Booster is JSON or UBJSON, both starting with "{".
    python: a handler bundle is a gzip-compressed tar ("\\x1f\\x8b").
    torch, xgboost: or a SageMaker `model.tar.gz` (gzip) holding one
    (workers/runners/sagemaker.py; the load check then says what it found).
    """
    stripped = head.lstrip()
    tarball = head.startswith(b"\x1f\x8b")
    ok = {
        "torch": head.startswith(b"PK\x03\x04") or tarball,
        "xgboost": stripped.startswith(b"{") or tarball,
        "python": tarball,
    }[framework]
    if not ok:
        expected = {
            "torch": "a TorchScript or torch.export archive (zip), or a SageMaker model.tar.gz",
            "xgboost": "a saved Booster in JSON or UBJ format, or a SageMaker model.tar.gz",
            "python": "a .tar.gz handler bundle",
        }[framework]
        found = " (a Python pickle: never loaded)" if head.startswith(b"\x80") else ""
        raise InvalidInput(f"the file is not {expected} (starts with {head[:8]!r}){found}")


def _check_name(name: str, framework: str) -> None:
    if len(name) > NAME_MAX_LENGTH or not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput(
            f"model name {name!r} must match {NAME_PATTERN}, at most {NAME_MAX_LENGTH} characters"
        )
    if framework not in FRAMEWORKS:
        hint = (
            " (a pipeline is registered as JSON with its steps)" if framework == "pipeline" else ""
        )
        raise InvalidInput(f"framework {framework!r} is not one of {list(FRAMEWORKS)}{hint}")


def _next_version(session: Session, name: str) -> tuple[Model, int]:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        model = Model(name=name)
        session.add(model)
        session.flush()
        return model, 1
    latest = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
    )
    return model, (latest or 0) + 1


def add_version(
    session: Session,
    *,
    name: str,
    framework: str,
    artifact_uri: str,
    size: int,
    sha256: str | None,
    steps: list[dict[str, Any]] | None = None,
) -> ModelVersionPublic:
    """Record the next version of `name` (created on first use); `steps` for a pipeline."""
    # Two registrations of one name at once race for the same version number;
    # the unique constraint catches it and the loser simply takes the next one.
    for _attempt in range(5):
        model, version = _next_version(session, name)
        row = ModelVersion(
            model_id=model.id,
            version=version,
            framework=framework,
            artifact_uri=artifact_uri,
            size_bytes=size,
            sha256=sha256,
            steps=steps,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        return _version_public(name, row)
    raise Conflict(f"model {name!r} is being registered concurrently; try again")


def register_upload(
    session: Session, *, name: str, framework: str, filename: str, stream: BinaryIO
) -> ModelVersionPublic:
    """Store an uploaded artifact and record it as the model's next version."""
    _check_name(name, framework)
    settings = get_settings()
    stream.seek(0, 2)
    size = stream.tell()
    if size == 0:
        raise InvalidInput("the uploaded artifact is empty")
    if size > settings.max_artifact_bytes:
        raise PayloadTooLarge(
            f"artifact is {size} bytes; the limit is {settings.max_artifact_bytes}"
        )
    stream.seek(0)
    sniff_artifact(framework, stream.read(16))
    stream.seek(0)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / (re.sub(r"[^A-Za-z0-9._-]", "_", filename or "artifact")[:100])
        with local.open("wb") as out:
            shutil.copyfileobj(stream, out)
        validate_artifact(framework, str(local))
    stream.seek(0)
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    stream.seek(0)
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename or "artifact")[:100]
    # Content-addressed key: a retried upload of the same bytes lands on the same
    # object, and a version's artifact can never be overwritten by another one.
    location = S3Location(settings.s3_bucket, f"models/{name}/{digest.hexdigest()}/{safe_name}")
    get_store().put_stream(location, stream, "application/octet-stream", length=size)
    return add_version(
        session,
        name=name,
        framework=framework,
        artifact_uri=str(location),
        size=size,
        sha256=digest.hexdigest(),
    )


def register_uri(
    session: Session, *, name: str, framework: str, artifact_uri: str
) -> ModelVersionPublic:
    """Record an artifact that is already in the object store."""
    _check_name(name, framework)
    location = S3Location.parse_object(artifact_uri)
    store = get_store()
    try:
        info = store.stat(location)
    except NotFound as exc:
        raise InvalidInput(f"artifact_uri {artifact_uri!r} does not exist") from exc
    if info.size > get_settings().max_artifact_bytes:
        raise PayloadTooLarge(
            f"artifact is {info.size} bytes; the limit is {get_settings().max_artifact_bytes}"
        )
    head = next(store.iter_chunks(location, chunk_bytes=16), b"")
    sniff_artifact(framework, head)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / (Path(location.key).name or "artifact")
        with local.open("wb") as out:
            for chunk in store.iter_chunks(location):
                out.write(chunk)
        validate_artifact(framework, str(local))
    return add_version(
        session,
        name=name,
        framework=framework,
        artifact_uri=artifact_uri,
        size=info.size,
        sha256=None,
    )


def _version_public(name: str, row: ModelVersion) -> ModelVersionPublic:
    return ModelVersionPublic(
        name=name,
        version=row.version,
        framework=row.framework,
        artifact_uri=row.artifact_uri,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        created_at=row.created_at,
        steps=[PipelineStepPublic(**step) for step in row.steps] if row.steps else None,
    )


def _model_public(model: Model) -> ModelPublic:
    versions = [_version_public(model.name, v) for v in model.versions]
    return ModelPublic(
        name=model.name,
        latest_version=versions[-1].version if versions else 0,
        framework=versions[-1].framework if versions else "",
        created_at=model.created_at,
        versions=versions,
        steps=versions[-1].steps if versions else None,
    )


def list_models(session: Session) -> list[ModelPublic]:
    models = session.scalars(
        select(Model).options(selectinload(Model.versions)).order_by(Model.name)
    )
    return [_model_public(m) for m in models]


def get_model(session: Session, name: str) -> ModelPublic:
    return _model_public(_load_model(session, name))


def _load_model(session: Session, name: str) -> Model:
    model = session.scalar(
        select(Model).where(Model.name == name).options(selectinload(Model.versions))
    )
    if model is None:
        raise NotFound(f"no model named {name!r}")
    return model


def resolve_version(session: Session, name: str, version: int | None) -> ModelVersion:
    """A model's given version, or its latest; InvalidInput if there is none."""
    query = select(ModelVersion).join(Model).where(Model.name == name)
    if version is None:
        row = session.scalar(query.order_by(ModelVersion.version.desc()).limit(1))
    else:
        row = session.scalar(query.where(ModelVersion.version == version))
    if row is None:
        which = f"version {version} of model" if version else "model"
        raise InvalidInput(f"no {which} {name!r} is registered")
    return row


def delete_model(session: Session, name: str) -> None:
    model = _load_model(session, name)
    in_use = session.scalar(
        select(func.count(Variant.id))
        .join(ModelVersion, Variant.model_version_id == ModelVersion.id)
        .where(ModelVersion.model_id == model.id)
    )
    if in_use:
        raise Conflict(f"model {name!r} is used by {in_use} endpoint variant(s); delete them first")
    session.delete(model)
    # Commit here, not in the session dependency's teardown: FastAPI runs that
    # after the response is sent, so a 204 could precede a delete that fails.
    session.commit()

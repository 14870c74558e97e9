"""`/v1/models`: the model registry (multipart upload or an existing artifact_uri)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.deps import SessionDep
from api.problems import problem_responses
from api.schemas import ModelCreate, ModelPublic, ModelVersionPublic, PipelineCreate
from api.services import pipelines, registry
from core import codecs
from core.config import NAME_PATTERN, get_settings
from core.db import session_scope
from core.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from core.pipeline import PIPELINE

router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    responses=problem_responses(400, 404, 409, 413, 415, 422, 503),
)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` put in place: embedded in the OpenAPI
    document, `#/$defs/...` would resolve against the document's root and dangle."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


REGISTER_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["name", "framework", "file"],
                "properties": {
                    "name": {"type": "string", "pattern": NAME_PATTERN},
                    "framework": {"type": "string", "enum": list(registry.FRAMEWORKS)},
                    "file": {"type": "string", "format": "binary"},
                },
            }
        },
        "application/json": {
            "schema": {
                "oneOf": [
                    _inlined(ModelCreate.model_json_schema()),
                    _inlined(PipelineCreate.model_json_schema()),
                ]
            }
        },
    },
}


@router.post(
    "",
    status_code=201,
    response_model=ModelVersionPublic,
    openapi_extra={"requestBody": REGISTER_BODY},
)
async def register_model(request: Request) -> ModelVersionPublic:
    """Add a model version: multipart `name`, `framework`, `file`; or JSON `artifact_uri`."""
    content_type = codecs.media_type(request.headers.get("content-type"))
    if content_type == "multipart/form-data":
        return await _register_upload(request)
    if content_type == "application/json":
        raw = await request.body()
        schema: type[ModelCreate] | type[PipelineCreate] = (
            PipelineCreate if _names_pipeline(raw) else ModelCreate
        )
        try:
            spec = schema.model_validate_json(raw)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise BadRequest("malformed JSON body") from exc
            raise InvalidInput("; ".join(_messages(exc))) from exc
        if isinstance(spec, PipelineCreate):
            return await run_in_threadpool(_register_pipeline, spec)
        return await run_in_threadpool(_register_uri, spec)
    raise UnsupportedMediaType(
        f"send multipart/form-data (with a file) or application/json, not {content_type!r}"
    )


def _names_pipeline(raw: bytes) -> bool:
    """Whether a JSON registration is a pipeline's (`"framework": "pipeline"`)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False  # the schema's parse reports it
    return isinstance(body, dict) and body.get("framework") == PIPELINE


def _register_pipeline(spec: PipelineCreate) -> ModelVersionPublic:
    with session_scope() as session:
        return pipelines.register_pipeline(session, spec)


def _messages(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]


async def _register_upload(request: Request) -> ModelVersionPublic:
    limit = get_settings().max_artifact_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise PayloadTooLarge(f"upload is {declared} bytes; the artifact limit is {limit}")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception as exc:  # python-multipart's errors have no common base class
        raise BadRequest(f"malformed multipart body: {exc}") from exc
    try:
        name, framework, upload = form.get("name"), form.get("framework"), form.get("file")
        if not isinstance(name, str) or not isinstance(framework, str):
            raise InvalidInput("multipart fields 'name' and 'framework' are required")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("multipart field 'file' (the artifact) is required")
        file = upload.file
        filename = upload.filename or "artifact"

        def register() -> ModelVersionPublic:
            with session_scope() as session:
                return registry.register_upload(
                    session, name=name, framework=framework, filename=filename, stream=file
                )

        return await run_in_threadpool(register)
    finally:
        await form.close()


def _register_uri(spec: ModelCreate) -> ModelVersionPublic:
    with session_scope() as session:
        return registry.register_uri(
            session, name=spec.name, framework=spec.framework, artifact_uri=spec.artifact_uri
        )


@router.get("", response_model=list[ModelPublic])
def list_models(session: SessionDep) -> list[ModelPublic]:
    return registry.list_models(session)


@router.get("/{name}", response_model=ModelPublic)
def get_model(name: str, session: SessionDep) -> ModelPublic:
    return registry.get_model(session, name)


@router.delete("/{name}", status_code=204)
def delete_model(name: str, session: SessionDep) -> Response:
    registry.delete_model(session, name)
    return Response(status_code=204)

"""One control-plane request as the operations see it, and the shape of an operation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.sagemaker import mapping
from api.sagemaker.errors import AwsError, validation


@dataclass(frozen=True, slots=True)
class Call:
    """One control-plane request: its body and the region it was signed for (for ARNs).

    `routes_changed`: endpoints whose routes the operation changed (their components),
    so this API process re-reads them at once.
    """

    body: dict[str, Any]
    region: str = mapping.DEFAULT_REGION
    routes_changed: set[str] = field(default_factory=set)

    def arn(self, kind: str, name: str) -> str:
        return mapping.arn(kind, name, self.region)


Operation = Callable[[Session, Call], dict[str, Any]]


def spec_error(exc: ValidationError, where: str) -> AwsError:
    """A ValidationException listing (up to five of) the native spec's complaints."""
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    return validation(f"{where}: {'; '.join(parts)}")

"""`GET /v1/endpoints/{name}/shadow-report`: each shadow variant against production.

The pairs are kept by the scheduler's comparer in Redis (the newest 10,000 per
shadow); the report is computed from them at the tolerance asked
(core/shadow_compare.report).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.schemas import ShadowComparison, ShadowReport
from api.services.endpoints import load_endpoint
from core.broker import get_redis, shadow_pairs_key
from core.config import get_settings
from core.protocol import unpack
from core.shadow_compare import report


def shadow_report(session: Session, name: str, tolerance: float) -> ShadowReport:
    """One comparison per shadow variant the endpoint has (any config), by public name."""
    endpoint = load_endpoint(session, name)
    shadows = sorted({v.display_name for v in endpoint.variants if v.is_shadow})
    redis = get_redis()
    namespace = get_settings().namespace
    pipe = redis.pipeline(transaction=False)
    for shadow in shadows:
        pipe.lrange(shadow_pairs_key(namespace, name, shadow), 0, -1)
    kept = pipe.execute() if shadows else []
    return ShadowReport(
        tolerance=tolerance,
        shadow_variants=[
            ShadowComparison(**report(shadow, [unpack(raw) for raw in pairs], tolerance))
            for shadow, pairs in zip(shadows, kept, strict=True)
        ],
    )

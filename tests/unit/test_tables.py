"""The tables' shared column types."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from core.tables import Base, Model


def test_times_come_back_utc_aware_from_sqlite() -> None:
    """Regression: on SQLite a row read back had lost its zone, so the API answered
    `"2026-11-29T21:16:07.644613"` for a time it had answered with `Z` when creating it."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[Model.__table__])  # type: ignore[list-item]
    made = dt.datetime(2026, 11, 29, 22, 16, 7, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with Session(engine) as session:
        session.add_all([Model(name="aware", created_at=made), Model(name="naive")])
        session.commit()
    with Session(engine) as session:
        aware, naive = session.scalars(select(Model).order_by(Model.name)).all()
    assert aware.created_at == made
    assert aware.created_at.tzinfo == dt.UTC
    assert aware.created_at.hour == 21  # stored as UTC
    assert naive.created_at.tzinfo == dt.UTC

"""The console's Jinja2 environment: templates from api/console/templates, autoescaped.

Filters turn the API's values into what a person reads: `ago` ("12 s ago"),
`when` (UTC, to the second), `num` (thousands separators, at most 2 decimals).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from api.console import capacity

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"


def ago(moment: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """`12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`; `-` for None."""
    if moment is None:
        return "-"
    seconds = max(((now or dt.datetime.now(dt.UTC)) - moment).total_seconds(), 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def when(moment: dt.datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",)),
        undefined=StrictUndefined,  # a typo in a template is an error, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, when=when, num=num)
    env.filters.update(capacity.FILTERS)
    return Jinja2Templates(env=env)


templates = make_templates()

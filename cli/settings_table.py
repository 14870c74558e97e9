"""`sluice settings`: every SLUICEWAY_* setting with its default and meaning, as Markdown.

README.md's "Settings" table is this command's output (a unit test keeps them equal).
"""

from __future__ import annotations

import typer
from pydantic_core import PydanticUndefined

from core.config import Settings


def markdown_table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(empty)" if default in ("", None) or default is PydanticUndefined else default
        meaning = (field.description or "").replace("|", "\\|")
        lines.append(f"| `SLUICEWAY_{name.upper()}` | `{shown}` | {meaning} |")
    return "\n".join(lines).replace("`(empty)`", "(empty)")


def register(app: typer.Typer) -> None:
    @app.command("settings")
    def settings() -> None:
        """Print every SLUICEWAY_* setting, its default and meaning (Markdown)."""
        typer.echo(markdown_table())

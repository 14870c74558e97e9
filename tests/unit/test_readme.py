"""README.md stays true: its settings table is exactly what `sluice settings` prints."""

from __future__ import annotations

from pathlib import Path

from cli.settings_table import markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_every_setting_as_sluice_settings_prints_it() -> None:
    assert markdown_table() in README.read_text(), (
        "README.md's Settings table is stale: replace it with the output of `sluice settings`"
    )

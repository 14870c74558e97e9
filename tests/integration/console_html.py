"""Reading the console's server-rendered HTML in tests that already run a real stack."""

from __future__ import annotations

import re


def page_row(html: str, row_id: str) -> str:
    """The text of the table row with that id, tags dropped and spaces squeezed.

    AssertionError when the page has no such row."""
    found = re.search(rf'<tr[^>]*id="{re.escape(row_id)}".*?</tr>', html, re.S)
    assert found, f"no row {row_id} in the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0))).strip()

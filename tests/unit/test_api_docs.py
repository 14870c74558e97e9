"""docs/api.md documents exactly the routes the app serves, as its OpenAPI document lists them.

The convention: every operation has a Markdown heading (any level) of its own whose
whole text is one code span holding the method and the path exactly as
/openapi.json writes it, path parameters included:

    ### `POST /v1/endpoints/{name}/invocations`

Only such headings count. A route named in prose, a table or an example documents
nothing, and a heading like that for a route the app does not serve (renamed,
removed, a typo in a parameter name) fails as surely as a route without one.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from api.main import create_app

API_DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})
ROUTE_HEADING = re.compile(r"^#{1,6} `(?P<method>[A-Z]+) (?P<path>/\S*)`\s*$")

Route = tuple[str, str]


def served_routes() -> set[Route]:
    """(METHOD, path) of every operation in the app's OpenAPI document."""
    paths = create_app().openapi()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if method.upper() in HTTP_METHODS
    }


def documented_routes(markdown: str) -> list[Route]:
    """(METHOD, path) of every route heading, in order; fenced code blocks are skipped."""
    routes, in_fence = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else ROUTE_HEADING.match(line)
        if match:
            routes.append((match["method"], match["path"]))
    return routes


def _listed(routes: set[Route]) -> str:
    return "\n".join(f"  `{method} {path}`" for path, method in sorted((p, m) for m, p in routes))


def test_every_served_route_is_documented_and_every_documented_route_is_served() -> None:
    served = served_routes()
    documented = documented_routes(API_DOCS.read_text())
    undocumented = served - set(documented)
    not_served = set(documented) - served
    assert not undocumented and not not_served, (
        "docs/api.md and the app's OpenAPI document disagree.\n"
        + (
            f"Served but not documented (add a heading for each):\n{_listed(undocumented)}\n"
            if undocumented
            else ""
        )
        + (
            f"Documented but not served (renamed or removed?):\n{_listed(not_served)}\n"
            if not_served
            else ""
        )
    )


def test_each_route_is_documented_once() -> None:
    repeated = {
        route for route, n in Counter(documented_routes(API_DOCS.read_text())).items() if n > 1
    }
    assert not repeated, f"docs/api.md has more than one heading for:\n{_listed(repeated)}"


def test_route_headings_are_recognised() -> None:
    """The parser itself: a heading counts, prose and fenced examples do not."""
    markdown = "\n".join(
        [
            "## `GET /healthz`",
            "### `PATCH /v1/endpoints/{name}/weights`",
            "Call `POST /v1/models` first.",
            "### Models: `GET /v1/models`",
            "```",
            "### `DELETE /v1/models/{name}`",
            "```",
        ]
    )
    assert documented_routes(markdown) == [
        ("GET", "/healthz"),
        ("PATCH", "/v1/endpoints/{name}/weights"),
    ]


def test_every_schema_reference_in_openapi_resolves() -> None:
    """A `$ref` that dangles makes schema-driven clients and fuzzers skip that body
    (a pipeline registration's `#/$defs/PipelineStepCreate` once did)."""
    document = create_app().openapi()

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for item in node for r in refs(item)]
        return []

    def resolves(ref: str) -> bool:
        node: object = document
        for part in ref.removeprefix("#/").split("/"):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    found = refs(document)
    assert found, "the document uses references"
    assert [ref for ref in found if not resolves(ref)] == []

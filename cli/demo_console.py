"""The demo's console step: the web console's address, and a check that it is served."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cli import api_client as http
from cli.demo_models import DemoFailure

if TYPE_CHECKING:
    from cli.demo_tour import Tour


def step_console(tour: Tour) -> str:
    """GET /console and the demo endpoint's page: both must be HTML naming what they show."""
    base_url = str(tour.api.base_url).rstrip("/")
    page = http.path("/console/endpoints/{}", tour.endpoint)
    for path in ("/console", page):
        response = tour.api.request("GET", path)
        if "text/html" not in response.headers.get("content-type", ""):
            raise DemoFailure(f"GET {path} is not an HTML page")
    if tour.endpoint not in response.text:
        raise DemoFailure(f"the console page {page} does not name {tour.endpoint}")
    tour.say(f"open {base_url}/console in a browser (the endpoint: {base_url}{page})")
    return f"{base_url}/console"

"""ASGI middleware that runs before any route: header limits, then API-key auth."""

"""The web console's parts: templates, static assets (vendored uPlot and htmx), and its reads.

Pages render server-side (Jinja2) from the same services the HTTP API uses
(api/services/); live parts refresh by htmx (tables) and by feeding uPlot the
points the scheduler sampled since the last one (plots). Routes: api/routes/console.py.
"""

"""`sluice` — the entry point. Each command group lives in its own module.

- cli/ops.py:    up, api, worker, scheduler, db upgrade (runs processes)
- cli/client.py: invoke, jobs, models, endpoints (an HTTP client of api/)
- cli/demo.py:   demo (a guided tour against a running stack)
- cli/keys.py:   keys create|revoke (API keys, in the database)
- cli/transform.py: transform, transform-jobs (batch transform with a progress bar)
- cli/monitor.py: monitor baseline|schedule|run|executions (model monitoring)
"""

from __future__ import annotations

import typer

from cli import client, demo, keys, monitor, ops, settings_table, transform

app = typer.Typer(
    name="sluice",
    help="Sluiceway: a self-hosted job-queue inference platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ops.register(app)
client.register(app)
demo.register(app)
keys.register(app)
monitor.register(app)
settings_table.register(app)
transform.register(app)


if __name__ == "__main__":
    app()

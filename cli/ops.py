"""`sluice` commands that run processes: `db upgrade`, `api`, `worker`, `scheduler`, `up`.

`api`, `worker` and `scheduler` each run one process alone (for compose and for
many hosts); `up` runs all of them on this machine through `devstack.supervisor.Stack`.
The heavy modules (FastAPI, torch, the scheduler loop) are imported inside each
command, so `sluice --help` and the client commands stay fast.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import typer
from pydantic import ValidationError

from core.config import Settings, get_settings

logger = logging.getLogger(__name__)

DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")
# "_transform/<model>-v<N>" names a model's batch-transform pool (core.broker).
# ENDPOINT/VARIANT; an inference component's queue is the variant `ic.NAME`, and a
# deployment's new variant is keyed `NAME~<config version>` (core.tables).
VARIANT_PATTERN = re.compile(
    r"^_?[a-zA-Z0-9][a-zA-Z0-9-]{0,62}/(ic\.)?[a-zA-Z0-9][a-zA-Z0-9-]{0,62}(~[1-9][0-9]*)?$"
)

db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)


def _settings() -> Settings:
    """The settings, or exit 2 naming the bad SLUICEWAY_* value."""
    try:
        return get_settings()
    except ValidationError as exc:
        errors = "; ".join(
            f"SLUICEWAY_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            f" (got {error.get('input')!r})"
            for error in exc.errors()
        )
        typer.echo(f"error: bad settings: {errors}", err=True)
        raise typer.Exit(2) from None


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    # Noise at INFO: alembic announces each of its plugins on every start, and
    # httpx logs every request (`sluice up` polls /readyz several times a second).
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to SLUICEWAY_DATABASE_URL (default: a SQLite file under home)."""
    from sqlalchemy.engine import make_url

    from core.db import upgrade_schema

    settings = _settings()
    _setup_logging(settings)
    upgrade_schema()
    shown = make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
    typer.echo(f"database {shown} is at the latest schema")


def api(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default SLUICEWAY_API_HOST).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port to listen on (default SLUICEWAY_API_PORT)."),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="API processes sharing the port (metrics summed across them)."
        ),
    ] = 1,
) -> None:
    """Run the HTTP API (one process, or --processes N on one port)."""
    settings = _settings()
    _setup_logging(settings)
    from api.main import serve

    serve(host=host or settings.api_host, port=port or settings.api_port, processes=processes)


def worker(
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda or cuda:N (default SLUICEWAY_WORKER_DEVICE)."),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help="ENDPOINT/VARIANT (or ENDPOINT/ic.COMPONENT, or a deployment's "
            "ENDPOINT/VARIANT~N) to serve; repeat for several "
            "(default SLUICEWAY_WORKER_VARIANTS; empty serves every variant).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Worker name in logs and metrics (default: host-pid).")
    ] = None,
) -> None:
    """Run one worker process pinned to one device."""
    settings = _settings()
    device = device or settings.worker_device
    if not DEVICE_PATTERN.match(device):
        raise typer.BadParameter(f"expected cpu or cuda:N, got {device!r}", param_hint="--device")
    variants = variant or [item for item in settings.worker_variants.split(",") if item]
    for item in variants:
        if not VARIANT_PATTERN.match(item):
            raise typer.BadParameter(
                f"expected ENDPOINT/VARIANT, got {item!r}", param_hint="--variant"
            )
    _setup_logging(settings)
    from workers.main import run_worker

    run_worker(device=device, variants=variants, name=name)


def scheduler() -> None:
    """Run the scheduler: scaler, webhook deliveries, transform fan-out, reconciler."""
    settings = _settings()
    _setup_logging(settings)
    from scheduler.main import run_scheduler

    run_scheduler()


def up(
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="API port (default SLUICEWAY_API_PORT)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="API interface (default SLUICEWAY_API_HOST).")
    ] = None,
    cpu_slots: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="CPU worker processes the scaler may run here "
            "(default SLUICEWAY_LOCAL_CPU_SLOTS; 0 = one per core).",
        ),
    ] = None,
    ready_timeout_s: Annotated[
        float, typer.Option(min=1, help="How long to wait for GET /readyz.")
    ] = 120.0,
) -> None:
    """Run everything on this machine in the foreground; Ctrl-C stops it all."""
    from devstack.supervisor import Stack, run_stack

    settings = _settings()
    _setup_logging(settings)
    stack = Stack(
        settings,
        host=host or settings.api_host,
        port=port or settings.api_port,
        cpu_slots=settings.local_cpu_slots if cpu_slots is None else cpu_slots,
        ready_timeout_s=ready_timeout_s,
    )
    code = run_stack(stack)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the process commands to the `sluice` app."""
    app.add_typer(db_app, name="db")
    app.command()(api)
    app.command()(worker)
    app.command()(scheduler)
    app.command()(up)

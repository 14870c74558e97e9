"""`sluice keys`: create and revoke API keys, directly in the metadata database.

An operator command, run where SLUICEWAY_DATABASE_URL reaches the database (the
first admin key cannot come through an API that already demands one). The new
key is printed alone on stdout — it is stored as a hash (and, with
SLUICEWAY_KEY_ENCRYPTION_KEY set, its secret encrypted, so boto3 can sign with it:
docs/sagemaker.md) and never shown again.
"""

from __future__ import annotations

from typing import Annotated

import typer

keys_app = typer.Typer(help="Create and revoke API keys (SLUICEWAY_AUTH=on).", no_args_is_help=True)


@keys_app.command("create")
def create(
    scope: Annotated[str, typer.Option(help="admin (control plane) or invoke (data plane).")],
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", help="Limit the key to this endpoint (repeatable)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for people.")] = None,
) -> None:
    """Create a key and print it alone on stdout.

    For boto3 (the SageMaker API), `sw_<id>_<secret>` is the access key id `<id>` and the
    secret access key `<secret>`; that needs SLUICEWAY_KEY_ENCRYPTION_KEY set when it is made.
    """
    from core.apikeys import create_key
    from core.db import session_scope
    from core.errors import SluicewayError

    try:
        with session_scope() as session:
            key = create_key(session, scope=scope, endpoints=endpoint, name=name)
    except SluicewayError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(key)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The id: the part after `sw_`.")]) -> None:
    """Revoke a key; API processes stop accepting it within seconds."""
    from core.db import session_scope
    from core.tables import ApiKey, utcnow

    with session_scope() as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            typer.echo(f"error: no key with id {key_id!r}", err=True)
            raise typer.Exit(1)
        row.revoked_at = utcnow()
    typer.echo(f"revoked {key_id}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")

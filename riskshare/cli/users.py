"""``riskshare user``: users, roles and API tokens."""

from __future__ import annotations

from typing import Any

import click

from ..node.authz import ROLES
from . import main
from ._api import emit, json_option, node_options, table_out, target


@main.group()
def user() -> None:
    """Add users (admin, data_owner, analyst, auditor), list them, issue tokens."""


@user.command("add")
@node_options
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--password", is_flag=True, help="Also set a password for console logins (prompted).")
def add(name: str, role: str, password: bool, **kw: Any) -> None:
    """Create a user; prints its API token once, as the last line (only its hash is stored)."""
    secret = click.prompt("password", hide_input=True, confirmation_prompt=True) if password else None
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            token = client.add_user(name, role, secret)["token"]
    else:
        from ..node import users
        from ..node.context import local_actor

        with t.local_session() as (ctx, s):
            _, token = users.add_user(ctx, s, local_actor(), name, role, secret)
    click.echo(f"added user '{name}' with role {role}; its API token (shown only now):", err=True)
    click.echo(token)


@user.command("list")
@node_options
@json_option
def list_(as_json: bool, **kw: Any) -> None:
    """List users and their roles."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            rows = client.users()
    else:
        from ..node import users

        with t.local_session() as (ctx, s):
            rows = users.list_users(s)
    emit(rows, as_json, lambda r: table_out(r, ["name", "role", "disabled", "has_password", "created_by"]))


@user.command("token")
@node_options
@click.option("--name", required=True)
def token(name: str, **kw: Any) -> None:
    """Issue a new API token for a user (its earlier tokens stop working); prints it last."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            new = client.new_token(name)
    else:
        from ..node import users
        from ..node.context import local_actor

        with t.local_session() as (ctx, s):
            new = users.new_api_token(ctx, s, local_actor(), name)
    click.echo(new)


@user.command("disable")
@node_options
@click.option("--name", required=True)
def disable(name: str, **kw: Any) -> None:
    """Disable a user and revoke all its tokens."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            client.disable_user(name)
    else:
        from ..node import users
        from ..node.context import local_actor

        with t.local_session() as (ctx, s):
            users.disable_user(ctx, s, local_actor(), name)
    click.echo(f"disabled user '{name}'")

"""Operator commands for tokens and signing keys, registered under `cellfed` as `token` and `keys`:
`token mint`, `token revoke` (into the global keyspace), `keys generate`.

They run on the operators' minting host, the only place private keys live; routers get `*.pub` only."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import jwt

from cellapi.auth.keys import generate_keypair, read_private_key
from cellapi.auth.tokens import MAX_TTL_S, ROLES, mint, revocation_of_tenant, revocation_of_token
from fedlib.errors import CellfedError
from replication.model import Revocation

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in "90", "90s", "30m", "12h" or "7d"."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 12h or 7d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _duration_option(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_KEYS_DIR = click.option(
    "--keys-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory of <kid>.key (private, minting host only) and <kid>.pub (public) files.",
)
_KEY_ID = click.option("--key-id", "key_id", required=True, help="Key id (kid), e.g. 2025-06.")


@click.group(name="token")
def token_group() -> None:
    """Mint bearer tokens for users and operators."""


@token_group.command(name="mint")
@_KEYS_DIR
@_KEY_ID
@click.option("--tenant", required=True, help="Tenant the token acts for.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(sorted(ROLES)),
    default=("user",),
    show_default=True,
    help="Role to grant; repeat for several. admin is needed for the Federation API.",
)
@click.option(
    "--ttl",
    callback=_duration_option,
    default="1h",
    show_default=True,
    help=f"Lifetime (s/m/h/d), at most {MAX_TTL_S // 86400}d.",
)
@click.option("--subject", required=True, help="Who the token is for (a user or service name).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def mint_command(
    keys_dir: str,
    key_id: str,
    tenant: str,
    roles: tuple[str, ...],
    ttl: int,
    subject: str,
    output: str,
) -> None:
    """Print a signed token (text: the token alone, for $(...); json: the token and its claims)."""
    now_s = time.time()
    try:
        pem = read_private_key(keys_dir, key_id)
        token = mint(pem, key_id, subject=subject, tenant=tenant, roles=roles, ttl_s=ttl, now_s=now_s)
    except CellfedError as exc:
        raise click.ClickException(exc.message) from None
    if output == "text":
        click.echo(token)
        return
    expires_at = int(now_s) + ttl
    document = {
        "token": token,
        "token_id": jwt.decode(token, options={"verify_signature": False})["jti"],
        "key_id": key_id,
        "subject": subject,
        "tenant": tenant,
        "roles": sorted(set(roles)),
        "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat(),
        "expires_at_s": expires_at,
    }
    click.echo(json.dumps(document, indent=2))


@token_group.command(name="revoke")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Revoke this token (its id and expiry are read from it).",
)
@click.option("--tenant", help="Revoke every token of this tenant issued until now.")
@click.option("--reason", default="", help="Why, for the record (at most 256 characters).")
@click.option("--cassandra", "contact_points", required=True, help="Comma-separated contact points.")
@click.option("--local-dc", required=True, help="The Cassandra DC to write through.")
@click.option("--global-keyspace", default="cellfed_global", show_default=True)
def revoke_command(
    token_file: Path | None,
    tenant: str | None,
    reason: str,
    contact_points: str,
    local_dc: str,
    global_keyspace: str,
) -> None:
    """Revoke a token, or a tenant's tokens, in the global keyspace: every router refuses them within a
    heartbeat of the row reaching its DC (cut-off sites: once their link heals)."""
    if (token_file is None) == (tenant is None):
        raise click.UsageError("give exactly one of --token-file or --tenant")
    now_ms = int(time.time() * 1000)
    try:
        if token_file is not None:
            revocation = revocation_of_token(_read_token(token_file), now_ms, reason)
        else:
            revocation = revocation_of_tenant(tenant or "", now_ms, reason)
        asyncio.run(_write_revocation(revocation, contact_points, local_dc, global_keyspace))
    except CellfedError as exc:
        raise click.ClickException(exc.message) from None
    what = f"token {revocation.key}" if token_file else f"tokens of tenant {revocation.key} issued until now"
    click.echo(f"revoked {what}; routers refuse it within a heartbeat")


def _read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise click.UsageError(f"--token-file {path}: {exc.strerror or exc}") from None


async def _write_revocation(
    revocation: Revocation, contact_points: str, local_dc: str, keyspace: str
) -> None:
    from replication.cql.federation_rows import CqlRevocations
    from replication.cql.session import connect

    points = [p.strip() for p in contact_points.split(",") if p.strip()]
    session = await asyncio.to_thread(connect, points, local_dc)
    try:
        await CqlRevocations(session, keyspace).revoke(revocation)
    finally:
        await session.aclose()


@click.group(name="keys")
def keys_group() -> None:
    """Manage the Ed25519 signing keys tokens are minted with."""


@keys_group.command(name="generate")
@_KEYS_DIR
@_KEY_ID
def generate_command(keys_dir: str, key_id: str) -> None:
    """Write <kid>.key (mode 0600, keep on this host) and <kid>.pub (copy to every site)."""
    try:
        paths = generate_keypair(keys_dir, key_id)
    except CellfedError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"private key: {paths.private} (keep on the minting host only)")
    click.echo(f"public key:  {paths.public} (add to every site's key directory before minting with it)")

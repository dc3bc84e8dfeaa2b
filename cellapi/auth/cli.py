"""Operator commands for tokens and signing keys, registered under `cellfed` as `token` and `keys`.

They run on the operators' minting host, the only place private keys live; routers get `*.pub` only."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import click

from cellapi.auth.keys import generate_keypair, read_private_key
from cellapi.auth.tokens import MAX_TTL_S, ROLES, mint
from fedlib.errors import CellfedError

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
        "key_id": key_id,
        "subject": subject,
        "tenant": tenant,
        "roles": sorted(set(roles)),
        "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat(),
        "expires_at_s": expires_at,
    }
    click.echo(json.dumps(document, indent=2))


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

"""`cellfed schema apply`: creates or migrates the global keyspace and the cell keyspaces, versioned and
idempotent (replication.schema + replication.cql.migrate). Safe to run repeatedly, e.g. as a Kubernetes
Job per region; validates the topology against the live cluster before writing anything. Production
code (the k8s schema Job runs it through `cellfed-server`), so it lives with the schema, not in localfed."""

from __future__ import annotations

import asyncio
import json

import click

from fedlib.errors import CellfedError


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition(":")
        if not sep or not name or not value:
            raise click.BadParameter(f"{what} entry {item!r} must look like NAME:VALUE")
        out.append((name, value))
    return out


@click.group("schema")
def schema_cli() -> None:
    """The project's versioned Cassandra schema."""


@schema_cli.command("apply")
@click.option("--cassandra", "contact_points", required=True, help="Comma-separated contact points.")
@click.option("--local-dc", required=True, help="The DC to run DDL through.")
@click.option("--dcs", required=True, help="Global keyspace replication, e.g. eu-west:3,us-east:3.")
@click.option("--cells", default="", help="Cell keyspaces, e.g. par1-c1:eu-west,nyc1-c1:us-east.")
@click.option("--global-keyspace", default="cellfed_global", show_default=True)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def apply(
    contact_points: str, local_dc: str, dcs: str, cells: str, global_keyspace: str, output: str
) -> None:
    """Applies every pending migration; prints what changed."""
    try:
        dc_rf = {dc: int(rf) for dc, rf in _pairs(dcs, "--dcs")}
    except ValueError:
        raise click.BadParameter("--dcs replication factors must be integers, e.g. eu-west:3") from None
    try:
        applied = asyncio.run(
            _apply(contact_points, local_dc, dc_rf, _pairs(cells, "--cells"), global_keyspace)
        )
    except CellfedError as exc:
        raise click.ClickException(exc.message) from None
    if output == "json":
        click.echo(json.dumps(applied, indent=2))
        return
    for entry in applied:
        click.echo(f"{entry['keyspace']}: version {entry['version']} replication {entry['replication']}")


async def _apply(
    contact_points: str,
    local_dc: str,
    dcs: dict[str, int],
    cells: list[tuple[str, str]],
    global_keyspace: str,
) -> list[dict[str, object]]:
    from replication.cql import migrate
    from replication.cql.session import connect

    points = [p.strip() for p in contact_points.split(",") if p.strip()]
    session = await asyncio.to_thread(connect, points, local_dc)
    try:
        known = await migrate.read_topology(session)
        await migrate.apply_schema(
            session, global_keyspace=global_keyspace, dcs=dcs, cells=cells, known_dcs=known
        )
        out = []
        keyspaces = [global_keyspace] + [_cell_keyspace(cell) for cell, _ in cells]
        for ks in keyspaces:
            out.append({
                "keyspace": ks,
                "version": await migrate.current_version(session, ks),
                "replication": await migrate.keyspace_replication(session, ks),
            })  # fmt: skip
        return out
    finally:
        await session.aclose()


def _cell_keyspace(cell_id: str) -> str:
    from fedlib.names import keyspace_for_cell

    return keyspace_for_cell(cell_id)

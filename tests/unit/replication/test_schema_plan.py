"""replication.schema: migrations as data, and topology validation that fails before any write."""

from __future__ import annotations

import re

import pytest

from fedlib.errors import ConfigError
from replication.schema import (
    alter_keyspace,
    cell_migrations,
    create_keyspace,
    global_migrations,
    plan_schema,
    replication_cql,
)

KNOWN = {"eu-west": 3, "us-east": 1}
# CQL that Cassandra 2.1 or current versions lack, or that the design rules out.
FORBIDDEN = re.compile(
    r"MATERIALIZED|CUSTOM INDEX|SASI|GROUP BY|PER PARTITION|JSON|duration|ALLOW FILTERING|counter", re.I
)


@pytest.mark.parametrize("migrations", [global_migrations, cell_migrations])
def test_migrations_are_versioned_idempotent_and_portable(migrations) -> None:  # type: ignore[no-untyped-def]
    ks = "some_ks_name"
    steps = migrations(ks)
    assert [m.version for m in steps] == list(range(1, len(steps) + 1))
    for m in steps:
        assert m.description
        for stmt in m.statements:
            assert stmt.startswith(f"CREATE TABLE IF NOT EXISTS {ks}."), stmt
            assert not FORBIDDEN.search(stmt), stmt
        for column in m.columns:
            assert column.statement(ks).startswith(f"ALTER TABLE {ks}.{column.table} ADD "), column
            assert not FORBIDDEN.search(column.statement(ks)), column
    tables = {s.split()[5].split("(")[0] for m in steps for s in m.statements}
    assert f"{ks}.schema_version" in tables
    # A column is only ever added to a table an earlier migration created.
    for m in steps:
        earlier = {s.split()[5].split("(")[0] for e in steps if e.version < m.version for s in e.statements}
        assert all(f"{ks}.{c.table}" in earlier for c in m.columns), m.version


def test_columns_refuse_what_is_not_plain_cql() -> None:
    from replication.schema import Column

    with pytest.raises(Exception) as err:
        Column("capacity", "x; DROP TABLE y", "int")
    assert "identifier" in str(err.value)
    with pytest.raises(Exception) as err:
        Column("capacity", "d", "duration")
    assert "type" in str(err.value)


def test_keyspace_names_are_parameters_not_constants() -> None:
    a, b = global_migrations("alpha_ks"), global_migrations("beta_ks")
    assert all("beta_ks" not in s for m in a for s in m.statements)
    assert [s.replace("alpha_ks", "beta_ks") for m in a for s in m.statements] == [
        s for m in b for s in m.statements
    ]


def test_tables_the_design_requires() -> None:
    global_tables = " ".join(s for m in global_migrations("g") for s in m.statements)
    for table in (
        "sites",
        "cells",
        "routers",
        "capacity",
        "instance_index",
        "listing_by_created",
        "router_reports",
    ):
        assert f"g.{table} (" in global_tables
    added = {(c.table, c.name) for m in global_migrations("g") for c in m.columns}
    assert ("capacity", "instances_by_status") in added
    assert "PRIMARY KEY ((tenant, request_id, region))" in global_tables
    # The listing (v3): partitions per owner cell and generation, so a retired one is dropped whole.
    assert "PRIMARY KEY ((tenant, cell_id, gen), created_at, instance_id)" in global_tables
    assert "PRIMARY KEY ((tenant, cell_id, gen), name, instance_id)" in global_tables
    assert "PRIMARY KEY ((tenant), cell_id)" in global_tables
    cell_tables = " ".join(s for m in cell_migrations("c") for s in m.statements)
    for table in ("instances", "hosts", "capacity_claims", "instance_events"):
        assert f"c.{table} (" in cell_tables
    assert "default_time_to_live" in cell_tables  # the event log ages out; nothing deletes from it


def test_replication_maps() -> None:
    assert replication_cql({"us-east": 1, "eu-west": 3}) == (
        "{'class': 'NetworkTopologyStrategy', 'eu-west': 3, 'us-east': 1}"
    )
    assert create_keyspace("k", {"eu-west": 1}).startswith("CREATE KEYSPACE IF NOT EXISTS k WITH replication")
    assert alter_keyspace("k", {"eu-west": 1}).startswith("ALTER KEYSPACE k WITH replication")


def test_plan_places_each_cell_keyspace_in_its_dc_only() -> None:
    plans = plan_schema(
        global_keyspace="cellfed",
        dcs={"eu-west": 3, "us-east": 1},
        cells=[("par1", "eu-west"), ("nyc-1", "us-east")],
        known_dcs=KNOWN,
    )
    assert [(p.keyspace, p.replication, p.latest) for p in plans] == [
        ("cellfed", {"eu-west": 3, "us-east": 1}, 5),
        ("cellfed_cell_par1", {"eu-west": 3}, 2),
        ("cellfed_cell_nyc_1", {"us-east": 1}, 2),
    ]


@pytest.mark.parametrize(
    ("keyspace", "dcs", "cells", "field"),
    [
        ("Bad-Name", {"eu-west": 1}, [], "global_keyspace"),
        ("k", {}, [], "dcs"),
        ("k", {"eu-west": 4}, [], "dcs.eu-west"),  # rf above the 3 nodes
        ("k", {"eu-west": 0}, [], "dcs.eu-west"),
        ("k", {"mars": 1}, [], "dcs.mars"),  # unknown DC
        ("k", {"eu-west": 1}, [("par1", "us-east")], "cells.par1"),  # cell DC not replicated
        ("k", {"eu-west": 1}, [("Par 1", "eu-west")], "cells"),
        ("k", {"eu-west": 1}, [("par1", "eu-west"), ("par1", "eu-west")], None),
    ],
)
def test_bad_topology_names_the_setting(
    keyspace: str, dcs: dict[str, int], cells: list[tuple[str, str]], field: str | None
) -> None:
    with pytest.raises(ConfigError) as err:
        plan_schema(global_keyspace=keyspace, dcs=dcs, cells=cells, known_dcs=KNOWN)
    assert err.value.field == field

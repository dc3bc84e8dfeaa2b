"""Federation API requests are checked as their Compute API twins are: ExplainPlacement refuses what
create refuses, DrainCell needs the cell's own site in its name, and errors name the field sent (never
an internal one)."""

from __future__ import annotations

import grpc
import pytest
from cellfed.v1 import common_pb2, federation_pb2

from tests.inprocess.harness import SITES, Harness, cells, create_request
from tests.unit.cellapi.router.test_hosts_inprocess import federation, rpc_error


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (federation_pb2.ExplainPlacementRequest(flavor="m1.tiny", from_site="atlantis"), "from_site"),
        (federation_pb2.ExplainPlacementRequest(flavor="m1.tiny", from_site="par1\n"), "from_site"),
        (
            federation_pb2.ExplainPlacementRequest(
                flavor="m1.tiny", placement=common_pb2.PlacementHint(spread_group="Bad Group!")
            ),
            "placement.spread_group",
        ),
        (
            federation_pb2.ExplainPlacementRequest(
                flavor="m1.tiny", placement=common_pb2.PlacementHint(region="eu-west\n")
            ),
            "placement.region",
        ),
        (federation_pb2.ExplainPlacementRequest(flavor="m9.huge"), "flavor"),
    ],
    ids=["unknown-site", "site-newline", "bad-group", "region-newline", "unknown-flavor"],
)
async def test_explain_refuses_what_create_refuses_naming_the_field(
    request_: federation_pb2.ExplainPlacementRequest, field: str
) -> None:
    async with Harness.running(SITES, cells()) as h:
        err = await rpc_error(federation(h).ExplainPlacement(request_))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.details() or ""), err.details()
        assert "router_endpoint" not in (err.details() or "")


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("sites/nyc1/cells/par1-c1", grpc.StatusCode.NOT_FOUND),  # the cell is par1's: no such cell here
        ("sites/par1/cells/nope-c1", grpc.StatusCode.NOT_FOUND),
        ("cells/par1-c1", grpc.StatusCode.INVALID_ARGUMENT),
        ("sites/par1/cells/" + "x" * 5_000, grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_drain_needs_the_cells_own_site_in_its_name(name: str, code: grpc.StatusCode) -> None:
    async with Harness.running(SITES, cells()) as h:
        err = await rpc_error(federation(h).DrainCell(federation_pb2.DrainCellRequest(name=name)))
        assert err.code() == code and "name" in (err.details() or "")
        assert len(err.details() or "") < 400  # the bad value is not echoed whole
        status = await h.cells["par1-c1"].status()
        assert not status.drained  # nothing was drained


async def test_a_drain_the_cell_cannot_publish_is_refused_and_undone() -> None:
    """The cell's DC is down: its directory row cannot be written. The caller is told the drain failed,
    so the cell must not stay drained (it went on refusing every build after such a failure)."""
    from fedlib.errors import Unavailable

    async with Harness.running(SITES, cells()) as h:
        directory = h.store.directory

        async def dc_down(cell: object) -> None:
            raise Unavailable("cassandra dc eu-west: NoHostAvailable")

        real, directory.put_cell = directory.put_cell, dc_down  # type: ignore[method-assign]
        try:
            err = await rpc_error(
                federation(h).DrainCell(federation_pb2.DrainCellRequest(name="sites/par1/cells/par1-c1"))
            )
        finally:
            directory.put_cell = real  # type: ignore[method-assign]
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert not (await h.cells["par1-c1"].status()).drained
        inst = await h.api("par1").CreateInstance(create_request("after-failed-drain"))
        assert inst.cell == "par1-c1"

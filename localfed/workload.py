"""The sample workload of `cellfed up`: a client placed at each site (talking to its own router, as a
user served by the nearest site would) creates, gets, lists and deletes instances, and also reads one
instance owned by every other site. Returns every request's latency and where it was served."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from cellfed.v1 import common_pb2, compute_pb2

from cellapi.client import Client
from localfed.launcher import LocalFederation

T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    client_site: str
    op: str
    served_by: str  # the cell that answered (owner), or "listing" for lists
    ms: float


async def run_workload(
    fed: LocalFederation,
    per_site: int = 5,
    image: str = "debian-12",
    created: list[common_pb2.Instance] | None = None,
) -> list[Sample]:
    """With `image` "tiny-guest" each create boots the project's own kernel in a real QEMU guest. `created`,
    when given, receives every instance as its create answered (with its addresses)."""
    clients = {
        s.site: Client([fed.client_endpoint(s.site)], fed.tokens["acme"], ca=fed.ca) for s in fed.sites
    }
    samples: list[Sample] = []
    try:
        made = created if created is not None else []
        owned = {site: await _creates(site, c, per_site, samples, image, made) for site, c in clients.items()}
        for site, client in clients.items():
            for iid in owned[site]:
                await _timed(samples, site, "get (own site)", client.get(iid))
            for other, ids in owned.items():
                if other != site:
                    await _timed(samples, site, "get (other site)", client.get(ids[0]))
            for _ in range(3):
                await _timed(samples, site, "list", client.list(page_size=50), served="listing")
            for _ in range(3):  # the replicated listing alone: what a list costs without live enrichment
                index_only = client.list(page_size=50, skip_enrichment=True)
                await _timed(samples, site, "list (index only)", index_only, served="listing")
        for site, client in clients.items():
            for iid in owned[site]:
                await _timed(samples, site, "delete", client.action("Delete", iid))
    finally:
        for client in clients.values():
            await client.close()
    return samples


async def _creates(
    site: str, client: Client, count: int, samples: list[Sample], image: str, made: list[common_pb2.Instance]
) -> list[str]:
    ids = []
    flavor = "m1.tiny" if image == "tiny-guest" else "m1.small"
    for n in range(count):
        # Every user asks for their own site, as a Nova user picks an availability zone: in p2p and sync
        # the router is there anyway; the central router would otherwise place everyone near itself.
        request = compute_pb2.CreateInstanceRequest(
            request_id=uuid.uuid4().hex,
            display_name=f"{site}-web-{n}",
            flavor=flavor,
            image=image,
            placement=common_pb2.PlacementHint(site=site),
        )
        inst = await _timed(samples, site, "create", client.create(request))
        ids.append(inst.instance_id)
        made.append(inst)
    await asyncio.gather(*(_wait_active(client, i) for i in ids))
    return ids


async def _wait_active(client: Client, instance_id: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while (await client.get(instance_id)).status != common_pb2.ACTIVE:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{instance_id} not ACTIVE within {timeout_s}s")
        await asyncio.sleep(0.1)


async def _timed(samples: list[Sample], site: str, op: str, call: Awaitable[T], served: str = "") -> T:
    started = time.perf_counter()
    result = await call
    ms = (time.perf_counter() - started) * 1000
    samples.append(Sample(site, op, served or getattr(result, "cell", "") or "-", ms))
    return result


def summarize(samples: list[Sample]) -> dict[tuple[str, str], dict[str, object]]:
    """Per (client site, op): count, p50, p99, max (nearest rank, in ms), and which cells served it."""
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.client_site, s.op)].append(s)
    out: dict[tuple[str, str], dict[str, object]] = {}
    for key, group in groups.items():
        ms = sorted(s.ms for s in group)
        out[key] = {
            "n": len(ms),
            "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
            "max_ms": round(ms[-1], 1),
            "served_by": sorted({s.served_by for s in group}),
        }
    return out

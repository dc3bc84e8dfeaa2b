"""`cellfed bench partition`: one site cut off from the rest under load, then healed.

A p2p federation over the emulated WAN (one Cassandra DC per region); a client at every site drives
creates, gets and deletes of its own instances and gets of other sites' (localfed.bench.partition_load).
After `--before-s`, one site is cut: every delayed path into or out of it drops (router to cell, router
to router, and the Cassandra links of its DC), and stays refused for `--cut-s`. Then it heals. Prints
the success rate per side and phase, and the time from the heal until every router's listing (its own
DC's replica of the global keyspace) agrees with what the clients were acknowledged."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cellapi.client import Client
from fedlib.errors import CellfedError
from localfed.bench.options import cassandra_address_base
from localfed.bench.partition_load import Ledger, drive_site, summarize
from localfed.launcher import LocalFederation
from localfed.paths import state_dir
from localfed.sites import default_sites, rtt_matrix


@dataclass(frozen=True)
class Plan:
    cut_site: str
    before_s: float
    cut_s: float
    after_s: float
    rate_per_s: float
    converge_timeout_s: float
    request_timeout_s: float = 3.0


@click.command("partition")
@click.option("--sites", "count", default=3, show_default=True)
@click.option("--cut-site", default="", help="The site to cut off (default: the last one).")
@click.option("--before-s", default=10.0, show_default=True, help="Load before the cut.")
@click.option("--cut-s", default=30.0, show_default=True, help="How long the site stays cut off.")
@click.option("--after-s", default=10.0, show_default=True, help="Load after the heal.")
@click.option("--rate", default=2.0, show_default=True, help="Client iterations per second per site.")
@click.option("--converge-timeout-s", default=300.0, show_default=True)
@click.option("--rtt-scale", default=1.0, show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@cassandra_address_base("127.0.0.71")
def partition(
    count: int,
    cut_site: str,
    before_s: float,
    cut_s: float,
    after_s: float,
    rate: float,
    converge_timeout_s: float,
    rtt_scale: float,
    directory: Path | None,
    output: str,
    address_base: str,
) -> None:
    """Success rates on each side of a cut, and the time for the index to converge after it heals."""
    sites = default_sites(count)
    if count < 2:
        raise click.BadParameter("a partition needs at least 2 sites", param_hint="--sites")
    names = [s.site for s in sites]
    cut_site = cut_site or names[-1]
    if cut_site not in names:
        raise click.BadParameter(f"{cut_site!r} is not one of the sites {names}", param_hint="--cut-site")
    for name, value in (("--before-s", before_s), ("--cut-s", cut_s), ("--after-s", after_s)):
        if not 0 < value <= 3600:
            raise click.BadParameter(f"{value} must be in (0, 3600] seconds", param_hint=name)
    if not 0 < rate <= 20:
        raise click.BadParameter(f"{rate} must be in (0, 20] per second", param_hint="--rate")
    plan = Plan(cut_site, before_s, cut_s, after_s, rate, converge_timeout_s)
    root = (directory or state_dir() / "bench-partition").absolute()
    report = asyncio.run(_run(root, sites, rtt_matrix(sites, rtt_scale), plan, address_base))
    root.mkdir(parents=True, exist_ok=True)
    (root / "partition.json").write_text(json.dumps(report, indent=2))
    if output == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
        Console().print(f"raw figures: {root / 'partition.json'}")


async def _run(
    root: Path, sites: Any, rtt: dict[tuple[str, str], float], plan: Plan, address_base: str
) -> dict[str, Any]:
    from localfed.bench.wan_run import start_over_wan, wan_cluster

    async with wan_cluster(root, sites, rtt, address_base) as (wan, points):
        fed = LocalFederation(root / "p2p", sites, points, rtt, keyspace="part_p2p")
        await fed.apply_schema()
        try:
            await start_over_wan(fed, wan)
            return await _cut_under_load(fed, wan, plan)
        finally:
            fed.stop()


async def _cut_under_load(fed: LocalFederation, wan: Any, plan: Plan) -> dict[str, Any]:
    region = next(s.region for s in fed.sites if s.site == plan.cut_site)
    ledger, stop = Ledger(), asyncio.Event()
    clients = {
        s.site: Client([fed.router(s.site)], fed.tokens["acme"], timeout_s=plan.request_timeout_s)
        for s in fed.sites
    }
    total_s = plan.before_s + plan.cut_s + plan.after_s
    bound = int(total_s * plan.rate_per_s) + 1  # bounded in count as well as in time
    tasks = [
        asyncio.create_task(
            drive_site(
                site,
                c,
                ledger,
                rate_per_s=plan.rate_per_s,
                stop=stop,
                max_iterations=bound,
                rng=random.Random(n),
            )
        )
        for n, (site, c) in enumerate(clients.items())
    ]
    try:
        await asyncio.sleep(plan.before_s)
        ledger.phase, ledger.cut_at = "cut", time.monotonic()
        fed.cut(plan.cut_site)
        wan.cut(region)
        await asyncio.sleep(plan.cut_s)
        deleted_before_heal = set(ledger.deleted)
        fed.heal(plan.cut_site)
        wan.heal(region)
        ledger.phase = "after"
        healed = time.monotonic()
        convergence = asyncio.create_task(_converge(fed, ledger, deleted_before_heal, healed, plan))
        await asyncio.sleep(plan.after_s)
        stop.set()
        await asyncio.gather(*tasks)
        converged = await convergence
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for c in clients.values():
            await c.close()
    side_of = {s.site: "cut side" if s.site == plan.cut_site else "rest" for s in fed.sites}
    return {
        "cut_site": plan.cut_site,
        "plan": plan.__dict__,
        "phases": summarize(ledger.outcomes, side_of),
        "convergence": converged,
    }


async def _converge(
    fed: LocalFederation, ledger: Ledger, deleted_before_heal: set[str], healed: float, plan: Plan
) -> dict[str, Any]:
    """Polls every router's listing (index data only: the replicated table, no live calls) until each
    lists every instance acknowledged before the heal and not deleted since, and none deleted before it."""
    admins = {s.site: Client([fed.router(s.site)], fed.tokens["acme"], timeout_s=10) for s in fed.sites}
    missing: dict[str, int] = {}
    try:
        while time.monotonic() - healed < plan.converge_timeout_s:
            expected = ledger.acked_before_heal - ledger.deleted
            missing = {}
            for site, client in admins.items():
                try:
                    listed = await _listed_ids(client)
                except CellfedError:
                    missing[site] = -1  # that router did not answer this round: ask again
                    continue
                lacking = len(expected - listed) + len(deleted_before_heal & listed)
                if lacking:
                    missing[site] = lacking
            if not missing:
                return {
                    "converged": True,
                    "seconds_after_heal": round(time.monotonic() - healed, 2),
                    "instances_checked": len(expected),
                }
            await asyncio.sleep(0.5)
    finally:
        for c in admins.values():
            await c.close()
    return {"converged": False, "timeout_s": plan.converge_timeout_s, "still_differing_by_router": missing}


async def _listed_ids(client: Client) -> set[str]:
    ids: set[str] = set()
    token = ""
    for _ in range(100):  # bounded: 100 pages of 500
        page = await client.list(page_size=500, page_token=token, skip_enrichment=True)
        ids.update(i.instance_id for i in page.instances)
        token = page.next_page_token
        if not token:
            return ids
    raise RuntimeError("listing longer than 50,000 instances")


def print_report(report: dict[str, Any]) -> None:
    console = Console(width=150)
    table = Table(title=f"Partition of {report['cut_site']}: success rate per side and phase")
    for column in ("phase", "side: operation", "n", "ok", "success", "stale answers", "p50 ms", "errors"):
        table.add_column(column)
    for phase in ("before", "cut", "after"):
        for key, row in report["phases"].get(phase, {}).items():
            table.add_row(
                phase, key, str(row["n"]), str(row["ok"]), f"{row['success_rate']:.1%}", str(row["stale"]),
                str(row["p50_ms"]), ", ".join(f"{k} {v}" for k, v in row["errors"].items()) or "-",
            )  # fmt: skip
    console.print(table)
    c = report["convergence"]
    if c["converged"]:
        console.print(
            f"index converged {c['seconds_after_heal']} s after the heal ({c['instances_checked']} instances)"
        )
    else:
        console.print(
            f"[red]index NOT converged within {c['timeout_s']} s[/red]: {c['still_differing_by_router']}"
        )

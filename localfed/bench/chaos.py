"""`cellfed bench chaos`: a local federation under a bounded mixed load from every site while a nemesis
kills, pauses and cuts its parts, then an invariant check of every acknowledgement against every source
of truth (DESIGN principle 7, issue 15).

The federation runs over the emulated WAN with one Cassandra DC per region, every process supervised
(killed ones come back with the same ports, localfed.supervisor). The nemesis follows a plan drawn from
`--seed` (localfed.bench.chaos_nemesis); after the load stops, everything is repaired and the checker
(localfed.bench.chaos_check) runs until the sources agree or `--settle-timeout-s` passes. Output: tables,
a JSON report (--json) and a timeline chart (--chart)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from cellapi.client import Client
from localfed.bench import chaos_check, chaos_nemesis
from localfed.bench.chaos_collect import snapshot
from localfed.bench.chaos_load import TENANT, Recorder, drive_site
from localfed.bench.chaos_model import Fault, Snapshot
from localfed.bench.chaos_nemesis import Planned, Targets
from localfed.bench.chaos_report import draw_timeline, print_report
from localfed.bench.options import cassandra_address_base
from localfed.cassandra_wan import CassandraWan
from localfed.launcher import LocalFederation
from localfed.paths import state_dir
from localfed.sites import SiteSpec, default_sites, rtt_matrix
from localfed.supervision import Phase

BACK_UP_DEADLINE_S = 120.0  # a killed component not restarted by then ends its fault anyway (and shows)


@dataclass(frozen=True)
class Plan:
    duration_s: float
    nemesis_interval_s: float
    seed: int
    rate_per_s: float
    kinds: tuple[str, ...]
    settle_timeout_s: float
    stuck_after_s: float
    request_timeout_s: float = 5.0


@click.command("chaos")
@click.option(
    "--duration", "duration_s", default=600.0, show_default=True, help="Seconds of load and faults."
)
@click.option(
    "--nemesis-interval", "interval_s", default=20.0, show_default=True, help="Seconds between faults."
)
@click.option("--seed", default=1, show_default=True, help="Seeds the nemesis plan and the load's choices.")
@click.option("--rate", default=1.0, show_default=True, help="Operations per second per site.")
@click.option("--kinds", default="kill,pause,cut", show_default=True, help="Nemesis kinds, comma-separated.")
@click.option("--sites", "count", default=3, show_default=True)
@click.option("--rtt-scale", default=0.5, show_default=True)
@click.option(
    "--settle-timeout-s", default=180.0, show_default=True, help="Bound on waiting for convergence."
)
@click.option("--stuck-after-s", default=60.0, show_default=True, help="BUILDING/DELETING longer is stuck.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@cassandra_address_base("127.0.0.81")
def chaos(
    duration_s: float,
    interval_s: float,
    seed: int,
    rate: float,
    kinds: str,
    count: int,
    rtt_scale: float,
    settle_timeout_s: float,
    stuck_after_s: float,
    directory: Path | None,
    json_path: Path | None,
    chart: Path | None,
    output: str,
    address_base: str,
) -> None:
    """Lost, duplicate, orphaned and stuck instances under faults; success per site; time to recover."""
    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip())
    unknown = sorted(set(chosen) - set(chaos_nemesis.KINDS))
    if unknown or not chosen:
        raise click.BadParameter(
            f"{unknown or kinds!r}: known kinds are {sorted(chaos_nemesis.KINDS)}", param_hint="--kinds"
        )
    for name, value, low, high in (
        ("--duration", duration_s, 10, 24 * 3600),
        ("--nemesis-interval", interval_s, 2, 3600),
        ("--rate", rate, 0.05, 20),
        ("--settle-timeout-s", settle_timeout_s, 1, 3600),
    ):
        if not low <= value <= high:
            raise click.BadParameter(f"{value} must be in [{low}, {high}]", param_hint=name)
    sites = default_sites(count)
    plan = Plan(duration_s, interval_s, seed, rate, chosen, settle_timeout_s, stuck_after_s)
    root = (directory or state_dir() / "bench-chaos").absolute()
    report, ops = asyncio.run(_run(root, sites, rtt_matrix(sites, rtt_scale), plan, address_base))
    json_path = json_path or root / "chaos.json"
    chart = chart or root / "chaos.png"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    draw_timeline(ops, report["faults"], [s.site for s in sites], chart)
    if output == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
        Console().print(f"report: {json_path}; timeline: {chart}")


async def _run(
    root: Path, sites: Sequence[SiteSpec], rtt: dict[tuple[str, str], float], plan: Plan, address_base: str
) -> tuple[dict[str, Any], list[Any]]:
    from localfed.bench.wan_run import start_over_wan, wan_cluster

    async with wan_cluster(root, sites, rtt, address_base) as (wan, points):
        fed = LocalFederation(root / "federation", tuple(sites), points, rtt, keyspace="chaos")
        fed.supervise_cassandra(root / "cassandra")
        try:
            await fed.apply_schema()
            await start_over_wan(fed, wan)
            return await _under_chaos(fed, wan, plan)
        finally:
            fed.stop()  # supervision first, then every process (the Cassandra nodes too)


def targets_of(fed: LocalFederation) -> Targets:
    site_of_region = {s.region: s.site for s in fed.sites}
    components = {}
    for name in fed.procs:
        role, _, rest = name.partition(":")
        if role == "cassandra":
            components[name] = site_of_region[rest]
        elif role == "agent":
            components[name] = rest.rpartition("-")[0]
        else:
            components[name] = rest
    return Targets(components, tuple(s.site for s in fed.sites))


async def _under_chaos(
    fed: LocalFederation, wan: CassandraWan, plan: Plan
) -> tuple[dict[str, Any], list[Any]]:
    rng = random.Random(plan.seed)
    planned = chaos_nemesis.plan(
        rng, targets_of(fed), duration_s=plan.duration_s, interval_s=plan.nemesis_interval_s, kinds=plan.kinds
    )
    began = time.monotonic()
    rec = Recorder(lambda: time.monotonic() - began)
    names = [s.site for s in fed.sites]
    clients = {  # own router first, then the others: the SDK fails over in this order
        site: Client(
            [fed.router(site), *(fed.router(o) for o in names if o != site)],
            fed.tokens[TENANT],
            timeout_s=plan.request_timeout_s,
        )
        for site in names
    }
    faults: list[Fault] = []
    try:
        load = [
            drive_site(
                site,
                client,
                rec,
                rate_per_s=plan.rate_per_s,
                until=plan.duration_s,
                max_ops=int(plan.duration_s * plan.rate_per_s) + 1,
                rng=random.Random(plan.seed * 1000 + n),
            )
            for n, (site, client) in enumerate(clients.items())
        ]
        await asyncio.gather(*load, _nemesis(fed, wan, planned, rec.clock, faults))
    finally:
        await _repair_everything(fed, wan)
        for client in clients.values():
            await client.close()
    settle_began = time.monotonic()
    last, rounds = await _settle(fed, rec, plan)
    settled_s = round(time.monotonic() - settle_began, 1)
    report = chaos_check.summary(rec.ledger(), faults, last, plan.stuck_after_s)
    counts = report["counts"]
    report["plan"] = asdict(plan)
    report["settle"] = {
        "converged": counts["orphaned"] == counts["stuck"] == counts["unreadable"] == 0,
        "seconds": settled_s,
        "rounds": rounds,
    }
    report["restarts"] = {name: w.restarts for name, w in sorted(fed.supervisor.watches().items())}
    return report, list(rec.ops)


# --- the nemesis's edge: how each kind is injected and repaired ------------------------------------------

Injector = Callable[[LocalFederation, CassandraWan, Planned, Callable[[], float]], Awaitable[None]]


async def _kill(fed: LocalFederation, wan: CassandraWan, p: Planned, clock: Callable[[], float]) -> None:
    """SIGKILL; over when the supervisor has it running again."""
    before = fed.supervisor.watches()[p.target].restarts
    fed.signal(p.target, signal.SIGKILL)
    deadline = time.monotonic() + BACK_UP_DEADLINE_S
    while time.monotonic() < deadline:
        w = fed.supervisor.watches()[p.target]
        if w.restarts > before and w.phase == Phase.RUNNING:
            return
        await asyncio.sleep(0.2)


async def _pause(fed: LocalFederation, wan: CassandraWan, p: Planned, clock: Callable[[], float]) -> None:
    """SIGSTOP, then SIGCONT after the hold: a process that hangs (GC pause, swapped out) and comes back."""
    fed.signal(p.target, signal.SIGSTOP)
    try:
        await asyncio.sleep(p.hold_s)
    finally:
        fed.signal(p.target, signal.SIGCONT)


async def _cut(fed: LocalFederation, wan: CassandraWan, p: Planned, clock: Callable[[], float]) -> None:
    """Every WAN link of the site drops (its router's and cell's paths, its Cassandra DC's), then heals."""
    region = next(s.region for s in fed.sites if s.site == p.target)
    fed.cut(p.target)
    wan.cut(region)
    try:
        await asyncio.sleep(p.hold_s)
    finally:
        fed.heal(p.target)
        wan.heal(region)


# FENCE-HOST HOOK: "fence" joins here (and in chaos_nemesis.KINDS) once host leases exist.
INJECTORS: dict[str, Injector] = {"kill": _kill, "pause": _pause, "cut": _cut}


async def _nemesis(
    fed: LocalFederation,
    wan: CassandraWan,
    planned: list[Planned],
    clock: Callable[[], float],
    faults: list[Fault],
) -> None:
    for p in planned:
        await asyncio.sleep(max(0.0, p.at - clock()))
        start = clock()
        try:
            await INJECTORS[p.kind](fed, wan, p, clock)
        finally:
            faults.append(Fault(p.kind, p.target, p.site, round(start, 3), round(clock(), 3)))


async def _repair_everything(fed: LocalFederation, wan: CassandraWan) -> None:
    """Whatever the nemesis left (a run interrupted mid-fault): every process continued, every cut healed."""
    for name, proc in list(fed.procs.items()):
        if proc.poll() is None:
            fed.signal(name, signal.SIGCONT)
    for s in fed.sites:
        fed.heal(s.site)
        wan.heal(s.region)


async def _settle(fed: LocalFederation, rec: Recorder, plan: Plan) -> tuple[Snapshot, int]:
    """Checks until nothing is orphaned, stuck or unreadable (or the bound passes); the last snapshot.
    Lost and duplicate instances never heal by waiting, so they do not hold the settle up."""
    from localfed.view import wait_ready

    deadline = time.monotonic() + plan.settle_timeout_s
    ledger, rounds = rec.ledger(), 0
    with contextlib.suppress(TimeoutError):  # the checks below say what is wrong
        await wait_ready(fed, timeout_s=max(1.0, deadline - time.monotonic()))
    while True:
        rounds += 1
        last = await snapshot(fed, fed.tokens[TENANT])
        defects = chaos_check.check(ledger, last, stuck_after_s=plan.stuck_after_s)
        if (
            not (defects["orphaned"] or defects["stuck"] or defects["unreadable"])
            or time.monotonic() > deadline
        ):
            return last, rounds
        await asyncio.sleep(2.0)

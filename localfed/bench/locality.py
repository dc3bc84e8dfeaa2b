"""`cellfed bench locality`: the design against the shapes it replaces, same code, same machine, one run.

One Cassandra DC per region behind the emulated WAN (localfed.cassandra_wan), then for each mode a fresh
federation over it and the same workload from a client at each site (localfed.workload):
- p2p: a router per site, global keyspace at LOCAL_* levels (the design);
- central: one top router at the first site that every client crosses the WAN to reach (Nova cells v2);
- sync: p2p routers but global writes at EACH_QUORUM and reads at QUORUM (Galera-style replication).
Prints p50/p99 per client site and operation per mode with each mode's ratio to p2p; writes the figures
as JSON and a PNG chart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from localfed.bench.options import cassandra_address_base
from localfed.launcher import LocalFederation
from localfed.paths import state_dir
from localfed.sites import default_sites, rtt_matrix
from localfed.workload import Sample
from localfed.workload import summarize as workload_summary

MODES = ("p2p", "central", "sync")
OPS = ("create", "get (own site)", "get (other site)", "list", "list (index only)", "delete")


@click.command("locality")
@click.option("--sites", "count", default=3, show_default=True)
@click.option(
    "--per-site", default=5, show_default=True, help="Instances each site's client creates per mode."
)
@click.option("--rtt-scale", default=1.0, show_default=True)
@click.option("--modes", default=",".join(MODES), show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG chart path (default <dir>/locality.png).",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@cassandra_address_base("127.0.0.61")
def locality(
    count: int,
    per_site: int,
    rtt_scale: float,
    modes: str,
    directory: Path | None,
    chart: Path | None,
    output: str,
    address_base: str,
) -> None:
    """p50/p99 latency per client site, operation and mode (p2p, central, sync), with ratios to p2p."""
    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    if not chosen or any(m not in MODES for m in chosen):
        raise click.BadParameter(f"modes must be some of {', '.join(MODES)}", param_hint="--modes")
    root = (directory or state_dir() / "bench-locality").absolute()
    sites = default_sites(count)
    samples = asyncio.run(_run(root, sites, rtt_matrix(sites, rtt_scale), per_site, chosen, address_base))
    figures = summarize(samples)
    (root / "locality.json").write_text(json.dumps(figures, indent=2))
    chart_path = chart or root / "locality.png"
    draw_chart(figures, chart_path)
    if output == "json":
        click.echo(json.dumps(figures, indent=2))
    else:
        print_table(figures)
        Console().print(f"raw figures: {root / 'locality.json'}; chart: {chart_path}")


async def _run(
    root: Path,
    sites: Any,
    rtt: dict[tuple[str, str], float],
    per_site: int,
    modes: list[str],
    address_base: str,
) -> dict[str, list[Sample]]:
    from localfed.bench.wan_run import start_over_wan, wan_cluster
    from localfed.workload import run_workload

    out: dict[str, list[Sample]] = {}
    async with wan_cluster(root, sites, rtt, address_base) as (wan, points):
        feds = {m: LocalFederation(root / m, sites, points, rtt, keyspace=f"loc_{m}", mode=m) for m in modes}
        for fed in feds.values():  # schemas first, at loopback speed: DDL is set-up, not what is measured
            await fed.apply_schema()
        for mode, fed in feds.items():
            try:
                await start_over_wan(fed, wan)
                # Discarded: the first requests of a run pay for cold JVM code paths and fresh channels,
                # which would fall on whichever mode happens to run first.
                await run_workload(fed, 1)
                out[mode] = await run_workload(fed, per_site)
            finally:
                fed.stop()
    return out


def summarize(by_mode: dict[str, list[Sample]]) -> dict[str, Any]:
    """{mode: {site: {op: {n, p50_ms, p99_ms, ...}}}}: the workload's own summary, keyed for JSON."""
    out: dict[str, Any] = {}
    for mode, samples in by_mode.items():
        for (site, op), row in workload_summary(samples).items():
            out.setdefault(mode, {}).setdefault(site, {})[op] = row
    return out


def print_table(figures: dict[str, Any]) -> None:
    modes = list(figures)
    table = Table(title="Latency by client site and operation: p50 / p99 ms (x ratio of p50 to p2p)")
    table.add_column("client at")
    table.add_column("operation")
    for mode in modes:
        table.add_column(mode)
    base = figures.get("p2p", {})
    for site in sorted(next(iter(figures.values()))):
        for op in OPS:
            cells = []
            for mode in modes:
                f = figures[mode].get(site, {}).get(op)
                if f is None:
                    cells.append("-")
                    continue
                b = base.get(site, {}).get(op)
                ratio = f" (x{f['p50_ms'] / b['p50_ms']:.1f})" if b and mode != "p2p" and b["p50_ms"] else ""
                cells.append(f"{f['p50_ms']} / {f['p99_ms']}{ratio}")
            table.add_row(site, op, *cells)
    Console(width=160).print(table)


def draw_chart(figures: dict[str, Any], path: Path) -> None:
    """Grouped bars: p50 latency per (site, operation), one bar per mode, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(figures)
    sites = sorted(next(iter(figures.values())))
    ops = ("create", "get (own site)", "list (index only)")
    labels = [f"{site}\n{op}" for site in sites for op in ops]
    width = 0.8 / max(1, len(modes))
    fig, ax = plt.subplots(figsize=(max(8, len(labels) * 0.9), 5))
    for i, mode in enumerate(modes):
        values = [figures[mode].get(site, {}).get(op, {}).get("p50_ms", 0) for site in sites for op in ops]
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=mode)
    ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(labels))], labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("p50 latency, ms (log scale)")
    ax.set_title("cellfed: latency seen by a client at each site, by federation design")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

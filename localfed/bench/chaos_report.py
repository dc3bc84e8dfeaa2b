"""How a chaos run's report reads: tables on stdout and a timeline chart (PNG) of every operation's
outcome per site with the faults laid over it. Presentation only: the figures come from chaos_check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from localfed.bench.chaos_model import Op


def print_report(report: dict[str, Any]) -> None:
    console = Console(width=160)
    plan = report["plan"]
    console.print(
        f"[bold]chaos: {plan['duration_s']:.0f}s of load at {len(report['success'])} sites, "
        f"{len(report['faults'])} faults (seed {plan['seed']}, "
        f"every {plan['nemesis_interval_s']:.0f}s)[/bold]"
    )
    ops = ", ".join(f"{k} {v}" for k, v in report["operations"].items())
    console.print(
        f"operations: {ops}; acknowledged creates {report['acknowledged_creates']}, "
        f"deletes {report['acknowledged_deletes']}"
    )
    defects = Table(title="Invariants after the settle", min_width=100)
    for column in ("defect", "count", "examples"):
        defects.add_column(column)
    for kind, count in report["counts"].items():
        examples = "; ".join(report["defects"][kind][:3])
        defects.add_row(kind, str(count) if not count else f"[red]{count}[/red]", examples or "-")
    console.print(defects)
    c = report["checked"]
    console.print(
        f"checked: {c['live_instances']} live instances, {c['domains']} domains, "
        f"the index in {c['index_dcs']} DCs, {c['listings']} routers' listings, {c['cells']} cells' records"
    )
    settle = report["settle"]
    console.print(
        f"settle: {'converged' if settle['converged'] else '[red]NOT converged[/red]'} "
        f"{settle['seconds']}s after the load stopped ({settle['rounds']} checks)"
    )
    success = Table(title="Success per site, by whether the site was under a fault", min_width=100)
    for column in ("site", "side", "n", "ok", "success", "errors"):
        success.add_column(column)
    for site, sides in sorted(report["success"].items()):
        for side in ("no fault", "under fault"):
            row = sides.get(side)
            if row:
                errors = ", ".join(f"{k} {v}" for k, v in row["errors"].items()) or "-"
                success.add_row(site, side, str(row["n"]), str(row["ok"]), f"{row['ratio']:.1%}", errors)
    console.print(success)
    recovery = Table(
        title="Time to recover: how long after a fault began its site went on failing", min_width=100
    )
    for column in ("fault", "n", "median s", "max s"):
        recovery.add_column(column)
    for kind, row in report["recovery"].items():
        recovery.add_row(kind, str(row["faults"]), str(row["median_s"]), str(row["max_s"]))
    console.print(recovery)
    restarts = {k: v for k, v in report["restarts"].items() if v}
    console.print(f"supervisor restarts: {restarts or 'none'}")


def draw_timeline(ops: list[Op], faults: list[dict[str, Any]], sites: list[str], path: Path) -> None:
    """One row per site: each operation a dot at its start (green served, red failed), each fault a
    band over the row of the site it hit, labelled with its kind and target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(16, 1.2 + 1.3 * len(sites)))
    rows = {site: n for n, site in enumerate(sites)}
    colors = {"kill": "tab:red", "pause": "tab:orange", "cut": "tab:purple"}
    for n, f in enumerate(faults):
        y = rows.get(f["site"])
        if y is None:
            continue
        ax.barh(
            y,
            f["end"] - f["start"],
            left=f["start"],
            height=0.8,
            color=colors.get(f["kind"], "tab:gray"),
            alpha=0.25,
        )
        # alternating heights: labels of faults close in time do not print over each other
        ax.text(f["start"], y + (0.32 if n % 2 else 0.44), f"{f['kind']} {f['target']}", fontsize=6)
    for ok, color, marker, dy in ((True, "tab:green", ".", -0.1), (False, "tab:red", "x", 0.1)):
        xs = [op.started for op in ops if op.ok == ok and op.site in rows]
        ys = [rows[op.site] + dy for op in ops if op.ok == ok and op.site in rows]
        ax.scatter(xs, ys, s=8, c=color, marker=marker, label="served" if ok else "failed", linewidths=0.8)
    ax.set_yticks(range(len(sites)), sites)
    ax.set_xlabel("seconds since the load started")
    ax.set_title("cellfed chaos: client operations per site (green served, red failed) and faults (bands)")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

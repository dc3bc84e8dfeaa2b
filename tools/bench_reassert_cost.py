"""What the cell's full re-assert costs: rows and bytes per minute per cell, from its own counters.

Runs one in-process cell controller (the real composition, `cell.app.start_cell`) over in-memory cell
records holding --instances live instances, against the in-memory store or, with --contact-points, a real
Cassandra keyspace, for --seconds, and prints cellfed_cell_reassert_{rows,bytes}_total per minute and the
sweep durations. Bounded: at most 20,000 instances and 600 s.

    .venv/bin/python tools/bench_reassert_cost.py --instances 2000 --period-s 20 --seconds 45
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import click

from fedlib.catalog import FLAVORS
from fedlib.ids import new_instance_id


async def _run(instances: int, period_s: float, rate: float, seconds: float, contact_points: str) -> None:
    from cell.app import start_cell
    from cell.controller import ControllerSettings
    from cell.lifecycle import Instance, State
    from cell.metrics import CellMetrics
    from cell.records import CellInstance, InstanceSpec, to_row
    from replication.memory import ManualClock, MemoryStore
    from replication.memory_cell import MemoryCellRecords

    cell_id, now = "bench-c1", int(time.time() * 1000)
    records = MemoryCellRecords()
    for k in range(instances):
        iid = str(new_instance_id(cell_id, now - k, k))
        spec = InstanceSpec(iid, f"tenant-{k % 20}", f"vm-{k:05d}", FLAVORS["m1.small"], "debian-12", now - k)
        await records.put_instance(
            to_row(CellInstance(spec, Instance(iid, None, State.STOPPED, 2, now), False))
        )
    session = None
    store: Any
    if contact_points:
        from replication.cql.migrate import apply_schema, read_topology
        from replication.cql.session import connect
        from replication.cql.store import CqlStore

        session = await asyncio.to_thread(connect, contact_points.split(","), "eu-west")
        ks = f"bench_reassert_{uuid.uuid4().hex[:8]}"
        topo = await read_topology(session)
        await apply_schema(session, global_keyspace=ks, dcs=dict.fromkeys(topo, 1), cells=[], known_dcs=topo)
        store = CqlStore(session, keyspace=ks, region="eu-west")
    else:
        store = MemoryStore(ManualClock().now_ms, region="eu-west")
    settings = ControllerSettings(
        cell_id, "par1", "eu-west", reassert_period_s=period_s, reassert_rows_per_s=rate
    )
    metrics = CellMetrics(cell_id)
    running = await start_cell(settings, records, store, listen="127.0.0.1:0", metrics=metrics)
    await running.publisher.drained(120.0)  # the start-up republish is not the re-assert
    r = metrics.registry

    def counter(name: str) -> float:
        return r.get_sample_value(name, {"cell": cell_id}) or 0.0

    rows0, bytes0, t0 = (
        counter("cellfed_cell_reassert_rows_total"),
        counter("cellfed_cell_reassert_bytes_total"),
        time.monotonic(),
    )
    await asyncio.sleep(seconds)
    minutes = (time.monotonic() - t0) / 60
    rows, size = (
        counter("cellfed_cell_reassert_rows_total") - rows0,
        counter("cellfed_cell_reassert_bytes_total") - bytes0,
    )
    sweeps = r.get_sample_value("cellfed_cell_reassert_sweep_duration_seconds_count", {"cell": cell_id}) or 0
    total = r.get_sample_value("cellfed_cell_reassert_sweep_duration_seconds_sum", {"cell": cell_id}) or 0
    await running.stop()
    if session is not None:
        await session.execute(f"DROP KEYSPACE {ks}", timeout_s=60.0)
        await session.aclose()
    report = {
        "instances": instances,
        "period_s": period_s,
        "rate_rows_per_s": rate,
        "store": "cassandra" if contact_points else "memory",
        "rows_per_minute": round(rows / minutes),
        "bytes_per_minute": round(size / minutes),
        "bytes_per_row": round(size / rows, 1) if rows else None,
        "sweeps_finished": int(sweeps),
        "mean_sweep_s": round(total / sweeps, 1) if sweeps else None,
    }
    print(json.dumps(report, indent=2))


@click.command()
@click.option("--instances", default=2000, show_default=True)
@click.option("--period-s", default=20.0, show_default=True)
@click.option("--rate", default=2000.0, show_default=True, help="Rate limit, rows/s.")
@click.option("--seconds", default=45.0, show_default=True)
@click.option("--contact-points", default="", help="A real Cassandra (DC eu-west); default: in-memory store.")
def main(instances: int, period_s: float, rate: float, seconds: float, contact_points: str) -> None:
    asyncio.run(_run(min(instances, 20_000), period_s, rate, min(seconds, 600.0), contact_points))


if __name__ == "__main__":
    main()

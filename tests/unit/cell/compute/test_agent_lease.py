"""The agent's side of the host lease, on a fake monotonic clock: timed from the heartbeat's send, fenced
(guests powered off, nothing started) once it ends, whatever the stream does; under a new lease stale
copies go before the first report. The agent runs against an in-memory hypervisor; nothing sleeps."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from cellfed.v1 import agent_pb2

from cell.compute.agent import AgentSettings, ComputeAgent, Outbound
from cell.compute.domain_spec import InstanceMetadata
from cell.compute.domain_xml import domain_name, parse_metadata
from cell.compute.domains import HostLayout, instance_uuid
from cell.compute.hypervisor import ERR_NO_DOMAIN, DomainInfo, DomainState, HostCapacity, LibvirtCallError
from cell.compute.lease import AgentLease, to_fence
from cell.compute.metrics import AgentMetrics
from fedlib.flavor import Flavor
from fedlib.ids import new_instance_id
from fedlib.states import PowerState
from fedrpc.flavors import flavor_to_proto

CELL = "cell-a"
L, F = 10_000, 10_000
IDS = [str(new_instance_id(CELL, 1_000 + n, 7 * n + 1)) for n in range(3)]


# -- the pure lease ---------------------------------------------------------------------------------
def test_the_lease_runs_from_the_send_of_the_renewed_heartbeat() -> None:
    lease = AgentLease.at_start(0, L, F)
    lease.hello_sent(100)
    assert not lease.holds(100)  # no grant yet: nothing is acted on
    assert lease.granted(42, 0, L, F) and lease.holds(100 + L) and not lease.holds(100 + L + 1)
    seq = lease.next_heartbeat(5_000)
    assert lease.granted(42, seq, L, F) and lease.valid_until_ms == 5_000 + L
    assert not lease.granted(41, seq, L, F)  # another generation's renewal extends nothing
    assert not lease.granted(42, 999, L, F)  # nor one for a heartbeat never sent
    old = lease.next_heartbeat(6_000)
    lease.next_heartbeat(7_000)
    lease.granted(42, old, L, F)
    assert lease.valid_until_ms == 6_000 + L  # a late renewal of an older heartbeat never shortens it


def test_fencing_is_due_once_the_lease_is_over_and_only_once() -> None:
    lease = AgentLease.at_start(0, L, F)  # a fresh agent allows itself one lease to reach its controller
    assert not lease.must_fence(L) and lease.must_fence(L + 1)
    lease.fenced = True
    assert not lease.must_fence(L + 5)
    lease.hello_sent(L + 10)
    lease.granted(7, 0, L, F)
    assert not lease.fenced and lease.holds(L + 10)
    lease.lost()  # refused by the controller: over now, whatever the clock says
    assert not lease.holds(L + 11) and lease.must_fence(L + 11)


def test_only_this_cells_guests_that_are_on_are_fenced() -> None:
    doms = [("a", "i1", CELL, PowerState.RUNNING), ("b", "i2", CELL, PowerState.PAUSED),
            ("c", "i3", CELL, PowerState.SHUTOFF), ("d", "i4", "cell-b", PowerState.RUNNING),
            ("e", None, None, PowerState.RUNNING)]  # fmt: skip
    assert [t.name for t in to_fence(doms, CELL)] == ["a", "b"]


# -- the agent, on a fake clock ---------------------------------------------------------------------
class FakeHypervisor:
    """Domains in a dict, with the calls the agent makes; thread-safe like the real one."""

    def __init__(self) -> None:
        self.doms: dict[str, tuple[DomainState, InstanceMetadata]] = {}
        self._lock = threading.Lock()

    def _missing(self, name: str) -> LibvirtCallError:
        return LibvirtCallError("virDomainLookupByName", f"no domain {name}", code=ERR_NO_DOMAIN)

    def define(self, domain_xml: str, state: DomainState = DomainState.SHUTOFF) -> DomainInfo:
        meta = parse_metadata(domain_xml)
        with self._lock:
            self.doms[domain_name(meta.instance_id)] = (state, meta)
        return self.domain(domain_name(meta.instance_id))

    def define_and_start(self, domain_xml: str) -> DomainInfo:
        return self.define(domain_xml, DomainState.RUNNING)

    def _set(self, name: str, state: DomainState) -> None:
        with self._lock:
            if name not in self.doms:
                raise self._missing(name)
            self.doms[name] = (state, self.doms[name][1])

    def start(self, name: str) -> None:
        self._set(name, DomainState.RUNNING)

    def destroy(self, name: str) -> None:
        self._set(name, DomainState.SHUTOFF)

    def shutdown(self, name: str, timeout_s: float = 30.0) -> bool:
        self._set(name, DomainState.SHUTOFF)
        return True

    def reboot(self, name: str) -> None:
        self._set(name, DomainState.RUNNING)

    def undefine(self, name: str) -> None:
        self.delete(name)

    def delete(self, name: str) -> bool:
        with self._lock:
            return self.doms.pop(name, None) is not None

    def domain(self, name: str) -> DomainInfo:
        with self._lock:
            if name not in self.doms:
                raise self._missing(name)
            state, meta = self.doms[name]
        return DomainInfo(name, instance_uuid(meta.instance_id), state, meta)

    def list_domains(self) -> list[DomainInfo]:
        with self._lock:
            names = sorted(self.doms)
        return [self.domain(n) for n in names]

    def capacity(self) -> HostCapacity:
        return HostCapacity("fake", 8, 16_384, "fake", 1000)

    def subscribe(self, callback: object) -> int:
        return 1

    def unsubscribe(self, handle: int) -> None:
        pass

    def running(self) -> dict[str, int]:
        """instance id -> generation of every running domain."""
        return {m.instance_id: m.generation for s, m in self.doms.values() if s is DomainState.RUNNING}


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000

    def __call__(self) -> int:
        return self.ms


def desired(
    *entries: tuple[str, int], superseded: tuple[tuple[str, int], ...] = ()
) -> agent_pb2.ControllerMessage:
    out = agent_pb2.DesiredState()
    for iid, generation in entries:
        d = out.domains.add(power=agent_pb2.RUNNING)
        d.spec.CopyFrom(agent_pb2.SpawnDomain(instance_id=iid, tenant="acme", image="debian-12",
                                              flavor=flavor_to_proto(Flavor("m1.small", 1, 512, 5)),
                                              spec_version=1, cell=CELL, generation=generation))  # fmt: skip
    for iid, generation in superseded:
        out.superseded.add(instance_id=iid, generation=generation)
    return agent_pb2.ControllerMessage(desired=out)


def grant(generation: int, seq: int = 0) -> agent_pb2.ControllerMessage:
    return agent_pb2.ControllerMessage(
        lease=agent_pb2.Lease(generation=generation, seq=seq, lease_ms=L, fence_ms=F)
    )


Rig = tuple[ComputeAgent, "FakeHypervisor", "Clock"]


@pytest.fixture
def agent(tmp_path: Path) -> Rig:
    hv, clock = FakeHypervisor(), Clock()
    settings = AgentSettings("h1", CELL, "127.0.0.1:1", lease_s=L / 1000, fence_s=F / 1000)
    layout = HostLayout(tmp_path, "test")
    return ComputeAgent(settings, hv, layout, AgentMetrics("h1"), clock_ms=clock), hv, clock


async def settle(a: ComputeAgent) -> None:
    """Lets the background reconcile passes the agent started finish (no sleeps: await them)."""
    while a._tasks:
        await asyncio.gather(*list(a._tasks))


async def connected(a: ComputeAgent, generation: int) -> Outbound:
    outbound: Outbound = asyncio.Queue()
    a.lease.hello_sent(a._now())
    a._ready.clear()
    assert await a._handle(grant(generation), outbound)
    return outbound


async def test_guests_run_under_a_lease_and_are_powered_off_when_it_ends(agent: Rig) -> None:
    a, hv, clock = agent
    out = await connected(a, 5)
    await a._handle(desired((IDS[0], 1), (IDS[1], 1)), out)
    await settle(a)
    assert hv.running() == {IDS[0]: 1, IDS[1]: 1}
    clock.ms += L  # the last instant of the lease: nothing happens yet
    await a.reconcile_once()
    assert len(hv.running()) == 2
    clock.ms += 1  # cut off: no renewal came
    await a.reconcile_once()
    assert hv.running() == {} and len(hv.doms) == 2  # powered off, still defined
    await a._handle(desired((IDS[0], 1)), out)  # a desired set with no lease behind it is not acted on
    await settle(a)
    await a.reconcile_once()
    assert hv.running() == {}


async def test_heartbeats_renew_it_from_their_send_not_the_grants_arrival(agent: Rig) -> None:
    a, hv, clock = agent
    out = await connected(a, 5)
    await a._handle(desired((IDS[0], 1)), out)
    await settle(a)
    clock.ms += 8_000
    beat = await a._heartbeat()
    assert beat.lease_generation == 5
    clock.ms += 5_000  # the renewal arrives late: the lease runs from the send all the same
    await a._handle(grant(5, beat.seq), out)
    assert a.lease.valid_until_ms == 1_000 + 8_000 + L
    clock.ms = 1_000 + 8_000 + L + 1
    await a.reconcile_once()
    assert hv.running() == {}


async def test_a_refused_lease_fences_at_once_and_ends_the_stream(agent: Rig) -> None:
    a, hv, _ = agent
    out = await connected(a, 5)
    await a._handle(desired((IDS[0], 1)), out)
    await settle(a)
    lost = agent_pb2.ControllerMessage(lease_lost=agent_pb2.LeaseLost(reason="revoked"))
    assert not await a._handle(lost, out)
    assert hv.running() == {} and a.lease.fenced


async def test_a_frozen_agent_fences_on_waking_before_it_acts(agent: Rig) -> None:
    """SIGSTOP then SIGCONT: the first thing the watchdog sees is a lease long over."""
    a, hv, clock = agent
    out = await connected(a, 5)
    await a._handle(desired((IDS[0], 1)), out)
    await settle(a)
    beat = await a._heartbeat()  # its renewal is still in flight when the process freezes
    clock.ms += 60_000  # frozen for a minute
    await a.check_lease()  # what the watchdog does first on waking
    assert hv.running() == {} and a.lease.fenced
    await a._handle(grant(5, beat.seq), out)  # the renewal, delivered now, is for a moment long past
    await a.reconcile_once()
    assert hv.running() == {}


async def test_under_a_new_lease_stale_copies_go_before_the_first_report(agent: Rig) -> None:
    a, hv, clock = agent
    out = await connected(a, 5)
    await a._handle(desired((IDS[0], 1), (IDS[1], 1), (IDS[2], 1)), out)
    await settle(a)
    clock.ms += L + 1
    await a.reconcile_once()  # cut off: fenced
    # Meanwhile the operator evacuated IDS[0] elsewhere (generation 2) and IDS[1] came back here (3).
    clock.ms += 30_000
    out = await connected(a, 6)
    assert not a._ready.is_set()  # the heartbeat loop waits: nothing is reported yet
    await a._handle(desired((IDS[1], 3), (IDS[2], 1), superseded=((IDS[0], 2),)), out)
    await settle(a)
    assert a._ready.is_set()
    assert hv.running() == {IDS[1]: 3, IDS[2]: 1}  # the stale copy of IDS[1] rebuilt, IDS[2] booted again
    assert domain_name(IDS[0]) not in hv.doms  # the copy that now lives elsewhere is gone, no grace
    beat = await a._heartbeat()
    assert {d.instance_id: d.generation for d in beat.domains} == {IDS[1]: 3, IDS[2]: 1}

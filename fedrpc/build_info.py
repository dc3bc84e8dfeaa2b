"""The build-info metric of every cellfed process: `cellfed_build_info{version, component, site} 1`.

The Prometheus convention for "which release runs where": a constant 1 whose labels carry the facts, so
`count by (site, version) (cellfed_build_info)` shows a rolling upgrade and `* on (instance)
group_left (version) cellfed_build_info` puts the version on any other series of the same target.

A process that does not know its site (a compute agent knows its host and cell, not its site) leaves
the label off rather than exporting site="": the scrape configuration (localfed.prometheus,
k8s/monitoring) puts the target's site on every series that has none."""

from __future__ import annotations

from importlib import metadata

from prometheus_client import CollectorRegistry, Gauge

METRIC = "cellfed_build_info"
COMPONENTS = ("router", "cell", "agent")


def cellfed_version() -> str:
    """The installed distribution's version ("unknown" when run from a tree that was never installed)."""
    try:
        return metadata.version("cellfed")
    except metadata.PackageNotFoundError:
        return "unknown"


def register_build_info(registry: CollectorRegistry, component: str, site: str) -> Gauge:
    """Adds cellfed_build_info to `registry`, set to 1; `site` may be "" when the process does not know it."""
    if component not in COMPONENTS:
        raise ValueError(f"component {component!r} is not one of {', '.join(COMPONENTS)}")
    labels = ("version", "component", "site") if site else ("version", "component")
    gauge = Gauge(
        METRIC,
        "The cellfed release this process runs (always 1; the facts are in the labels).",
        labels,
        registry=registry,
    )
    gauge.labels(*(cellfed_version(), component, site)[: len(labels)]).set(1)
    return gauge

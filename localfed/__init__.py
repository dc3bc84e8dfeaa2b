"""Tooling that runs cellfed on one machine: the `cellfed` command, a local multi-DC Cassandra, the
federation launcher with emulated WAN, and the benchmarks. Production processes live in cellapi/ and cell/."""

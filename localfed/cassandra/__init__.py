"""A real local multi-DC Apache Cassandra: the npm-shipped 2.1 distribution (`bundle`), node config as
pure data (`node_config`), process management (`cluster`) and the `cellfed cassandra` commands (`cli`)."""

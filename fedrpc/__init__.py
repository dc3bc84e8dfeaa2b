"""The gRPC edge every cellfed process shares: the one table from the error tree to canonical status codes
(with google.rpc details), server bootstrap (health, reflection, message size limits) and client channels.

Handlers raise fedlib errors; only this package turns them into gRPC statuses."""

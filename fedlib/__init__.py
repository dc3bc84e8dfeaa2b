"""Small pieces every cellfed process shares: the error tree, instance ids, validated names.

No I/O and no imports of grpc, cassandra or libvirt: cells and routers both depend on this and on
nothing of each other.
"""

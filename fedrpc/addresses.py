"""A NIC's addresses (fedlib.addresses) on the wire (cellfed.v1.InstanceAddress), for the cell's answers
and the router's answers from the index alike."""

from __future__ import annotations

from cellfed.v1 import common_pb2

from fedlib.addresses import NicAddress


def address_to_proto(a: NicAddress) -> common_pb2.InstanceAddress:
    return common_pb2.InstanceAddress(
        network=a.network, mac=a.mac, ipv4=str(a.ipv4 or ""), ipv6=str(a.ipv6 or "")
    )

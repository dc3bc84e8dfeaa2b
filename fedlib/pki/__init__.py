"""The federation PKI's pure core: identities (SPIFFE-style URIs), building certificates, verifying chains.

No I/O and no clock: keys, certificates and `now` come in, certificates and identities go out. The files
live with their users: the CA directory with the operator tool (cellapi.auth.pki_cli), a component's TLS
files with the process plumbing (fedrpc.tls_files)."""

from fedlib.pki.identity import ROLES, Identity, RegionIdentity, Role, parse, parse_component

__all__ = ["ROLES", "Identity", "RegionIdentity", "Role", "parse", "parse_component"]

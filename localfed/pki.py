"""A federation PKI for a federation on one machine (`cellfed up --tls`, the tests): the product's own
CA tooling (cellapi.auth.pki_dir) run the way an operator would, and each component's files installed in a
directory of its own, as the operator would move them to its host.

`rotate()` replaces every region's CA and re-issues every leaf under it into the same files, each file
renamed over the old one, so running components see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cellapi.auth import pki_dir
from fedlib.pki.identity import Identity, Role
from fedrpc.tls import TlsFiles

CA_DIR = "pki"
HOMES_DIR = "tls"
LEAF_HOURS = 72
REGION_DAYS = 30
ROOT_DAYS = 365


class LocalPki:
    def __init__(self, root: Path, federation: str, regions: set[str]) -> None:
        self.ca_dir, self._homes, self.federation = root / CA_DIR, root / HOMES_DIR, federation
        self._regions = sorted(regions)
        self._issued: dict[Identity, str] = {}  # identity -> its region
        if not (self.ca_dir / pki_dir.ROOT_CERT).exists():
            pki_dir.init(self.ca_dir, federation, _now(), ROOT_DAYS)
        for region in self._regions:
            if not (self.ca_dir / pki_dir.REGIONS / f"{region}.crt").exists():
                pki_dir.issue_region(self.ca_dir, region, _now(), REGION_DAYS)

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / pki_dir.ROOT_CERT

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    def issue(self, region: str, identity: Identity) -> TlsFiles:
        """The component's files (issued afresh each time): a directory of its own under tls/."""
        self._issued[identity] = region
        # A router answers users at the address they dial, as `cellfed pki issue leaf` gives by default.
        dns, ips = (("localhost",), ("127.0.0.1",)) if identity.role is Role.ROUTER else ((), ())
        paths = pki_dir.issue_leaf(self.ca_dir, region, identity, _now(), hours=LEAF_HOURS, dns=dns, ips=ips)
        home = self.home(identity)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        for source in (paths.key, paths.chain, paths.ca):
            temporary = home / f".{source.name}.tmp"
            shutil.copyfile(source, temporary)
            os.chmod(temporary, 0o600)
            os.replace(temporary, home / source.name)
        return TlsFiles.issued(home, identity.file_stem, self.federation, identity.role)

    def home(self, identity: Identity) -> Path:
        return self._homes / identity.file_stem

    def rotate(self) -> None:
        """Every region's CA replaced, then every leaf issued so far re-issued under it, in place."""
        for region in self._regions:
            pki_dir.issue_region(self.ca_dir, region, _now(), REGION_DAYS, rotate=True)
        for identity, region in list(self._issued.items()):
            self.issue(region, identity)


def served_leaf(port: int, client: TlsFiles, host: str = "127.0.0.1") -> bytes:
    """The leaf (DER) a server hands a new connection now, by a plain TLS handshake as `client`: how the
    tests and `bench mtls` see a rotation take effect (grpc's client does not show the server's chain)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # only the certificate is looked at; grpc's clients verify names
    context.load_verify_locations(cafile=str(client.ca))
    context.load_cert_chain(client.cert, client.key)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=5) as raw, context.wrap_socket(raw) as conn:
        der = conn.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    return der


def leaf_on_disk(files: TlsFiles) -> bytes:
    """The leaf (DER) of a component's chain file: what served_leaf should see after a rotation."""
    chain = x509.load_pem_x509_certificates(files.cert.read_bytes())
    return chain[0].public_bytes(serialization.Encoding.DER)


def _now() -> datetime:
    return datetime.now(UTC)

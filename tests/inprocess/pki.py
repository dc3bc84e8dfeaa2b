"""The harness's federation PKI, made with the product's own (cellapi.auth.pki_dir): a root, one
intermediate per region, a leaf per component installed in a directory of its own, and rotation of all of
it in place, the way an operator's tooling would re-issue into running components' files."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from cellapi.auth import pki_dir
from fedlib.pki.identity import Identity, Role
from fedrpc.tls import ClientTls, ReloadingTls, TlsFiles

FEDERATION = "harness"


class HarnessPki:
    def __init__(self, workdir: Path, regions: set[str]) -> None:
        self._ca = workdir / "pki-ca"
        self._homes = workdir / "pki-homes"
        self._regions = sorted(regions)
        self._components: dict[tuple[str, Role, str], tuple[str, ReloadingTls]] = {}
        pki_dir.init(self._ca, FEDERATION, datetime.now(UTC), 30)
        for region in self._regions:
            pki_dir.issue_region(self._ca, region, datetime.now(UTC), 10)

    @property
    def ca_pem(self) -> bytes:
        return (self._ca / "ca.crt").read_bytes()

    def component(self, region: str, site: str, role: Role, cid: str) -> ReloadingTls:
        """The component's reloading material (one per component: issued on first ask)."""
        key = (site, role, cid)
        if key not in self._components:
            files = self._issue(region, Identity(FEDERATION, site, role, cid))
            self._components[key] = (region, ReloadingTls.start(files, recheck_s=0))
        return self._components[key][1]

    def client(self, region: str, site: str, role: Role, cid: str) -> ClientTls:
        return ClientTls(self.component(region, site, role, cid))

    def rotate(self) -> None:
        """Every region's CA replaced, then every component's leaf re-issued under it, in place."""
        for region in self._regions:
            pki_dir.issue_region(self._ca, region, datetime.now(UTC), 10, rotate=True)
        for (site, role, cid), (region, _) in self._components.items():
            self._issue(region, Identity(FEDERATION, site, role, cid))

    def _issue(self, region: str, identity: Identity) -> TlsFiles:
        # Routers also answer to the address users dial (as `cellfed pki issue leaf` gives by default).
        names = (("localhost",), ("127.0.0.1",)) if identity.role is Role.ROUTER else ((), ())
        paths = pki_dir.issue_leaf(
            self._ca, region, identity, datetime.now(UTC), hours=2, dns=names[0], ips=names[1]
        )
        home = self._homes / identity.file_stem
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        for source in (paths.key, paths.chain, paths.ca):
            temporary = home / f".{source.name}.tmp"
            shutil.copyfile(source, temporary)
            os.chmod(temporary, 0o600)
            os.replace(temporary, home / source.name)  # a reader sees the old file or the new one
        return TlsFiles.issued(home, identity.file_stem, FEDERATION, identity.role)

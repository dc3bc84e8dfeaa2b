"""The harness's federation PKI: localfed.pki (the one `cellfed up --tls` uses) with each component's
material loaded once and kept, as its process would keep it, so a test can rotate the files under it."""

from __future__ import annotations

from pathlib import Path

from fedlib.pki.identity import Identity, Role
from fedrpc.tls import ClientTls, ReloadingTls
from localfed.pki import LocalPki

FEDERATION = "harness"


class HarnessPki:
    def __init__(self, workdir: Path, regions: set[str]) -> None:
        self._pki = LocalPki(workdir, FEDERATION, regions)
        self._components: dict[Identity, ReloadingTls] = {}

    @property
    def ca_pem(self) -> bytes:
        return self._pki.ca_pem

    def component(self, region: str, site: str, role: Role, cid: str) -> ReloadingTls:
        """The component's reloading material (issued on first ask, then kept)."""
        identity = Identity(FEDERATION, site, role, cid)
        if identity not in self._components:
            # recheck_s=0: a test rotates and looks at once
            self._components[identity] = ReloadingTls.start(self._pki.issue(region, identity), recheck_s=0)
        return self._components[identity]

    def client(self, region: str, site: str, role: Role, cid: str) -> ClientTls:
        return ClientTls(self.component(region, site, role, cid))

    def rotate(self) -> None:
        self._pki.rotate()

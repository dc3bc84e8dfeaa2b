"""TLS on a gRPC link, with certificates that rotate without a restart.

A component's files (fedrpc.tls_files: chain, key, federation root) are checked at start and watched after:
`ReloadingTls.current()` stats them (cheap) and reloads only when one changed. A rotation that leaves the
files half-written or wrong keeps the last good material and says so in the log once, so a botched
`cellfed pki issue` never takes a serving process down; the next good write is picked up.

- Servers get grpc's dynamic credentials: the fetcher runs before each new handshake, so new connections
  get new files and established ones live on until they close.
- Clients get plain channel credentials plus the server name to verify (`Identity.server_name`:
  `<role>.<site>.<federation>`); a client that caches channels rebuilds them when `generation` moves.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc

from fedlib.errors import ConfigError
from fedlib.pki.identity import Role, server_name
from fedrpc.channel import SecureTarget
from fedrpc.tls_files import TlsMaterial, load_tls_files

log = logging.getLogger(__name__)

_Signature = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class TlsFiles:
    """Where a component's material lives and what it must prove."""

    cert: Path  # the chain: leaf then its region CA (`<stem>.chain.pem`)
    key: Path
    ca: Path
    federation: str
    role: Role

    @classmethod
    def issued(cls, directory: str | os.PathLike[str], stem: str, federation: str, role: Role) -> TlsFiles:
        """The layout `cellfed pki issue leaf` writes: DIR/<stem>.chain.pem, DIR/<stem>.key, DIR/ca.crt."""
        base = Path(directory)
        return cls(base / f"{stem}.chain.pem", base / f"{stem}.key", base / "ca.crt", federation, role)

    def load(self, now: datetime | None = None) -> TlsMaterial:
        return load_tls_files(self.cert, self.key, self.ca, self.federation, self.role, now)

    def signature(self) -> _Signature:
        """What changes when any of the three files is replaced or rewritten."""
        out = []
        for path in (self.cert, self.key, self.ca):
            try:
                st = path.stat()
            except OSError:
                out.append((0, 0, 0))  # missing mid-rotation: a change, and load() will say what is wrong
                continue
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)


@dataclass
class ReloadingTls:
    """The newest good material of a TlsFiles; thread-safe (grpc runs the server fetcher on its threads)."""

    files: TlsFiles
    material: TlsMaterial
    generation: int = 0  # bumped on every reload that took: clients compare it to rebuild their channels
    # How often the files are looked at: clients ask on every call, and rotation is a matter of minutes.
    recheck_s: float = 1.0
    _checked_at: float = float("-inf")
    _signature: _Signature = ()
    _refused: _Signature | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, files: TlsFiles, now: datetime | None = None, *, recheck_s: float = 1.0) -> ReloadingTls:
        """Loads the files or raises ConfigError naming the file and the fix: a process starts with good
        material or not at all."""
        signature = files.signature()
        return cls(files, files.load(now), recheck_s=recheck_s, _signature=signature)

    def current(self, now: datetime | None = None) -> TlsMaterial:
        """The material to use now."""
        return self.snapshot(now)[0]

    def snapshot(self, now: datetime | None = None) -> tuple[TlsMaterial, int]:
        """The material to use now and its generation, read together (another thread may reload between
        two separate reads). Whoever holds a server port or a channel made from older material compares
        the generation to the one it made it under: one ReloadingTls serves many of them."""
        checked = time.monotonic()
        if checked - self._checked_at < self.recheck_s:
            with self._lock:
                return self.material, self.generation
        self._checked_at = checked
        signature = self.files.signature()
        with self._lock:
            if signature == self._signature or signature == self._refused:
                return self.material, self.generation
            try:
                material = self.files.load(now or datetime.now(UTC))
            except ConfigError as exc:
                # Keep serving with what worked; a rotation in progress usually fixes itself next write.
                self._refused = signature
                log.warning("TLS files changed but are refused, keeping the previous ones: %s", exc.message)
                return self.material, self.generation
            self.material, self._signature, self._refused = material, signature, None
            self.generation += 1
            log.info(
                "TLS files reloaded: %s, valid until %s",
                material.identity.uri,
                f"{material.not_after:%Y-%m-%d %H:%M} UTC",
            )
            return material, self.generation


def server_credentials(tls: ReloadingTls, *, require_client_cert: bool) -> grpc.ServerCredentials:
    """Credentials for one port (grpc asks each for its initial configuration once: never share them
    between ports), whose certificate follows the files. With require_client_cert the handshake itself
    refuses a client without a certificate chaining to the federation root (or an expired one); which
    roles may call what is the PeerAuthInterceptor's job, after it."""

    def configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(material.private_key, material.cert_chain)], root_certificates=material.root_ca
        )

    served = [tls.generation]  # what this port's handshakes use now; other ports follow on their own

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            material, generation = tls.snapshot()
        except Exception:  # never let a surprise here fail every handshake: keep the configuration
            log.exception("TLS reload check failed; keeping the current certificate")
            return None
        if generation == served[0]:
            return None
        served[0] = generation
        return configuration(material)

    initial = configuration(tls.material)
    return grpc.dynamic_ssl_server_credentials(
        initial, fetch, require_client_authentication=require_client_cert
    )


@dataclass(frozen=True)
class ClientTls:
    """How this component dials servers of its federation, with its own (rotating) certificate."""

    tls: ReloadingTls

    def target(self, site: str, role: Role) -> SecureTarget:
        """Security for dialing `role` at `site`: credentials from the newest material, and the server name
        that server's certificate must carry."""
        material, generation = self.tls.snapshot()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=material.root_ca,
            private_key=material.private_key,
            certificate_chain=material.cert_chain,
        )
        return SecureTarget(credentials, self.server_name(site, role), generation)

    def server_name(self, site: str, role: Role) -> str:
        return server_name(self.tls.files.federation, site, role)

    @property
    def site(self) -> str:
        """This component's own site, as its certificate says."""
        return self.tls.material.identity.site

    def generation(self) -> int:
        """Moves when the files were reloaded: a channel made under an older one should be replaced."""
        return self.tls.snapshot()[1]

"""TLS/mTLS for the TCP listener, with certificate reload without restart.

gRPC asks for the certificate configuration at every new handshake; we re-check the
files' modification times at most every --tls-reload and hand over the new pair when
they changed, so the next connection gets the new certificate and open ones carry on.
A half-written file (unreadable or not PEM) is ignored until it is complete.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import grpc

from sidecar.settings import Settings

log = logging.getLogger("dedup.tls")


class ReloadingCertificates:
    def __init__(self, cert: str, key: str, client_ca: str, recheck_s: float) -> None:
        self._paths = [Path(p) for p in (cert, key, client_ca) if p]
        self._cert, self._key, self._client_ca = Path(cert), Path(key), Path(client_ca) if client_ca else None
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = self._stamps()
        self.reloads = 0

    def _stamps(self) -> tuple[int, ...]:
        return tuple(os.stat(path).st_mtime_ns for path in self._paths)

    def load(self) -> grpc.ServerCertificateConfiguration:
        key, cert = self._key.read_bytes(), self._cert.read_bytes()
        if b"-----BEGIN" not in key or b"-----BEGIN" not in cert:
            raise ValueError("not PEM")
        root = self._client_ca.read_bytes() if self._client_ca else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=root)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC per handshake: a new configuration when the files changed, else None."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self._recheck_s:
                return None
            self._checked = now
            try:
                stamp = self._stamps()
                if stamp == self._stamp:
                    return None
                config = self.load()
            except (OSError, ValueError) as err:
                log.warning("certificate files changed but cannot be loaded yet", extra={"error": str(err)})
                return None
            self._stamp = stamp
            self.reloads += 1
            log.info("certificates reloaded", extra={"cert": str(self._cert)})
            return config


def server_credentials(settings: Settings) -> grpc.ServerCredentials:
    certificates = ReloadingCertificates(
        settings.tls_cert, settings.tls_key, settings.tls_client_ca, settings.tls_reload / 1000
    )
    return grpc.dynamic_ssl_server_credentials(
        certificates.load(),
        certificates.fetch,  # type: ignore[arg-type]  # None means "unchanged" (grpc docs)
        # grpc cannot ask for an optional client certificate: a client CA means mTLS, required.
        require_client_authentication=settings.tls_require_client_auth or bool(settings.tls_client_ca),
    )


def add_tcp_listener(server: grpc.aio.Server, settings: Settings) -> int:
    """Binds --listen with TLS when configured (plaintext only where settings allow it); the port."""
    if settings.tls_cert:
        return server.add_secure_port(settings.listen, server_credentials(settings))
    return server.add_insecure_port(settings.listen)

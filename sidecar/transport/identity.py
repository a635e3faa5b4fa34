"""Who is calling: identities from the mTLS peer certificate and from a bearer token.

Each identity carries its kind (domain/identities.py): mTLS gives the certificate's subject
alternative names by type (`spiffe://...` URIs as is, `dns:`, `email:`, `ip:`) and its common name
(`cn:`), as the TLS stack verified them. A bearer token (`authorization: Bearer <token>`) is
checked, in constant time, against a directory of token files, each named by the identity it
stands for (a mounted Kubernetes Secret or projected token), and gives `token:<file name>`. The
directory is re-read when it changes.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from sidecar.domain.authz import Caller
from sidecar.domain.identities import uri_identity

log = logging.getLogger("dedup.identity")

# grpc auth-context property -> how its values are named. The untyped
# "x509_subject_alternative_name" list is not used: it cannot tell a DNS name from a token name.
_CERT_KINDS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("peer_uri", uri_identity),
    ("peer_dns", lambda name: f"dns:{name}"),
    ("peer_email", lambda name: f"email:{name}"),
    ("peer_ip", lambda name: f"ip:{name}"),
    ("x509_common_name", lambda name: f"cn:{name}"),
)


class TokenDirectory:
    """identity -> token, from one file per identity; re-read at most every `recheck_s` when it changed."""

    def __init__(self, directory: str, recheck_s: float = 1.0) -> None:
        self._dir = Path(directory)
        self._recheck_s = recheck_s
        self._checked = 0.0
        self._stamp: tuple[tuple[str, int], ...] = ()
        self._tokens: dict[str, bytes] = {}
        self.generation = 0  # +1 at every reload: open streams re-identify their caller
        self._refresh(force=True)

    def _listing(self) -> tuple[tuple[str, int], ...]:
        entries = []
        for entry in os.scandir(self._dir):
            if not entry.name.startswith(".") and entry.is_file():
                entries.append((entry.name, entry.stat().st_mtime_ns))
        return tuple(sorted(entries))

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self._recheck_s:
            return
        self._checked = now
        try:
            stamp = self._listing()
            if stamp == self._stamp and not force:
                return
            tokens = {name: (self._dir / name).read_bytes().strip() for name, _ in stamp}
        except OSError as err:
            log.warning("cannot read the bearer token directory; keeping the last tokens", extra={"error": str(err)})
            return
        self._stamp, self._tokens = stamp, {name: token for name, token in tokens.items() if token}
        self.generation += 1
        log.info("bearer tokens loaded", extra={"identities": sorted(self._tokens)})

    def current_generation(self) -> int:
        """The generation after re-reading the directory if it is due (at most every `recheck_s`)."""
        self._refresh()
        return self.generation

    def identity_of(self, token: bytes) -> str | None:
        self._refresh()
        found = None
        for identity, expected in self._tokens.items():
            if hmac.compare_digest(token, expected):
                found = identity
        return found


def _metadata_token(context: grpc.aio.ServicerContext[object, object]) -> bytes | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value if isinstance(value, str) else value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip().encode()
    return None


def caller_of(context: grpc.aio.ServicerContext[object, object], tokens: TokenDirectory | None) -> Caller:
    identities: list[str] = []
    auth = context.auth_context() or {}
    for key, named in _CERT_KINDS:
        for raw in auth.get(key, ()):
            name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if name and named(name) not in identities:
                identities.append(named(name))
    if tokens is not None:
        token = _metadata_token(context)
        identity = tokens.identity_of(token) if token else None
        if identity:
            identities.append(f"token:{identity}")
    return Caller(tuple(identities))

"""TLS and mTLS to a sidecar, from PEM files or the DEDUP_CLIENT_* environment.

    from dedup_client import DedupClient
    from dedup_client.tls import ClientTls

    tls = ClientTls(ca="ca.crt", cert="client.crt", key="client.key", server_name="dedup-sidecar")
    client = DedupClient("127.0.0.1:50051", credentials=tls.credentials(), options=tls.options())

    tls = ClientTls.from_env()   # DEDUP_CLIENT_TLS_CA, _CERT, _KEY, DEDUP_CLIENT_SERVER_NAME, DEDUP_CLIENT_TLS
    client = DedupClient(target, credentials=tls.credentials() if tls.enabled else None, options=tls.options())

The variables are the operator CLI's (`dedup-sidecar check --help`), so a consumer container
configured for one is configured for the other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ClientTls:
    """ca: CA bundle that signs the sidecar's certificate (None: the system trust store).
    cert/key: the client certificate and key, for mTLS (both or neither).
    server_name: the name the sidecar's certificate must carry when it is not the target's host."""

    ca: str | Path | None = None
    cert: str | Path | None = None
    key: str | Path | None = None
    server_name: str = ""
    enabled: bool = True

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise ValueError("cert and key go together (a client certificate needs its key)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientTls:
        env = os.environ if environ is None else environ
        ca = env.get("DEDUP_CLIENT_TLS_CA", "")
        cert = env.get("DEDUP_CLIENT_TLS_CERT", "")
        key = env.get("DEDUP_CLIENT_TLS_KEY", "")
        enabled = bool(ca or cert) or env.get("DEDUP_CLIENT_TLS", "").strip().lower() in _TRUE
        return cls(ca or None, cert or None, key or None, env.get("DEDUP_CLIENT_SERVER_NAME", ""), enabled)

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca), private_key=read(self.key), certificate_chain=read(self.cert)
        )

    def options(self) -> list[tuple[str, str]]:
        """Channel options: the expected server name, when set."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

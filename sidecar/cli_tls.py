"""The operator CLI's connection to a sidecar: plaintext, TLS or mTLS (`check`, `claim`, ... `forget`).

Flags win over the environment; the environment is what a consumer container carries
(deploy/overlays/production). The variables are `DEDUP_CLIENT_*`, not the server's
`DEDUP_TLS_CERT`/`DEDUP_TLS_KEY`: a CLI run inside the sidecar's own container must not
present the server's key as its client certificate.

- `--tls-ca` / DEDUP_CLIENT_TLS_CA: CA bundle that signs the sidecar's certificate; turns TLS on.
- `--tls-cert` + `--tls-key` / DEDUP_CLIENT_TLS_CERT + DEDUP_CLIENT_TLS_KEY: the client
  certificate for mTLS; turn TLS on (system trust store unless --tls-ca).
- `--tls` / DEDUP_CLIENT_TLS=true: TLS with the system trust store and no client certificate.
- `--server-name` / DEDUP_CLIENT_SERVER_NAME: the name the sidecar's certificate must carry
  when it is not the target's host (e.g. `127.0.0.1:50051` with a certificate for `dedup-sidecar`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

ENV = {
    "tls": "DEDUP_CLIENT_TLS",
    "tls_ca": "DEDUP_CLIENT_TLS_CA",
    "tls_cert": "DEDUP_CLIENT_TLS_CERT",
    "tls_key": "DEDUP_CLIENT_TLS_KEY",
    "server_name": "DEDUP_CLIENT_SERVER_NAME",
}
_TRUE = {"1", "true", "yes", "on"}


class ClientTlsError(ValueError):
    """A usage error in the connection options (exit 2)."""


@dataclass(frozen=True)
class ClientTls:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str = ""
    enabled: bool = False

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return path.read_bytes()
            except OSError as err:
                raise ClientTlsError(f"cannot read the {what} {path}: {err.strerror or err}") from err

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca, "CA bundle (--tls-ca)"),
            private_key=read(self.key, "client key (--tls-key)"),
            certificate_chain=read(self.cert, "client certificate (--tls-cert)"),
        )

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS to the sidecar (flags win over the DEDUP_CLIENT_* environment)")
    group.add_argument(
        "--tls", action="store_true", default=None, help=f"TLS with the system trust store (${ENV['tls']})"
    )
    group.add_argument("--tls-ca", help=f"CA bundle (PEM) that signs the sidecar's certificate (${ENV['tls_ca']})")
    group.add_argument("--tls-cert", help=f"client certificate chain (PEM) for mTLS (${ENV['tls_cert']})")
    group.add_argument("--tls-key", help=f"client private key (PEM) for mTLS (${ENV['tls_key']})")
    group.add_argument(
        "--server-name",
        help=f"the name the sidecar's certificate must carry, if not the target's host (${ENV['server_name']})",
    )


def client_tls(args: argparse.Namespace, environ: dict[str, str] | None = None) -> ClientTls:
    """The connection options from the flags, else the environment; validated."""
    env = os.environ if environ is None else environ

    def pick(name: str) -> str:
        flag = getattr(args, name, None)
        return str(flag) if flag not in (None, "") else env.get(ENV[name], "")

    ca, cert, key, server_name = (pick(name) for name in ("tls_ca", "tls_cert", "tls_key", "server_name"))
    explicit = bool(getattr(args, "tls", None)) or env.get(ENV["tls"], "").strip().lower() in _TRUE
    if bool(cert) != bool(key):
        raise ClientTlsError("--tls-cert and --tls-key go together (a client certificate needs its key)")
    enabled = explicit or bool(ca or cert)
    if server_name and not enabled:
        raise ClientTlsError("--server-name needs TLS: set --tls-ca (or --tls, --tls-cert/--tls-key)")
    return ClientTls(
        ca=Path(ca) if ca else None,
        cert=Path(cert) if cert else None,
        key=Path(key) if key else None,
        server_name=server_name,
        enabled=enabled,
    )


def open_channel(target: str, tls: ClientTls) -> grpc.Channel:
    if not tls.enabled:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, tls.credentials(), tls.options())

"""The certificates and Secrets an overlay needs, made for a start test (tests/support/certs.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.deploy.manifests import Object, env_value, find
from tests.support.certs import CA, Issued


@dataclass
class OverlayPki:
    """One CA for the dedup API (server and client certificates), one for Redis."""

    api_ca: CA = field(default_factory=lambda: CA("dedup API test CA"))
    redis_ca: CA = field(default_factory=lambda: CA("redis test CA"))
    stranger_ca: CA = field(default_factory=lambda: CA("a CA nobody trusts"))

    def server(self, server_name: str) -> Issued:
        return self.api_ca.issue("dedup-sidecar", dns=(server_name,) if server_name else ())

    def client(self, identity: str) -> Issued:
        return self.api_ca.issue("example-consumer", uri=identity)

    def tls_secret(self, issued: Issued, ca: CA) -> dict[str, str | bytes]:
        """A kubernetes.io/tls Secret as cert-manager writes it: tls.crt, tls.key, ca.crt."""
        return {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem, "ca.crt": ca.pem}


def allowed_identity(objects: list[Object]) -> str:
    """The first allowed identity of the overlay's policies (a URI SAN for the test client)."""
    policies = yaml.safe_load(find(objects, "ConfigMap", "dedup-policies")["data"]["policies.yaml"])
    for policy in policies["namespaces"].values():
        for identity in policy.get("allowed_identities") or []:
            assert "://" in identity, f"the start test issues URI SANs; {identity!r} is not one"
            return str(identity)
    raise AssertionError("a client CA is set but no namespace allows any identity: every call would be denied")


def server_name(consumer: Object) -> str:
    value: Any = env_value(consumer, "DEDUP_CLIENT_SERVER_NAME")
    return str(value) if value else "localhost"

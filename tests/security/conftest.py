"""A secure in-process sidecar: the real wiring (build_servicer, build_authorizer) and TLS listener."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from sidecar.domain.policy import BUILT_IN_POLICIES, parse_policies
from sidecar.health import HealthMonitor
from sidecar.redis_store.connection import connect
from sidecar.redis_store.store import RedisStore
from sidecar.service import DedupService, ServiceLimits
from sidecar.settings import Settings
from sidecar.transport.security import build_authorizer, build_servicer
from sidecar.transport.server import build_server
from tests.chaos.conftest import redis_factory  # noqa: F401 - shared fixture
from tests.support.certs import CA
from tests.support.inprocess import StaticPolicies, unique_prefix


@dataclass
class Secure:
    port: int
    target: str
    service: DedupService


@contextlib.asynccontextmanager
async def secure_sidecar(
    redis_url: str, policies: Mapping[str, Any] | None = None, **settings: Any
) -> AsyncIterator[Secure]:
    prefix = unique_prefix()
    config = Settings(listen="127.0.0.1:0", key_prefix=prefix, **settings)
    source = StaticPolicies(parse_policies(policies) if policies else BUILT_IN_POLICIES)
    store = RedisStore(connect(redis_url, timeout_s=5))
    service = DedupService(store, source, ServiceLimits(config.max_batch, prefix))

    async def probe() -> bool:
        return True

    health = HealthMonitor(probe, 1.0)
    await health.start()
    server, port = build_server(
        config, build_servicer(config, service), health.servicer, authorizer=build_authorizer(config, source)
    )
    await server.start()
    try:
        yield Secure(port, f"127.0.0.1:{port}", service)
    finally:
        await server.stop(None)
        await store.close()


@dataclass
class Pki:
    ca: CA
    other_ca: CA


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki(CA("dedup test CA"), CA("some other CA"))


def tls_channel(target: str, ca_pem: bytes, cert: bytes | None = None, key: bytes | None = None) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key, certificate_chain=cert)
    return grpc.aio.secure_channel(target, creds)

"""An in-process sidecar (service + grpc.aio server on a free port) over a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.claim_waiters import ClaimWaiters
from sidecar.domain.errors import StoreError
from sidecar.domain.keys import wake_channel
from sidecar.domain.policy import BUILT_IN_POLICIES, PolicySet, parse_policies
from sidecar.health import HealthMonitor
from sidecar.redis_store.factory import inspect_any, open_store
from sidecar.redis_store.store import RedisStore
from sidecar.redis_store.wake import WakeSubscriber, subscriber_for
from sidecar.service import DedupService, ServiceLimits
from sidecar.settings import Settings
from sidecar.transport.server import build_server
from sidecar.transport.servicer import DedupServicer


@dataclass
class StaticPolicies:
    policies: PolicySet

    def current(self) -> PolicySet:
        return self.policies


@dataclass
class RunningSidecar:
    target: str
    channel: grpc.aio.Channel
    stub: dedup_pb2_grpc.DedupStub
    service: DedupService
    store: RedisStore
    policies: StaticPolicies
    health: HealthMonitor
    key_prefix: str
    waiters: ClaimWaiters | None = None
    wake: WakeSubscriber | None = None


def unique_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}:"


@contextlib.asynccontextmanager
async def running_sidecar(
    redis_url: str,
    policies: Mapping[str, Any] | None = None,
    *,
    key_prefix: str | None = None,
    store_timeout_s: float = 2.0,
    **settings: Any,
) -> AsyncIterator[RunningSidecar]:
    """Serves on 127.0.0.1:<free port> until the block ends."""
    prefix = key_prefix or unique_prefix()
    config = Settings(listen="127.0.0.1:0", key_prefix=prefix, **settings)
    policy_source = StaticPolicies(parse_policies(policies) if policies else BUILT_IN_POLICIES)
    store = open_store(redis_url, timeout_s=store_timeout_s, client=config.redis_client, check_path=config.check_path)
    with contextlib.suppress(StoreError):  # as the startup checks do: Check without Lua on 7.0+
        store.use_server((await inspect_any(store.client)).version)
    waiters = ClaimWaiters(config.max_claim_waiters)
    service = DedupService(store, policy_source, ServiceLimits(config.max_batch, prefix), waiters=waiters)
    wake = subscriber_for(store.client, wake_channel(prefix), waiters)
    wake_task = asyncio.create_task(wake.run())
    async with asyncio.timeout(10):
        await wake.subscribed.wait()

    async def probe() -> bool:
        try:
            await store.ping()
        except Exception:
            return False
        return True

    health = HealthMonitor(probe, config.health_interval / 1000)
    await health.start()
    server, port = build_server(config, DedupServicer(service, config.default_deadline / 1000), health.servicer)
    await server.start()
    await health.check_once()
    target = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(target)
    try:
        yield RunningSidecar(
            target,
            channel,
            dedup_pb2_grpc.DedupStub(channel),
            service,
            store,
            policy_source,
            health,
            prefix,
            waiters,
            wake,
        )
    finally:
        await channel.close()
        await server.stop(None)
        wake_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await wake_task
        await store.close()

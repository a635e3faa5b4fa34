"""The wake subscriber: one pub/sub connection per process, waking the Claims that wait (ADR 0065).

Commit and Release publish a record's key on the wake channel when the record was flagged
by a waiting Claim (claim.lua, prelude.lua). This task listens and calls `waiters.wake(key)`.
After every (re)subscription it calls `waiters.wake_all()`: a notification published while
it was not listening is lost, so every waiter runs its claim script once more.

Standalone and Sentinel: the store client's own connection pool (Sentinel resolves the
current master for each new connection; after a failover the broken connection is replaced).
Cluster: PUBLISH reaches every node over the cluster bus, so one connection to any node
hears every shard's notifications; a failing node is replaced by another on the next try.
A connection that stays silent is pinged; with no answer it is dropped and opened again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis, RedisCluster

from sidecar.domain.claim_waiters import ClaimWaiters

log = logging.getLogger("dedup.wake")

ClientFactory = Callable[[], Awaitable[Redis]]


class WakeSubscriber:
    def __init__(
        self,
        connect: ClientFactory,
        channel: str,
        waiters: ClaimWaiters,
        *,
        ping_interval_s: float = 2.0,
        retry_s: float = 0.5,
        own_client: bool = False,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._waiters = waiters
        self._ping_interval_s = ping_interval_s
        self._retry_s = retry_s
        self._own_client = own_client  # close the client after each connection (cluster: a node client)
        self.subscribed = asyncio.Event()
        self.subscriptions = 0  # how many times it (re)subscribed

    async def run(self) -> None:
        """Listens until cancelled, reconnecting after any failure."""
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("wake subscriber lost its connection; waits fall back to timers", extra={"error": str(err)})
            finally:
                self.subscribed.clear()
            await asyncio.sleep(self._retry_s)

    async def _listen_once(self) -> None:
        client = await self._connect()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            self.subscriptions += 1
            self.subscribed.set()
            self._waiters.wake_all()  # anything published while not listening
            silent_since = asyncio.get_running_loop().time()
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=self._ping_interval_s)
                now = asyncio.get_running_loop().time()
                if message is not None:
                    silent_since, pinged = now, False
                    self._handle(message)
                elif now - silent_since >= 2 * self._ping_interval_s and pinged:
                    raise ConnectionError(f"no answer to PING within {2 * self._ping_interval_s:.1f}s")
                elif now - silent_since >= self._ping_interval_s and not pinged:
                    await pubsub.ping()
                    pinged = True
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            if self._own_client:
                with contextlib.suppress(Exception):
                    await client.aclose()

    def _handle(self, message: dict[str, Any]) -> None:
        if message.get("type") == "message":
            data = message.get("data")
            if isinstance(data, bytes):
                self._waiters.wake(data.decode("utf-8", "replace"))


def subscriber_for(client: Redis | RedisCluster, channel: str, waiters: ClaimWaiters) -> WakeSubscriber:
    """The subscriber for a store's client: its own pool, or (Cluster) a connection to some node."""
    if isinstance(client, RedisCluster):
        return WakeSubscriber(_cluster_node_client(client), channel, waiters, own_client=True)
    plain: Redis = client

    async def same_client() -> Redis:
        return plain

    return WakeSubscriber(same_client, channel, waiters)


def _cluster_node_client(cluster: RedisCluster) -> ClientFactory:
    attempts = 0

    async def connect() -> Redis:
        nonlocal attempts
        await cluster.initialize()
        nodes = cluster.get_nodes()
        node = nodes[attempts % len(nodes)]  # a different node after each failure
        attempts += 1
        options: dict[str, Any] = dict(node.connection_kwargs)
        return Redis(
            host=node.host,
            port=int(node.port),
            username=options.get("username"),
            password=options.get("password"),
            ssl=bool(options.get("ssl")),
            socket_timeout=options.get("socket_timeout"),
            socket_connect_timeout=options.get("socket_connect_timeout"),
            client_name="dedup-sidecar-wake",
        )

    return connect

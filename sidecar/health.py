"""Health (grpc.health.v1): readiness follows the store, liveness does not.

Services reported: "" and "dedup.v1.Dedup" (readiness: the store answers and
its startup checks passed), and "liveness" (SERVING while the process runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

log = logging.getLogger("dedup.health")

READINESS_SERVICES = ("", "dedup.v1.Dedup")
LIVENESS_SERVICE = "liveness"

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    """Probes the store on an interval and publishes readiness.

    `probe` returns True when the store answers and is safe to use.
    """

    def __init__(self, probe: Callable[[], Awaitable[bool]], interval_s: float) -> None:
        self.servicer = health_aio.HealthServicer()
        self._probe = probe
        self._interval_s = interval_s
        self.ready = False
        self._draining = False

    async def start(self) -> None:
        await self.servicer.set(LIVENESS_SERVICE, SERVING)
        await self._publish(False)

    async def _publish(self, ready: bool) -> None:
        if ready != self.ready:
            log.info("readiness changed", extra={"ready": ready})
        self.ready = ready
        for service in READINESS_SERVICES:
            await self.servicer.set(service, SERVING if ready and not self._draining else NOT_SERVING)

    async def check_once(self) -> bool:
        try:
            ready = await asyncio.wait_for(self._probe(), timeout=max(self._interval_s, 1.0) * 2)
        except Exception:
            ready = False
        if not self._draining:
            await self._publish(ready)
        return ready

    async def run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval_s)

    async def drain(self) -> None:
        """Shutdown: every service NOT_SERVING, for good."""
        self._draining = True
        await self._publish(False)
        await self.servicer.set(LIVENESS_SERVICE, NOT_SERVING)

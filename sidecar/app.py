"""`serve`: wires policies, the store, the service and the server; runs until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from functools import partial

import grpc

from sidecar.domain.ack_budget import ack_timeout_problems
from sidecar.domain.claim_waiters import ClaimWaiters
from sidecar.domain.errors import PolicyError, StoreError
from sidecar.domain.keys import wake_channel
from sidecar.embedded import EmbeddedRedis, EmbeddedServerError
from sidecar.health import HealthMonitor
from sidecar.policies_file import PolicyFile
from sidecar.preflight import file_problems
from sidecar.redis_store.connection import mode_of, redact, scrub
from sidecar.redis_store.factory import open_store
from sidecar.redis_store.wake import subscriber_for
from sidecar.service import DedupService, ServiceLimits
from sidecar.settings import Settings
from sidecar.store_gate import GatedStore, StoreGate
from sidecar.telemetry.config import TelemetryConfigError
from sidecar.telemetry.runtime import Telemetry, start_telemetry
from sidecar.transport.security import build_authorizer, build_servicer
from sidecar.transport.server import build_health_server, build_server
from sidecar.transport.servicer import DedupServicer

log = logging.getLogger("dedup.serve")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_UNSAFE_STORE = 3


class StartupError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _start_telemetry(settings: Settings, policies: PolicyFile, waiters: ClaimWaiters) -> Telemetry:
    try:
        telemetry = start_telemetry(policies, settings.metrics_listen, waiters=waiters)
    except (TelemetryConfigError, OSError, ValueError) as err:
        raise StartupError(f"cannot start telemetry: {err}", EXIT_CONFIG) from err
    log.info("telemetry", extra=telemetry.report())
    return telemetry


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


async def _drain(
    server: grpc.aio.Server, servicer: DedupServicer, waiters: ClaimWaiters, health: HealthMonitor, grace_s: float
) -> None:
    """NOT_SERVING; no new calls; Streams stop reading and waiting Claims answer; then stop as soon as
    nothing is in flight. Idle or frozen connections hold nothing; the grace caps only running calls."""
    log.info("shutting down: draining in-flight calls", extra={"grace_s": grace_s})
    await health.drain()
    waiters.close()
    servicer.drain.begin()
    stopping = asyncio.create_task(server.stop(grace_s))  # refuses new calls at once; GOAWAY to every connection
    idle = await servicer.drain.wait_idle(grace_s)
    if not idle:
        log.warning("shutdown grace over: cancelling calls still running", extra={"running": servicer.drain.active})
    await server.stop(0)  # connections that did not go away (idle, frozen) must not hold the exit
    await stopping


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Serves until `stop` is set (or SIGTERM/SIGINT); returns the process exit code."""
    stop = stop or asyncio.Event()
    _install_signal_handlers(stop)  # before anything starts: a SIGTERM during startup still shuts down cleanly
    if problems := file_problems(settings):
        for problem in problems:
            log.error("cannot start: %s", problem)
        return EXIT_CONFIG
    try:
        policies = PolicyFile(settings.policies, partial(ack_timeout_problems, store_timeout_ms=settings.store_timeout))
    except PolicyError as err:
        log.error("cannot load policies: %s", "; ".join(err.problems))
        return EXIT_CONFIG
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if not url:
        try:
            embedded = EmbeddedRedis(settings.resolved_data_dir, settings.embedded_server, settings.embedded_fsync)
            await asyncio.to_thread(embedded.start)
        except EmbeddedServerError as err:
            log.error("cannot start the embedded store: %s", err)
            return EXIT_CONFIG
        url = embedded.url
    try:
        return await _serve_with_store(settings, policies, url, stop)
    except StartupError as err:
        log.error("%s", err)
        return err.exit_code
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _serve_with_store(settings: Settings, policies: PolicyFile, url: str, stop: asyncio.Event) -> int:
    try:
        store = open_store(
            url,
            timeout_s=settings.store_timeout / 1000,
            mode=settings.redis_mode,
            client=settings.redis_client,
            check_path=settings.check_path,
        )
    except ValueError as err:
        raise StartupError(f"bad --redis-url {redact(url)}: {scrub(str(err), url)}", EXIT_CONFIG) from None
    log.info("store: %s (%s)", redact(url), mode_of(url, settings.redis_mode))
    gate = StoreGate(store, settings.allow_unsafe_store, settings.replica_ack_command, policies)
    try:
        report = await gate.run_checks()
        if not gate.safe:
            raise StartupError("refusing to start on an unsafe store: " + "; ".join(report.problems), EXIT_UNSAFE_STORE)
    except StoreError as err:
        log.warning("store not reachable at startup (%s); serving NOT_SERVING until it is", err)

    waiters = ClaimWaiters(settings.max_claim_waiters)
    telemetry = _start_telemetry(settings, policies, waiters)
    service = DedupService(
        GatedStore(store, gate),
        policies,
        ServiceLimits(settings.max_batch, settings.key_prefix),
        telemetry.observer,
        waiters,
    )
    wake = subscriber_for(store.client, wake_channel(settings.key_prefix), waiters)
    health = HealthMonitor(gate.probe, settings.health_interval / 1000)
    await health.start()
    servicer, authorizer = build_servicer(settings, service), build_authorizer(settings, policies)
    try:
        server, port = build_server(
            settings, servicer, health.servicer, telemetry.interceptors, authorizer, telemetry.wrap_handler
        )
        health_server, health_port = None, 0
        if settings.health_listen:
            health_server, health_port = build_health_server(settings, health.servicer)
    except RuntimeError as err:  # grpc: "Failed to bind to address ..."
        await store.close()
        telemetry.shutdown()
        raise StartupError(
            f"cannot listen ({err}): is another process using --listen/--health-listen/--unix-socket?", EXIT_CONFIG
        ) from None
    await server.start()
    if health_server is not None:
        await health_server.start()
    await health.check_once()
    listen = f"{settings.listen.rpartition(':')[0]}:{port}" if settings.listen else ""
    health_listen = f"{settings.health_listen.rpartition(':')[0]}:{health_port}" if health_server else ""
    log.info(
        "serving",
        extra={
            "listen": listen,
            "unix_socket": settings.unix_socket,
            "health_listen": health_listen,
            "ready": health.ready,
        },
    )

    tasks = [
        asyncio.create_task(health.run(), name="health"),
        asyncio.create_task(policies.watch(settings.policies_poll / 1000), name="policies"),
        asyncio.create_task(wake.run(), name="wake"),
    ]
    try:
        await stop.wait()
        await _drain(server, servicer, waiters, health, settings.shutdown_grace / 1000)
    finally:
        if health_server is not None:
            await health_server.stop(None)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
        await asyncio.to_thread(telemetry.shutdown)
    log.info("stopped")
    return EXIT_OK

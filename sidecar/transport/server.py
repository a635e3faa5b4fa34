"""The grpc.aio servers: the API (Dedup, health, reflection; TCP and Unix listeners) and a health-only one.

The health-only server exists for Kubernetes `grpc:` probes, which connect to the
pod IP: it can listen there while the API stays on loopback or a Unix socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dedup.v1 import dedup_pb2, dedup_pb2_grpc
from sidecar.settings import Settings
from sidecar.telemetry.interceptors import HandlerWrapper
from sidecar.transport.servicer import DedupServicer
from sidecar.transport.tls import add_tcp_listener

SERVICE_NAME = dedup_pb2.DESCRIPTOR.services_by_name["Dedup"].full_name


class _Registration:
    """Stands in for the server while the generated code registers the Dedup handlers."""

    service = ""
    handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.service, self.handlers = service, handlers


def add_dedup_service(server: grpc.aio.Server, servicer: DedupServicer, wrap: HandlerWrapper | None = None) -> None:
    """Registers the Dedup service, each method's handler passed through `wrap` once (telemetry)."""
    if wrap is None:
        dedup_pb2_grpc.add_DedupServicer_to_server(servicer, server)
        return
    registration = _Registration()
    dedup_pb2_grpc.add_DedupServicer_to_server(servicer, registration)  # type: ignore[arg-type]
    service = registration.service
    handlers = {name: wrap(f"/{service}/{name}", handler) for name, handler in registration.handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)  # type: ignore[attr-defined]  # grpc-stubs lag grpcio


def build_server(
    settings: Settings,
    servicer: DedupServicer,
    health: health_pb2_grpc.HealthServicer,
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    wrap: HandlerWrapper | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A server bound to the configured listeners, not yet started, and its TCP port (0: none).
    Telemetry comes as `wrap` around the Dedup handlers, not as an interceptor (ADR 0072)."""
    server = grpc.aio.server(
        interceptors=interceptors or None,  # any interceptor costs every call (ADR 0072)
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Only worker processes share a port (serve --workers N); a lone server that
            # finds its port taken must fail rather than silently split the traffic.
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
    )
    add_dedup_service(server, servicer, wrap)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = add_tcp_listener(server, settings) if settings.listen else 0
    if settings.unix_socket:
        server.add_insecure_port(f"unix:{settings.unix_socket}")
    return server, port


def build_health_server(settings: Settings, health: health_pb2_grpc.HealthServicer) -> tuple[grpc.aio.Server, int]:
    """A server with only grpc.health.v1 (and reflection of it, for grpcurl) on --health-listen."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if settings.workers > 1 else 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    return server, server.add_insecure_port(settings.health_listen)

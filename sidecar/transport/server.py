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

from dedup.v1 import dedup_pb2
from sidecar.settings import Settings
from sidecar.telemetry.interceptors import HandlerWrapper
from sidecar.transport.authorizer import Authorizer
from sidecar.transport.handlers import dedup_handlers
from sidecar.transport.servicer import DedupServicer
from sidecar.transport.tls import add_tcp_listener

SERVICE_NAME = dedup_pb2.DESCRIPTOR.services_by_name["Dedup"].full_name


def _connection_age(settings: Settings) -> list[tuple[str, int]]:
    """GOAWAY after --max-connection-age: a client reconnects and is authenticated again (docs/security.md)."""
    if not settings.max_connection_age:
        return []
    return [
        ("grpc.max_connection_age_ms", settings.max_connection_age),
        ("grpc.max_connection_age_grace_ms", settings.max_connection_age_grace),
    ]


def build_server(
    settings: Settings,
    servicer: DedupServicer,
    health: health_pb2_grpc.HealthServicer,
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    authorizer: Authorizer | None = None,
    wrap: HandlerWrapper | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A server bound to the configured listeners, not yet started, and its TCP port (0: none).

    Every Dedup call passes `authorizer` (None: open, nothing checked) in transport/handlers.py;
    telemetry comes as `wrap` around each Dedup handler, not as an interceptor (ADR 0072).
    """
    server = grpc.aio.server(
        interceptors=interceptors or None,  # any interceptor costs every call (ADR 0072)
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Only worker processes share a port (serve --workers N); a lone server that
            # finds its port taken must fail rather than silently split the traffic.
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
            *_connection_age(settings),
        ],
    )
    server.add_generic_rpc_handlers(
        (dedup_handlers(servicer, authorizer or Authorizer(None), settings.max_concurrent_rpcs, wrap),)
    )
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

"""The Prometheus /metrics endpoint: its own HTTP port, its own registry (not the global one)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server


@dataclass
class MetricsEndpoint:
    server: WSGIServer
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve_metrics(listen: str, registry: CollectorRegistry) -> MetricsEndpoint:
    """Serves `registry` on listen (host:port; port 0 picks a free one) from a daemon thread."""
    host, port = split_listen(listen)
    server, thread = start_http_server(port, host, registry=registry)
    return MetricsEndpoint(server, thread, host, server.server_port)

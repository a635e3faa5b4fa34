"""Targets and channel options shared by the sync and asyncio clients."""

from __future__ import annotations

from collections.abc import Sequence

# A sidecar is local: after it restarts, reconnect within a second rather than
# after gRPC's default backoff (up to 120 s), during which fail-fast calls fail.
# (Not grpc.min_reconnect_backoff_ms: gRPC core also uses it as the connect
# timeout, and a short one turns a slow handshake into UNAVAILABLE.)
CHANNEL_OPTIONS: Sequence[tuple[str, int | str]] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 1),  # transparent retries (request never reached the server) only
)


def normalize_target(target: str) -> str:
    """`host:port`, `unix:/path`, `unix:///path`, or a bare absolute socket path."""
    if not target:
        raise ValueError("empty target: use host:port or unix:/path/to.sock")
    if target.startswith("/"):
        return f"unix:{target}"
    return target

"""W3C trace context (traceparent/tracestate) from the caller's current span, as gRPC metadata.

Active only when opentelemetry-api is installed (extra `otel`); it injects with
the globally configured propagator (W3C TraceContext + Baggage by default).
"""

from __future__ import annotations

try:
    from opentelemetry import propagate as _propagate
except ImportError:  # pragma: no cover - exercised only without the extra
    _propagate = None  # type: ignore[assignment]


def trace_metadata() -> list[tuple[str, str]]:
    if _propagate is None:
        return []
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return [(key.lower(), value) for key, value in carrier.items()]

"""The trace context stored with a record, so a later duplicate can link to the original span.

Encoding (26 bytes): version 0x01, 16-byte trace id, 8-byte span id, 1 flags byte.
Anything else (empty: the original was not traced) decodes to None. Only
recorded (sampled) RPCs store their context: a link to a span that was never
exported would lead nowhere.
"""

from __future__ import annotations

from opentelemetry.trace import SpanContext, TraceFlags

from sidecar.telemetry.current import CURRENT_CALL

VERSION = 1
ENCODED_LENGTH = 26


def encode(context: SpanContext) -> bytes:
    if not context.is_valid:
        return b""
    return (
        bytes((VERSION,))
        + context.trace_id.to_bytes(16, "big")
        + context.span_id.to_bytes(8, "big")
        + bytes((int(context.trace_flags) & 0xFF,))
    )


def current() -> bytes:
    """The encoded context of the current RPC's span; empty unless the RPC is traced and sampled."""
    call = CURRENT_CALL.get()
    return b"" if call is None else encode(call.span.get_span_context())


def decode(raw: bytes) -> SpanContext | None:
    if len(raw) != ENCODED_LENGTH or raw[0] != VERSION:
        return None
    context = SpanContext(
        trace_id=int.from_bytes(raw[1:17], "big"),
        span_id=int.from_bytes(raw[17:25], "big"),
        is_remote=True,
        trace_flags=TraceFlags(raw[25]),
    )
    return context if context.is_valid else None

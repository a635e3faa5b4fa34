"""The current RPC's CallSpan, set by TelemetryHandlers only when the RPC's span is recorded."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sidecar.telemetry.spans import CallSpan

CURRENT_CALL: ContextVar[CallSpan | None] = ContextVar("dedup_call_span", default=None)

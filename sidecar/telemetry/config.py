"""Telemetry configuration from the standard OTEL_* environment variables.

Supported: OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER
(otlp, console, none; metrics also prometheus), OTEL_EXPORTER_OTLP_PROTOCOL and
the per-signal OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL (grpc, http/protobuf),
OTEL_EXPORTER_PROMETHEUS_HOST/PORT. The SDK itself reads the rest (endpoints,
headers, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_METRIC_EXPORT_INTERVAL). Unlike the spec's
default (otlp), both exporters default to none: telemetry is opt-in (ADR 0040).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TRACE_EXPORTERS = frozenset({"otlp", "console", "none"})
METRIC_EXPORTERS = frozenset({"otlp", "console", "prometheus", "none"})
PROTOCOLS = frozenset({"grpc", "http/protobuf"})
DEFAULT_PROTOCOL = "http/protobuf"


class TelemetryConfigError(ValueError):
    """An OTEL_* variable has a value the sidecar cannot use; the message says which."""


def _exporters(environ: Mapping[str, str], name: str, allowed: frozenset[str]) -> tuple[str, ...]:
    raw = environ.get(name, "").strip().lower()
    chosen = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    unknown = sorted(set(chosen) - allowed)
    if unknown:
        raise TelemetryConfigError(f"{name}: unsupported {', '.join(unknown)} (use {', '.join(sorted(allowed))})")
    return tuple(part for part in chosen if part != "none")


def _protocol(environ: Mapping[str, str], signal: str) -> str:
    name = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    value = environ.get(name) or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or DEFAULT_PROTOCOL
    if value not in PROTOCOLS:
        raise TelemetryConfigError(f"{name} / OTEL_EXPORTER_OTLP_PROTOCOL: {value!r} is not one of grpc, http/protobuf")
    return value


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    trace_exporters: tuple[str, ...] = ()
    metric_exporters: tuple[str, ...] = ()
    traces_protocol: str = DEFAULT_PROTOCOL
    metrics_protocol: str = DEFAULT_PROTOCOL
    prometheus_listen: str = ""  # from --metrics-listen, or OTEL_METRICS_EXPORTER=prometheus

    @property
    def tracing(self) -> bool:
        return bool(self.trace_exporters)

    @property
    def metrics(self) -> bool:
        return bool(self.metric_exporters) or bool(self.prometheus_listen)


def load_config(environ: Mapping[str, str], metrics_listen: str = "") -> TelemetryConfig:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TelemetryConfig(prometheus_listen=metrics_listen)
    traces = _exporters(environ, "OTEL_TRACES_EXPORTER", TRACE_EXPORTERS)
    metrics = _exporters(environ, "OTEL_METRICS_EXPORTER", METRIC_EXPORTERS)
    listen = metrics_listen
    if "prometheus" in metrics and not listen:
        host = environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
        listen = f"{host}:{environ.get('OTEL_EXPORTER_PROMETHEUS_PORT', '9464')}"
    return TelemetryConfig(
        trace_exporters=traces,
        metric_exporters=tuple(m for m in metrics if m != "prometheus"),
        traces_protocol=_protocol(environ, "TRACES") if "otlp" in traces else DEFAULT_PROTOCOL,
        metrics_protocol=_protocol(environ, "METRICS") if "otlp" in metrics else DEFAULT_PROTOCOL,
        prometheus_listen=listen,
    )

"""Telemetry (docs/contract.md §7): OpenTelemetry traces, metrics (Prometheus and OTLP), log correlation.

Everything here is optional at run time: with no OTEL_* exporter and no
--metrics-listen, `start_telemetry` installs no handler wrapper and only the
logging observer, so the hot path pays nothing for it.
"""

"""SDK providers and exporters for the configured signals (imported only when one is on)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer

from sidecar import __version__
from sidecar.domain.claim_waiters import ClaimWaiters
from sidecar.domain.observer import Observer
from sidecar.telemetry.config import TelemetryConfig
from sidecar.telemetry.histograms import HistogramReaders, Merge
from sidecar.telemetry.metrics import DedupHistograms, DedupMetrics, MetricsObserver, PolicySource
from sidecar.telemetry.sampling import RootSampling, root_sampling
from sidecar.telemetry.spans import SpanObserver

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

SCOPE = "sidecar"


def _span_exporter(name: str, protocol: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


def tracing(
    config: TelemetryConfig, resource: Resource, environ: Mapping[str, str]
) -> tuple[Observer, Tracer, RootSampling, Callable[[], Any]]:
    """The sampler comes from OTEL_TRACES_SAMPLER(_ARG): built here for the standard names, so the
    root decision can be taken before a span exists (sampling.py), by the SDK for any other. The
    tracer goes to the one TelemetryHandlers wrapper (interceptors.py), which traces dedup.v1.Dedup
    methods only: health checks, probed every few seconds by every orchestrator, and reflection are
    never traced."""
    sampling = root_sampling(environ)
    provider = TracerProvider(resource=resource, sampler=sampling.sampler, id_generator=sampling.ids)
    for name in config.trace_exporters:
        provider.add_span_processor(BatchSpanProcessor(_span_exporter(name, config.traces_protocol)))
    return SpanObserver(), provider.get_tracer(SCOPE, __version__), sampling, provider.shutdown


class _PeriodicReader(PeriodicExportingMetricReader):
    """OTLP or console export, with the sidecar's own histograms added to each collection."""

    def __init__(self, exporter: MetricExporter, merge: Merge) -> None:
        self._merge = merge  # before the export thread starts
        super().__init__(exporter)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._merge(metrics_data), timeout_millis, **kwargs)


def _metric_reader(name: str, protocol: str, merge: Merge) -> MetricReader:
    if name == "console":
        return _PeriodicReader(ConsoleMetricExporter(), merge)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        return _PeriodicReader(GrpcExporter(), merge)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    return _PeriodicReader(HttpExporter(), merge)


def _prometheus_reader(registry: CollectorRegistry, merge: Merge) -> MetricReader:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    class _PrometheusReader(PrometheusMetricReader):
        """The /metrics endpoint's reader, with the sidecar's own histograms added to each scrape."""

        def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
            super()._receive_metrics(merge(metrics_data), timeout_millis, **kwargs)

    reader: MetricReader = _PrometheusReader(disable_target_info=True, scope_info_enabled=False, registry=registry)
    return reader


def metrics(
    config: TelemetryConfig, resource: Resource, policies: PolicySource | None, waiters: ClaimWaiters | None = None
) -> tuple[Observer, DedupMetrics, str, Callable[[], Any]]:
    histograms = DedupHistograms()
    merge = HistogramReaders(histograms.all, InstrumentationScope(SCOPE, __version__), resource).merged
    readers = [_metric_reader(name, config.metrics_protocol, merge) for name in config.metric_exporters]
    endpoint = None
    if config.prometheus_listen:
        from prometheus_client import CollectorRegistry

        from sidecar.telemetry.prometheus_http import serve_metrics

        registry = CollectorRegistry()
        readers.append(_prometheus_reader(registry, merge))
        endpoint = serve_metrics(config.prometheus_listen, registry)
    provider = MeterProvider(metric_readers=readers, resource=resource)
    dedup_metrics = DedupMetrics(provider.get_meter(SCOPE, __version__), histograms, policies, waiters)

    def close() -> None:
        if endpoint is not None:
            endpoint.close()
        provider.shutdown()

    url = endpoint.url if endpoint is not None else ""
    return MetricsObserver(dedup_metrics), dedup_metrics, url, close

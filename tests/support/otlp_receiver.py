"""Real OTLP receivers for tests and benchmarks: opentelemetry-proto's TraceService and
MetricsService over gRPC (`OtlpReceiver`), and /v1/metrics over HTTP (`OtlpHttpMetricsReceiver`).

The gRPC one runs a grpc server on its own thread, keeps every exported span (or
only counts them with keep=False) and lets a test wait for the spans it expects.
Both keep the metrics of every export (`MetricsSink`), so a test can wait until the
latest cumulative values are the ones it expects.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

Labels = frozenset[tuple[str, Any]]


def attribute_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes(span: Span) -> dict[str, Any]:
    return {kv.key: attribute_value(kv.value) for kv in span.attributes}


def _labels(kvs: Any) -> Labels:
    return frozenset((kv.key, attribute_value(kv.value)) for kv in kvs)


def point_values(metric: Metric) -> dict[Labels, float]:
    """Sum and gauge points by their attributes; histogram points give their count."""
    kind = metric.WhichOneof("data")
    if kind == "histogram":
        return {_labels(p.attributes): p.count for p in metric.histogram.data_points}
    points = metric.sum.data_points if kind == "sum" else metric.gauge.data_points
    return {_labels(p.attributes): getattr(p, p.WhichOneof("value")) for p in points}


class MetricsSink:
    """Every exported metric; `latest` is the most recent export of each (cumulative: the totals)."""

    def __init__(self) -> None:
        self.latest: dict[str, Metric] = {}
        self.resources: list[dict[str, Any]] = []
        self.exports = 0
        self._lock = threading.Lock()

    def add(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self._lock:
            self.exports += 1
            for resource_metrics in request.resource_metrics:
                self.resources.append(
                    {kv.key: attribute_value(kv.value) for kv in resource_metrics.resource.attributes}
                )
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        self.latest[metric.name] = metric

    def snapshot(self) -> dict[str, Metric]:
        with self._lock:
            return dict(self.latest)

    def wait(self, predicate: Callable[[dict[str, Metric]], bool], timeout_s: float = 15.0) -> dict[str, Metric]:
        """The latest metrics once `predicate` holds for them (bounded wait)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            latest = self.snapshot()
            if predicate(latest):
                return latest
            time.sleep(0.02)
        latest = self.snapshot()
        shown = {name: point_values(metric) for name, metric in latest.items()}
        raise AssertionError(f"metrics not as expected within {timeout_s}s ({self.exports} exports): {shown}")


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink: MetricsSink) -> None:
        self.sink = sink

    def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self.sink.add(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpHttpMetricsReceiver:
    """OTLP/HTTP (binary protobuf) metrics: POST /v1/metrics, on a thread."""

    def __init__(self) -> None:
        self.metrics = MetricsSink()
        sink = self.metrics

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path != "/v1/metrics":
                    self.send_error(404)
                    return
                sink.add(metrics_service_pb2.ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> OtlpHttpMetricsReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.raw_requests: list[bytes] = []
        self.count = 0
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.endpoint = ""
        self.metrics = MetricsSink()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    self.count += len(scope_spans.spans)
                    if self.keep:
                        self.spans.extend(scope_spans.spans)
                if self.keep:
                    self.resources.append(
                        {kv.key: attribute_value(kv.value) for kv in resource_spans.resource.attributes}
                    )
            if self.keep:
                self.raw_requests.append(request.SerializeToString())
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self) -> OtlpReceiver:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self.metrics), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(None)

    def wait_span(self, predicate: Callable[[Span], bool], timeout_s: float = 15.0) -> Span:
        """The first received span matching `predicate`, waiting for it (bounded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for span in self.spans:
                    if predicate(span):
                        return span
            time.sleep(0.02)
        with self._lock:
            names = [s.name for s in self.spans]
        raise AssertionError(f"no matching span within {timeout_s}s; received: {names}")

    def exported_env(self) -> dict[str, str]:
        """Environment for a sidecar that exports its spans here, quickly."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }

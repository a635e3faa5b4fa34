"""A real OTLP/gRPC trace receiver (opentelemetry-proto's TraceService) for tests and benchmarks.

It runs a grpc server on its own thread, keeps every exported span (or only
counts them with keep=False) and lets a test wait for the spans it expects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def attribute_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes(span: Span) -> dict[str, Any]:
    return {kv.key: attribute_value(kv.value) for kv in span.attributes}


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

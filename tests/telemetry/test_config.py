"""Telemetry configuration: off by default, OTEL_* parsing, the stored trace-context encoding."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanContext, TraceFlags

from sidecar.domain.policy import TraceIds
from sidecar.telemetry import trace_context
from sidecar.telemetry.config import TelemetryConfigError, load_config
from sidecar.telemetry.ids import shown_id
from sidecar.telemetry.log_observer import LogObserver
from sidecar.telemetry.runtime import resource, start_telemetry


def test_off_by_default_installs_no_interceptor_and_no_exporter() -> None:
    telemetry = start_telemetry(environ={})
    assert telemetry.interceptors == ()
    assert telemetry.wrap_handler is None  # the Dedup handlers are registered as they are
    assert isinstance(telemetry.observer, LogObserver)  # logs only: no metrics, no span work
    assert telemetry.report() == {"traces": "none", "sampler": "-", "metrics": "none", "metrics_url": ""}


def test_sdk_disabled_wins_over_exporters() -> None:
    config = load_config({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    assert not config.tracing
    assert not config.metrics


def test_exporters_and_protocols() -> None:
    config = load_config(
        {
            "OTEL_TRACES_EXPORTER": "otlp,console",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
        }
    )
    assert config.trace_exporters == ("otlp", "console")
    assert config.traces_protocol == "grpc"
    assert config.metrics_protocol == "http/protobuf"
    assert load_config({"OTEL_TRACES_EXPORTER": "otlp"}).traces_protocol == "http/protobuf"  # the spec's default


def test_prometheus_exporter_uses_the_standard_host_and_port() -> None:
    config = load_config({"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": "9999"})
    assert config.prometheus_listen == "localhost:9999"
    assert load_config({"OTEL_METRICS_EXPORTER": "prometheus"}, "0.0.0.0:9100").prometheus_listen == "0.0.0.0:9100"


@pytest.mark.parametrize(
    "environ",
    [{"OTEL_TRACES_EXPORTER": "jaeger"}, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}],
)
def test_unsupported_values_fail_fast(environ: dict[str, str]) -> None:
    with pytest.raises(TelemetryConfigError):
        load_config(environ)


def test_resource_defaults_downward_api_and_overrides() -> None:
    attrs = resource({"POD_NAME": "p-1", "POD_NAMESPACE": "ns-1"}).attributes
    assert attrs["service.name"] == "dedup-sidecar"
    assert attrs["k8s.pod.name"] == "p-1"
    assert attrs["k8s.namespace.name"] == "ns-1"


def test_the_resource_hashes_and_compares_as_an_sdk_resource() -> None:
    ours = resource({"POD_NAME": "p-1"})
    plain = Resource(ours.attributes, ours.schema_url)
    assert hash(ours) == hash(plain)
    assert ours == plain
    assert {plain: 1}[ours] == 1  # the OTLP encoder groups spans in a dict keyed by resource


def test_trace_context_round_trip() -> None:
    context = SpanContext(trace_id=0x1234, span_id=0x99, is_remote=False, trace_flags=TraceFlags(1))
    raw = trace_context.encode(context)
    assert len(raw) == trace_context.ENCODED_LENGTH
    decoded = trace_context.decode(raw)
    assert decoded is not None
    assert (decoded.trace_id, decoded.span_id, decoded.trace_flags) == (0x1234, 0x99, 1)
    assert trace_context.decode(b"") is None
    assert trace_context.decode(b"\x02" + raw[1:]) is None  # unknown version: no link, no error
    assert trace_context.current() == b""  # no span: nothing stored


def test_shown_id() -> None:
    assert shown_id(TraceIds.RAW, b"order-1") == ("dedup.id", "order-1")
    assert shown_id(TraceIds.RAW, b"\xff") == ("dedup.id", "\\xff")
    assert shown_id(TraceIds.OMIT, b"order-1") is None
    name, value = shown_id(TraceIds.HASH, b"order-1") or ("", "")
    assert name == "dedup.id_hash"
    assert "order" not in value

"""Starts what the configuration asks for: providers, exporters, the /metrics endpoint.

The providers are not made global: they are handed to the handler wrapper and the
observer explicitly, so an embedding process (or a test) keeps its own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.sdk.resources import OTELResourceDetector, Resource

from sidecar import __version__
from sidecar.domain.claim_waiters import ClaimWaiters
from sidecar.domain.observer import Observer
from sidecar.telemetry.config import TelemetryConfig, load_config
from sidecar.telemetry.fan_out import FanOut
from sidecar.telemetry.interceptors import HandlerWrapper, TelemetryHandlers
from sidecar.telemetry.log_observer import LogObserver
from sidecar.telemetry.metrics import PolicySource

log = logging.getLogger("dedup.telemetry")

# Downward-API variables (set them in the pod spec) -> resource attributes.
K8S_ENV = {
    "k8s.pod.name": ("K8S_POD_NAME", "POD_NAME"),
    "k8s.namespace.name": ("K8S_NAMESPACE_NAME", "POD_NAMESPACE"),
    "k8s.node.name": ("K8S_NODE_NAME", "NODE_NAME"),
}


@dataclass
class Telemetry:
    observer: Observer
    interceptors: tuple[grpc.aio.ServerInterceptor[Any, Any], ...] = ()  # none of its own (ADR 0072)
    wrap_handler: HandlerWrapper | None = None  # traces and metrics around each Dedup method's handler
    metrics_url: str = ""
    config: TelemetryConfig = field(default_factory=TelemetryConfig)
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    def report(self) -> dict[str, str]:
        """The startup report's telemetry fields."""
        return {
            "traces": ",".join(self.config.trace_exporters) or "none",
            "sampler": os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on") if self.config.tracing else "-",
            "metrics": ",".join([*self.config.metric_exporters, *(["prometheus"] if self.metrics_url else [])])
            or "none",
            "metrics_url": self.metrics_url,
        }

    def shutdown(self) -> None:
        """Flushes and stops exporters (pending spans and metrics are sent)."""
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # a failing exporter must not break shutdown
                log.exception("telemetry shutdown step failed")
        self._closers.clear()


def resource(environ: Mapping[str, str]) -> Resource:
    attributes: dict[str, str] = {"service.name": "dedup-sidecar", "service.version": __version__}
    for attribute, names in K8S_ENV.items():
        value = next((environ[name] for name in names if environ.get(name)), "")
        if value:
            attributes[attribute] = value
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the defaults above.
    return HashedResource(Resource.create(attributes).merge(OTELResourceDetector().detect()))


class HashedResource(Resource):
    """A Resource whose hash is computed once. The OTLP span encoder groups spans by resource, so it
    hashes the resource of every span it exports, and Resource's hash serialises all its attributes to
    JSON each time (~6 % of the export thread's time with every call sampled). A Resource is immutable."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def start_telemetry(
    policies: PolicySource | None = None,
    metrics_listen: str = "",
    environ: Mapping[str, str] | None = None,
    waiters: ClaimWaiters | None = None,
) -> Telemetry:
    """Raises TelemetryConfigError on a bad OTEL_* value (before anything starts)."""
    environ = os.environ if environ is None else environ
    config = load_config(environ, metrics_listen)
    telemetry = Telemetry(observer=LogObserver(), config=config)
    if not config.tracing and not config.metrics:
        return telemetry
    from sidecar.telemetry import providers  # the SDK is imported only when something is on

    res = resource(environ)
    observers: list[Observer] = [telemetry.observer]
    tracer = dedup_metrics = sampling = None
    if config.tracing:
        observer, tracer, sampling, close = providers.tracing(config, res, environ)
        observers.append(observer)
        telemetry._closers.append(close)
    if config.metrics:
        try:
            observer, dedup_metrics, url, close = providers.metrics(config, res, policies, waiters)
        except BaseException:
            telemetry.shutdown()
            raise
        observers.append(observer)
        telemetry.metrics_url = url
        telemetry._closers.append(close)
    telemetry.observer = FanOut(*observers)
    telemetry.wrap_handler = TelemetryHandlers(tracer, dedup_metrics, sampling).wrap  # one wrapper, both signals
    return telemetry

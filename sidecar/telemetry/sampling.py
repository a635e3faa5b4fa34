"""The root sampling decision, taken before any span object exists (ADR 0075).

A call that arrives without trace context is a new trace: the sampler's root
decision applies. For the standard samplers of OTEL_TRACES_SAMPLER that
decision depends only on a trace id the sidecar draws itself, so the handler
wrapper draws it first and, for the calls the ratio drops (9 in 10 at 0.1),
creates no span, attaches no context and stores no trace context. A sampled
root call hands its trace id to the SDK through `PrimedIdGenerator`, so the
SDK's own sampler sees the same id and agrees; a call that carries a
`traceparent` always goes through the SDK, which follows the caller's decision
(parent-based samplers) exactly as before.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import INVALID_TRACE_ID

log = logging.getLogger("dedup.telemetry")

_LOW_64 = TraceIdRatioBased.TRACE_ID_LIMIT
_ALWAYS = _LOW_64 + 1  # a bound every trace id is below
_DEFAULT_SAMPLER = "parentbased_always_on"  # the SDK's default


class PrimedIdGenerator(RandomIdGenerator):
    """Random ids, except that the next trace id can be chosen: the one the root decision was taken on.

    Spans are started on the event loop's thread only; `prime` and the `start_span` that consumes
    the id run in one synchronous step, so no other span can take it.
    """

    def __init__(self) -> None:
        self._next = INVALID_TRACE_ID

    def prime(self, trace_id: int) -> None:
        self._next = trace_id

    def generate_trace_id(self) -> int:
        primed, self._next = self._next, INVALID_TRACE_ID
        return primed if primed != INVALID_TRACE_ID else super().generate_trace_id()


@dataclass(frozen=True, slots=True)
class RootSampling:
    """The sampler for the TracerProvider and, when it is a standard one, its root decision as a bound.

    `bound` None: a sampler the sidecar does not know (an entry point); every call goes through the SDK.
    """

    sampler: Sampler | None  # None: let the SDK read OTEL_TRACES_SAMPLER itself
    bound: int | None
    ids: PrimedIdGenerator

    def root_trace_id(self) -> int | None:
        """For a call without trace context: INVALID_TRACE_ID if it is to be sampled with an id the SDK
        draws, a trace id if it is to be sampled with that id, None if it is not to be traced at all.
        Only meaningful when `bound` is not None."""
        bound = self.bound
        if not bound:
            return None
        if bound >= _ALWAYS:
            return INVALID_TRACE_ID
        trace_id = random.getrandbits(128)  # as RandomIdGenerator draws it
        if trace_id & _LOW_64 < bound:  # as TraceIdRatioBased decides
            return trace_id or None
        return None


def _ratio(environ: Mapping[str, str]) -> float:
    """OTEL_TRACES_SAMPLER_ARG as the SDK reads it: a rate in [0, 1], anything else means 1.0."""
    raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "")
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        log.warning("OTEL_TRACES_SAMPLER_ARG %r is not a rate in [0, 1]: sampling every trace", raw)
        return 1.0
    return rate


def root_sampling(environ: Mapping[str, str]) -> RootSampling:
    """The sampler named by OTEL_TRACES_SAMPLER(_ARG), built here for the six standard names."""
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or _DEFAULT_SAMPLER
    ids = PrimedIdGenerator()
    if name in ("always_on", "parentbased_always_on"):
        return RootSampling(ALWAYS_ON if name == "always_on" else DEFAULT_ON, _ALWAYS, ids)
    if name in ("always_off", "parentbased_always_off"):
        return RootSampling(ALWAYS_OFF if name == "always_off" else DEFAULT_OFF, 0, ids)
    if name in ("traceidratio", "parentbased_traceidratio"):
        rate = _ratio(environ)
        ratio = TraceIdRatioBased(rate)
        return RootSampling(ratio if name == "traceidratio" else ParentBased(ratio), ratio.bound, ids)
    return RootSampling(None, None, ids)

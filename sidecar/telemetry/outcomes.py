"""Outcome labels of a decision, for metrics, spans and logs."""

from __future__ import annotations

from sidecar.domain.outcomes import Decision, ForgetOutcome, Inspection

AnyOutcome = Decision | Inspection | ForgetOutcome


def answered(decision: AnyOutcome) -> str:
    """The outcome the caller got."""
    if isinstance(decision, ForgetOutcome):
        return decision.name
    if isinstance(decision, Inspection):
        return decision.state.name
    return decision.outcome.name


def decided(decision: AnyOutcome) -> str:
    """The outcome the store decided: differs from `answered` only in shadow namespaces."""
    shadow = getattr(decision, "shadow_outcome", None)
    return shadow.name if shadow is not None else answered(decision)


def is_degraded(decision: AnyOutcome) -> bool:
    return bool(getattr(decision, "degraded", False))

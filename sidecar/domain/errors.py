"""The domain's exceptions: each maps to one gRPC status in transport/status.py."""

from __future__ import annotations

from dataclasses import dataclass


class DedupError(Exception):
    """Base of every error the service raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad request field, named like google.rpc.BadRequest does (`items[3].id`)."""

    field: str
    description: str


class InvalidArgument(DedupError):
    """The request is malformed; nothing was read or written."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class NamespaceNotFound(DedupError):
    """No policy covers the namespace and no `default` policy exists."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(f"namespace {namespace!r} has no policy and no default policy exists")


class StoreError(DedupError):
    """The store could not give a decision (unreachable, OOM, READONLY, timeout, ...).

    `kind` is a short, bounded label (metrics use it): connection, timeout, oom,
    readonly, noreplicas, loading, busy, response, unsafe.
    `degradable`: a namespace with `on_store_error: allow` may answer it degraded (an outage);
    refusals and permanent faults never are.
    """

    degradable = True

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"store {kind}: {message}")


class StoreUnsafe(StoreError):
    """The latest store check found Redis unsafe (it may evict records): nothing is read or written.

    UNAVAILABLE with the reason, also in `on_store_error: allow` namespaces: a degraded NEW
    would hide the problem the check found.
    """

    degradable = False

    def __init__(self, reason: str) -> None:
        super().__init__("unsafe", reason)


class StoreFault(StoreError):
    """The store answered, with an error that retrying cannot fix: not an outage (INTERNAL).

    Kinds: wrongtype (something else lives at a record key), script (a Lua script failed),
    reply (an error reply or a reply the adapter does not understand), noperm (StorePermissionError).
    Never answered degraded; logged once per key by the store adapter.
    """

    degradable = False


class StorePermissionError(StoreFault):
    """The Redis user lacks a permission the sidecar needs (NOPERM): FAILED_PRECONDITION."""

    def __init__(self, message: str) -> None:
        super().__init__("noperm", message)


class StoreTimeout(StoreError):
    """The store did not answer within the call's deadline; the outcome is unknown."""

    def __init__(self, message: str = "no answer within the deadline") -> None:
        super().__init__("timeout", message)


class QuotaExceeded(StoreError):
    """The namespace's quota of new records is used up for this period; nothing was stored.

    A StoreError of kind `quota` so that it travels per item like other store refusals and is
    counted in dedup_store_errors_total{kind="quota"}, but it is never answered in degraded mode
    and maps to RESOURCE_EXHAUSTED (ADR 0051).
    """

    degradable = False

    def __init__(self) -> None:
        super().__init__("quota", "the namespace's quota of new records is used up; nothing was stored")


class PolicyError(DedupError):
    """A policies document is invalid; `problems` says what to fix, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid policies:\n  " + "\n  ".join(problems))


class PermissionDenied(DedupError):
    """The caller may not do this here. The message never says why (no detail leak); the audit log does."""

    def __init__(self) -> None:
        super().__init__("permission denied")

"""Namespace policies: the typed form of the policies YAML, validated with fix-it messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from sidecar.domain.durations import parse_duration_ms
from sidecar.domain.errors import NamespaceNotFound, PolicyError
from sidecar.domain.identities import identity_problems
from sidecar.domain.store import NO_ACKS, ReplicaAcks

NAMESPACE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DEFAULT_POLICY_NAME = "default"

# Hard bounds that no policy may widen.
MIN_WINDOW_MS = 1
MAX_WINDOW_MS = 366 * 86_400_000
MIN_LEASE_MS = 10
MAX_LEASE_MS = 86_400_000
RESULT_MAX_BYTES_CEILING = 64 * 1024
MIN_ACK_TIMEOUT_MS = 1
MAX_ACK_TIMEOUT_MS = 60_000
MIN_QUOTA_PERIOD_MS = 100
MAX_CLAIM_WAIT_MS = 600_000


class StoreErrorMode(Enum):
    REJECT = "reject"
    ALLOW = "allow"


class TraceIds(Enum):
    RAW = "raw"
    HASH = "hash"
    OMIT = "omit"


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    """How one namespace deduplicates. Field names match the YAML keys."""

    window_ms: int = 86_400_000
    max_window_ms: int = 7 * 86_400_000
    lease_ms: int = 30_000
    max_lease_ms: int = 600_000
    sliding_window: bool = False
    fingerprint_check: bool = True
    on_store_error: StoreErrorMode = StoreErrorMode.REJECT
    result_max_bytes: int = 4096
    shadow: bool = False
    trace_ids: TraceIds = TraceIds.HASH
    allowed_identities: tuple[str, ...] = field(default_factory=tuple)
    # Durability (docs/durability.md): a write is acknowledged only after this many
    # replicas confirmed it (WAIT / WAITAOF on the write's connection), else UNAVAILABLE.
    min_replica_acks: int = 0
    replica_ack_timeout_ms: int = 500
    # Quota (ADR 0051): at most this many new records per quota_period (0 = no quota).
    max_new_records: int = 0
    quota_period_ms: int = 1000
    # Wait-for-result (ADR 0065): the longest `wait_ms` a Claim may ask for (0: Claims never wait).
    max_claim_wait_ms: int = 30_000

    @property
    def replica_acks(self) -> ReplicaAcks:
        return ReplicaAcks(self.min_replica_acks, self.replica_ack_timeout_ms) if self.min_replica_acks else NO_ACKS


# YAML key -> (field name, kind)
_YAML_KEYS: dict[str, tuple[str, str]] = {
    "window": ("window_ms", "duration"),
    "max_window": ("max_window_ms", "duration"),
    "lease": ("lease_ms", "duration"),
    "max_lease": ("max_lease_ms", "duration"),
    "window_mode": ("sliding_window", "window_mode"),
    "fingerprint_check": ("fingerprint_check", "bool"),
    "on_store_error": ("on_store_error", "store_error_mode"),
    "result_max_bytes": ("result_max_bytes", "int"),
    "shadow": ("shadow", "bool"),
    "trace_ids": ("trace_ids", "trace_ids"),
    "allowed_identities": ("allowed_identities", "identities"),
    "min_replica_acks": ("min_replica_acks", "int"),
    "replica_ack_timeout": ("replica_ack_timeout_ms", "duration"),
    "max_new_records": ("max_new_records", "int"),
    "quota_period": ("quota_period_ms", "duration"),
    "max_claim_wait": ("max_claim_wait_ms", "duration"),
}
assert {name for name, _ in _YAML_KEYS.values()} == {f.name for f in fields(NamespacePolicy)}


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every configured namespace, plus the optional `default` for the rest."""

    namespaces: Mapping[str, NamespacePolicy]
    default: NamespacePolicy | None = None

    def lookup(self, namespace: str) -> NamespacePolicy:
        policy = self.namespaces.get(namespace, self.default)
        if policy is None:
            raise NamespaceNotFound(namespace)
        return policy

    def known(self, namespace: str) -> bool:
        """True when the namespace has a policy of its own (metrics label it by name)."""
        return namespace in self.namespaces


BUILT_IN_POLICIES = PolicySet(namespaces={}, default=NamespacePolicy())


def _convert(kind: str, value: Any) -> Any:
    if kind == "duration":
        return parse_duration_ms(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"expected a whole number >= 0, got {value!r}")
        return value
    if kind == "window_mode":
        if value not in ("fixed", "sliding"):
            raise ValueError(f"expected 'fixed' or 'sliding', got {value!r}")
        return value == "sliding"
    if kind == "store_error_mode":
        try:
            return StoreErrorMode(value)
        except ValueError:
            raise ValueError(f"expected 'reject' or 'allow', got {value!r}") from None
    if kind == "trace_ids":
        try:
            return TraceIds(value)
        except ValueError:
            raise ValueError(f"expected 'raw', 'hash' or 'omit', got {value!r}") from None
    if kind == "identities":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"expected a list of identity strings, got {value!r}")
        if problems := identity_problems(value):
            raise ValueError("; ".join(problems))
        return tuple(value)
    raise AssertionError(f"unknown kind {kind}")


def _check_bounds(where: str, policy: NamespacePolicy) -> list[str]:
    problems = []
    if not MIN_WINDOW_MS <= policy.window_ms <= policy.max_window_ms <= MAX_WINDOW_MS:
        problems.append(
            f"{where}: need {MIN_WINDOW_MS}ms <= window ({policy.window_ms}ms) <= max_window "
            f"({policy.max_window_ms}ms) <= 366d"
        )
    if not MIN_LEASE_MS <= policy.lease_ms <= policy.max_lease_ms <= MAX_LEASE_MS:
        problems.append(
            f"{where}: need {MIN_LEASE_MS}ms <= lease ({policy.lease_ms}ms) <= max_lease "
            f"({policy.max_lease_ms}ms) <= 1d"
        )
    if policy.min_replica_acks and not MIN_ACK_TIMEOUT_MS <= policy.replica_ack_timeout_ms <= MAX_ACK_TIMEOUT_MS:
        problems.append(
            f"{where}.replica_ack_timeout: need 1ms..{MAX_ACK_TIMEOUT_MS // 1000}s when min_replica_acks is set"
        )
    if policy.max_new_records and not MIN_QUOTA_PERIOD_MS <= policy.quota_period_ms <= MAX_WINDOW_MS:
        problems.append(f"{where}.quota_period: need {MIN_QUOTA_PERIOD_MS}ms..366d when max_new_records is set")
    if not 0 <= policy.max_claim_wait_ms <= MAX_CLAIM_WAIT_MS:
        ceiling = MAX_CLAIM_WAIT_MS // 60_000
        problems.append(f"{where}.max_claim_wait: need 0..{ceiling}m, got {policy.max_claim_wait_ms}ms")
    if policy.result_max_bytes > RESULT_MAX_BYTES_CEILING:
        problems.append(f"{where}.result_max_bytes: at most {RESULT_MAX_BYTES_CEILING}")
    return problems


def parse_namespace_policy(where: str, body: object) -> tuple[NamespacePolicy, list[str]]:
    """One namespace's policy from its YAML mapping, and the problems found (if any)."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        return NamespacePolicy(), [f"{where}: expected a mapping of settings, got {body!r}"]
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _YAML_KEYS:
            problems.append(f"{where}.{key}: unknown setting; known: {', '.join(sorted(_YAML_KEYS))}")
            continue
        name, kind = _YAML_KEYS[key]
        try:
            values[name] = _convert(kind, value)
        except ValueError as err:
            problems.append(f"{where}.{key}: {err}")
    policy = NamespacePolicy(**values)
    if "window_ms" in values and "max_window_ms" not in values:
        policy = _replace_max(policy, window=True)
    if "lease_ms" in values and "max_lease_ms" not in values:
        policy = _replace_max(policy, window=False)
    return policy, problems + _check_bounds(where, policy)


def _replace_max(policy: NamespacePolicy, *, window: bool) -> NamespacePolicy:
    """A default max that is smaller than an explicit default grows to meet it."""
    if window:
        return replace(policy, max_window_ms=max(policy.max_window_ms, policy.window_ms))
    return replace(policy, max_lease_ms=max(policy.max_lease_ms, policy.lease_ms))


def parse_policies(document: object) -> PolicySet:
    """The PolicySet of a whole policies document; raises PolicyError listing every problem."""
    if not isinstance(document, Mapping) or set(document) - {"namespaces"}:
        raise PolicyError(["top level: expected a mapping with one key, 'namespaces'"])
    body = document.get("namespaces")
    if not isinstance(body, Mapping) or not body:
        raise PolicyError(["namespaces: expected a non-empty mapping of namespace name to settings"])
    problems: list[str] = []
    policies: dict[str, NamespacePolicy] = {}
    for name, settings in body.items():
        if not isinstance(name, str) or not NAMESPACE_PATTERN.fullmatch(name):
            problems.append(f"namespaces.{name}: a namespace name must match {NAMESPACE_PATTERN.pattern}")
            continue
        policy, found = parse_namespace_policy(f"namespaces.{name}", settings)
        problems.extend(found)
        policies[name] = policy
    if problems:
        raise PolicyError(problems)
    default = policies.pop(DEFAULT_POLICY_NAME, None)
    return PolicySet(namespaces=policies, default=default)

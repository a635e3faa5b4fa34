"""Requests as the domain sees them, and their validation against limits and policy.

Validation never touches the store: a rejected request changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from sidecar.domain.errors import FieldViolation
from sidecar.domain.policy import MIN_LEASE_MS, NAMESPACE_PATTERN, NamespacePolicy

MAX_ID_BYTES = 512
MAX_FINGERPRINT_BYTES = 64
MAX_FENCING_TOKEN = 2**53 - 1  # tokens are exact integers in Redis Lua (IEEE doubles)


class CheckRequest(NamedTuple):
    """A NamedTuple, not a frozen dataclass like the others: one is built per batched Check id
    (CheckBatch is the bulk path), and a tuple is built about four times faster."""

    namespace: str
    id: bytes
    fingerprint: bytes = b""
    window_ms: int = 0


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    namespace: str
    id: bytes
    fingerprint: bytes = b""
    lease_ms: int = 0
    wait_ms: int = 0  # wait for an in-progress holder up to this long (ADR 0065)


@dataclass(frozen=True, slots=True)
class CommitRequest:
    namespace: str
    id: bytes
    fencing_token: int
    result: bytes | None = None
    window_ms: int = 0


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    namespace: str
    id: bytes
    fencing_token: int


@dataclass(frozen=True, slots=True)
class RenewRequest:
    namespace: str
    id: bytes
    fencing_token: int
    lease_ms: int = 0


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Inspect and Forget name a record and nothing else."""

    namespace: str
    id: bytes


AnyRequest = CheckRequest | ClaimRequest | CommitRequest | ReleaseRequest | RenewRequest | RecordRef


@lru_cache(maxsize=4096)
def _namespace_ok(namespace: str) -> bool:
    """Cached: a batch names one namespace a hundred times."""
    return NAMESPACE_PATTERN.fullmatch(namespace) is not None


def namespace_violations(namespace: str, at: str = "") -> list[FieldViolation]:
    if _namespace_ok(namespace):
        return []
    return [FieldViolation(f"{at}namespace", f"must match {NAMESPACE_PATTERN.pattern}")]


def shape_violations(request: AnyRequest, at: str = "") -> list[FieldViolation]:
    """Problems visible without a policy: namespace syntax, id/fingerprint/token sizes."""
    found = namespace_violations(request.namespace, at)
    if not 1 <= len(request.id) <= MAX_ID_BYTES:
        found.append(FieldViolation(f"{at}id", f"must be 1..{MAX_ID_BYTES} bytes, got {len(request.id)}"))
    fingerprint = getattr(request, "fingerprint", b"")
    if len(fingerprint) > MAX_FINGERPRINT_BYTES:
        found.append(
            FieldViolation(f"{at}fingerprint", f"must be at most {MAX_FINGERPRINT_BYTES} bytes, got {len(fingerprint)}")
        )
    token = getattr(request, "fencing_token", None)
    if token is not None and not 0 <= token <= MAX_FENCING_TOKEN:
        found.append(FieldViolation(f"{at}fencing_token", "must be a token returned by Claim (0..2^53-1)"))
    return found


def _bounded(value: int, low: int, high: int, name: str, at: str) -> list[FieldViolation]:
    if value == 0 or low <= value <= high:
        return []
    return [FieldViolation(f"{at}{name}", f"must be 0 (policy default) or {low}..{high}, got {value}")]


def policy_violations(request: AnyRequest, policy: NamespacePolicy, at: str = "") -> list[FieldViolation]:
    """Problems against the namespace's policy bounds."""
    found: list[FieldViolation] = []
    window = getattr(request, "window_ms", 0)
    found += _bounded(window, 1, policy.max_window_ms, "window_ms", at)
    lease = getattr(request, "lease_ms", 0)
    found += _bounded(lease, MIN_LEASE_MS, policy.max_lease_ms, "lease_ms", at)
    wait = getattr(request, "wait_ms", 0)
    if wait and not 0 <= wait <= policy.max_claim_wait_ms:
        found.append(
            FieldViolation(
                f"{at}wait_ms", f"must be 0 (do not wait) to {policy.max_claim_wait_ms} (max_claim_wait), got {wait}"
            )
        )
    result = getattr(request, "result", None)
    if result is not None and len(result) > policy.result_max_bytes:
        found.append(
            FieldViolation(
                f"{at}result", f"must be at most {policy.result_max_bytes} bytes (result_max_bytes), got {len(result)}"
            )
        )
    return found


def batch_size_violations(count: int, max_batch: int) -> list[FieldViolation]:
    if 1 <= count <= max_batch:
        return []
    return [FieldViolation("items", f"must hold 1..{max_batch} items (max_batch), got {count}")]

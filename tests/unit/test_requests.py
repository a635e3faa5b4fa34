from sidecar.domain.policy import NamespacePolicy
from sidecar.domain.requests import (
    CheckRequest,
    ClaimRequest,
    CommitRequest,
    batch_size_violations,
    policy_violations,
    shape_violations,
)


def fields(violations: list) -> list[str]:
    return [v.field for v in violations]


def test_valid_requests_have_no_violations() -> None:
    assert shape_violations(CheckRequest("orders", b"x" * 512, b"f" * 64)) == []
    assert policy_violations(ClaimRequest("orders", b"x", lease_ms=10), NamespacePolicy()) == []


def test_shape_violations_name_each_field() -> None:
    assert fields(shape_violations(CheckRequest("Orders", b""))) == ["namespace", "id"]
    assert fields(shape_violations(CheckRequest("o", b"x" * 513, b"f" * 65))) == ["id", "fingerprint"]
    assert fields(shape_violations(CommitRequest("o", b"x", 0))) == []  # a degraded claim's token
    assert fields(shape_violations(CommitRequest("o", b"x", -1))) == ["fencing_token"]
    assert fields(shape_violations(CommitRequest("o", b"x", 2**53))) == ["fencing_token"]
    assert fields(shape_violations(CheckRequest("o", b""), "items[3].")) == ["items[3].id"]


def test_policy_bounds() -> None:
    policy = NamespacePolicy(max_window_ms=1000, max_lease_ms=500, result_max_bytes=4)
    assert fields(policy_violations(CheckRequest("o", b"x", window_ms=1001), policy)) == ["window_ms"]
    assert fields(policy_violations(CheckRequest("o", b"x", window_ms=-5), policy)) == ["window_ms"]
    assert fields(policy_violations(ClaimRequest("o", b"x", lease_ms=501), policy)) == ["lease_ms"]
    assert fields(policy_violations(ClaimRequest("o", b"x", lease_ms=9), policy)) == ["lease_ms"]
    assert fields(policy_violations(CommitRequest("o", b"x", 1, result=b"12345"), policy)) == ["result"]
    assert policy_violations(CommitRequest("o", b"x", 1, result=b"1234"), policy) == []


def test_batch_size() -> None:
    assert fields(batch_size_violations(0, 10)) == ["items"]
    assert fields(batch_size_violations(11, 10)) == ["items"]
    assert batch_size_violations(10, 10) == []


def test_wait_ms_is_bounded_by_the_policy_and_never_negative() -> None:
    policy = NamespacePolicy(max_claim_wait_ms=1_000)
    assert policy_violations(ClaimRequest("ns", b"x", wait_ms=0), policy) == []
    assert policy_violations(ClaimRequest("ns", b"x", wait_ms=1_000), policy) == []
    for bad in (-1, 1_001):
        (violation,) = policy_violations(ClaimRequest("ns", b"x", wait_ms=bad), policy, "items[3].")
        assert violation.field == "items[3].wait_ms"


def test_a_namespace_with_a_trailing_newline_is_refused() -> None:
    """`$` in the pattern also matches before a final newline: the whole name must match."""
    assert fields(shape_violations(CheckRequest("orders\n", b"x"))) == ["namespace"]
    assert fields(shape_violations(CheckRequest("orders", b"x"))) == []

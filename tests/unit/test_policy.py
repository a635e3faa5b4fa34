import pytest

from sidecar.domain.durations import format_duration_ms, parse_duration_ms
from sidecar.domain.errors import NamespaceNotFound, PolicyError
from sidecar.domain.policy import NamespacePolicy, StoreErrorMode, TraceIds, parse_policies


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("30s", 30_000),
        ("5m", 300_000),
        ("24h", 86_400_000),
        ("7d", 604_800_000),
        (2, 2000),
        ("1.5s", 1500),
    ],
)
def test_durations_parse(text: object, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("bad", ["", "5", "5 weeks", "-1s", True, None, [1]])
def test_bad_durations_say_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(bad)


def test_durations_format_to_shortest_exact_unit() -> None:
    assert [format_duration_ms(v) for v in (90_000, 3_600_000, 1500, 0)] == ["90s", "1h", "1500ms", "0ms"]


def test_full_policy_document_parses() -> None:
    policies = parse_policies(
        {
            "namespaces": {
                "payments.charge": {
                    "window": "24h",
                    "max_window": "7d",
                    "lease": "30s",
                    "max_lease": "10m",
                    "window_mode": "sliding",
                    "fingerprint_check": False,
                    "on_store_error": "allow",
                    "result_max_bytes": 1024,
                    "shadow": True,
                    "trace_ids": "raw",
                    "allowed_identities": ["spiffe://x/ns/a/sa/b"],
                },
                "default": {"window": "1h"},
            }
        }
    )
    charge = policies.lookup("payments.charge")
    assert charge == NamespacePolicy(
        window_ms=86_400_000,
        max_window_ms=604_800_000,
        lease_ms=30_000,
        max_lease_ms=600_000,
        sliding_window=True,
        fingerprint_check=False,
        on_store_error=StoreErrorMode.ALLOW,
        result_max_bytes=1024,
        shadow=True,
        trace_ids=TraceIds.RAW,
        allowed_identities=("spiffe://x/ns/a/sa/b",),
    )
    assert policies.lookup("anything.else").window_ms == 3_600_000
    assert policies.known("payments.charge")
    assert not policies.known("anything.else")


def test_unknown_namespace_without_default_is_not_found() -> None:
    policies = parse_policies({"namespaces": {"orders": {}}})
    with pytest.raises(NamespaceNotFound):
        policies.lookup("payments")


def test_a_default_that_exceeds_the_default_max_raises_the_max() -> None:
    policy = parse_policies({"namespaces": {"a": {"window": "30d", "lease": "1h"}}}).lookup("a")
    assert policy.max_window_ms == 30 * 86_400_000
    assert policy.max_lease_ms == 3_600_000


def test_every_problem_is_listed_with_its_path() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policies(
            {
                "namespaces": {
                    "Bad Name": {},
                    "a": {"window": "soon", "colour": "red", "on_store_error": "maybe"},
                    "b": {"window": "2h", "max_window": "1h"},
                    "c": {"lease": "1ms"},
                }
            }
        )
    problems = "\n".join(caught.value.problems)
    assert "namespaces.Bad Name: a namespace name must match" in problems
    assert "namespaces.a.window: expected a duration" in problems
    assert "namespaces.a.colour: unknown setting" in problems
    assert "namespaces.a.on_store_error: expected 'reject' or 'allow'" in problems
    assert "namespaces.b: need 1ms <= window" in problems
    assert "namespaces.c: need 10ms <= lease" in problems


@pytest.mark.parametrize("document", [None, [], {"namespaces": {}}, {"namespaces": []}, {"other": 1}])
def test_malformed_documents_are_rejected(document: object) -> None:
    with pytest.raises(PolicyError):
        parse_policies(document)


def test_max_claim_wait_defaults_to_30s_and_is_bounded_by_10m() -> None:
    policies = parse_policies({"namespaces": {"a": {}, "b": {"max_claim_wait": "2m"}, "c": {"max_claim_wait": "0s"}}})
    assert policies.lookup("a").max_claim_wait_ms == 30_000
    assert policies.lookup("b").max_claim_wait_ms == 120_000
    assert policies.lookup("c").max_claim_wait_ms == 0
    with pytest.raises(PolicyError) as raised:
        parse_policies({"namespaces": {"d": {"max_claim_wait": "11m"}}})
    assert any("namespaces.d.max_claim_wait" in problem for problem in raised.value.problems)

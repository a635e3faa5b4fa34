"""replica_ack_timeout must fit below --store-timeout: refused at load and on reload, naming the namespace."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sidecar.domain.ack_budget import ACK_HEADROOM_MS, ack_timeout_problems
from sidecar.domain.errors import PolicyError
from sidecar.domain.policy import parse_policies
from sidecar.policies_file import PolicyFile


def _policies(timeout: str, acks: int = 1, name: str = "payments") -> dict[str, object]:
    return {"namespaces": {"orders": {}, name: {"min_replica_acks": acks, "replica_ack_timeout": timeout}}}


def test_a_timeout_with_headroom_below_the_store_timeout_is_fine() -> None:
    assert ack_timeout_problems(parse_policies(_policies("1900ms")), store_timeout_ms=2_000) == []
    assert ACK_HEADROOM_MS == 100


@pytest.mark.parametrize("timeout", ["1901ms", "2s", "5s"])
def test_a_timeout_at_or_above_the_store_timeout_names_the_namespace(timeout: str) -> None:
    problems = ack_timeout_problems(parse_policies(_policies(timeout)), store_timeout_ms=2_000)
    assert len(problems) == 1
    assert problems[0].startswith("namespaces.payments.replica_ack_timeout:")
    assert "--store-timeout (2000ms)" in problems[0]
    assert "at most 1900ms" in problems[0]


def test_the_default_policy_is_checked_and_namespaces_without_acks_are_not() -> None:
    assert ack_timeout_problems(parse_policies(_policies("5s", name="default")), 2_000)[0].startswith(
        "namespaces.default."
    )
    assert ack_timeout_problems(parse_policies(_policies("5s", acks=0)), 2_000) == []


def test_policy_file_refuses_at_load_and_keeps_the_old_policies_on_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text("namespaces:\n  payments: {min_replica_acks: 1, replica_ack_timeout: 3s}\n")
    check = lambda policies: ack_timeout_problems(policies, 2_000)  # noqa: E731
    with pytest.raises(PolicyError, match=r"namespaces\.payments\.replica_ack_timeout"):
        PolicyFile(str(path), check)

    path.write_text("namespaces:\n  payments: {min_replica_acks: 1, replica_ack_timeout: 500ms}\n")
    loaded = PolicyFile(str(path), check)
    path.write_text("namespaces:\n  payments: {min_replica_acks: 1, replica_ack_timeout: 2s}\n")
    with caplog.at_level(logging.ERROR):
        assert loaded.reload() is False
    assert loaded.current().lookup("payments").replica_ack_timeout_ms == 500
    assert "namespaces.payments.replica_ack_timeout" in caplog.text

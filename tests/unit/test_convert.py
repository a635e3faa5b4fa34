"""Domain enums use the proto enums' numbers; these tests keep them in step."""

from enum import Enum

import pytest

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain import outcomes


@pytest.mark.parametrize(
    ("domain", "proto_enum", "prefix"),
    [
        (outcomes.CheckOutcome, pb.CheckOutcome, "CHECK_OUTCOME_"),
        (outcomes.ClaimOutcome, pb.ClaimOutcome, "CLAIM_OUTCOME_"),
        (outcomes.CommitOutcome, pb.CommitOutcome, "COMMIT_OUTCOME_"),
        (outcomes.ReleaseOutcome, pb.ReleaseOutcome, "RELEASE_OUTCOME_"),
        (outcomes.RenewOutcome, pb.RenewOutcome, "RENEW_OUTCOME_"),
        (outcomes.ForgetOutcome, pb.ForgetOutcome, "FORGET_OUTCOME_"),
        (outcomes.RecordState, pb.RecordState, "RECORD_STATE_"),
    ],
)
def test_domain_and_proto_enums_match(domain: type[Enum], proto_enum: object, prefix: str) -> None:
    proto_values = {name: number for name, number in proto_enum.items() if number != 0}  # type: ignore[attr-defined]
    assert {prefix + member.name: member.value for member in domain} == proto_values

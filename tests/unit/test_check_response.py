"""check_response passes only non-default fields: it must still carry every field of the decision."""

from __future__ import annotations

import pytest

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain.errors import StoreError
from sidecar.domain.outcomes import CheckDecision, CheckOutcome, RecordState
from sidecar.transport.convert import check_response
from sidecar.transport.servicer import _batch_results


@pytest.mark.parametrize(
    "decision",
    [
        CheckDecision(CheckOutcome.NEW, 1_700_000_000_000, 0, RecordState.DONE),
        CheckDecision(CheckOutcome.DUPLICATE, 5, 7, RecordState.IN_PROGRESS, b"", b"tc"),
        CheckDecision(CheckOutcome.DUPLICATE, 5, 7, RecordState.DONE, b"stored result"),
        CheckDecision(CheckOutcome.NEW, degraded=True),
        CheckDecision(CheckOutcome.NEW, 5, 0, RecordState.DONE, shadow_outcome=CheckOutcome.CONFLICT),
    ],
)
def test_every_field_survives(decision: CheckDecision) -> None:
    full = pb.CheckResponse(
        outcome=decision.outcome.value,  # type: ignore[arg-type]
        first_seen_unix_ms=decision.first_seen_ms,
        age_ms=decision.age_ms,
        state=decision.state.value,  # type: ignore[arg-type]
        result=decision.result,
        degraded=decision.degraded,
        shadow_outcome=decision.shadow_outcome.value if decision.shadow_outcome else 0,  # type: ignore[arg-type]
    )
    converted = check_response(decision)
    assert converted == full
    assert converted.HasField("result") == (decision.result is not None)


def test_batch_results_convert_a_shared_decision_once_and_keep_order() -> None:
    new = CheckDecision(CheckOutcome.NEW, 1, 0, RecordState.DONE)
    seen = CheckDecision(CheckOutcome.DUPLICATE, 1, 2, RecordState.DONE)
    error = StoreError("oom", "full")
    calls: list[CheckDecision] = []

    def convert(d: CheckDecision) -> pb.CheckResponse:
        calls.append(d)
        return check_response(d)

    out = pb.CheckBatchResponse(results=_batch_results([new, seen, new, error, new], convert, pb.CheckResponse))
    assert [r.outcome for r in out.results] == [1, 2, 1, 0, 1]
    assert out.results[3].HasField("error")
    assert calls == [new, seen]

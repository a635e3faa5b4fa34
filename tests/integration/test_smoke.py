from dedup.v1 import dedup_pb2 as pb
from tests.support.inprocess import RunningSidecar


async def test_check_marks_then_reports_duplicate(sidecar: RunningSidecar) -> None:
    first = await sidecar.stub.Check(pb.CheckRequest(namespace="orders", id=b"m-1"))
    second = await sidecar.stub.Check(pb.CheckRequest(namespace="orders", id=b"m-1"))
    assert first.outcome == pb.CHECK_OUTCOME_NEW
    assert second.outcome == pb.CHECK_OUTCOME_DUPLICATE
    assert second.first_seen_unix_ms == first.first_seen_unix_ms

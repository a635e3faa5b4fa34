"""The scripted sequence the metrics tests run, and the exact values it must produce per namespace/outcome."""

from __future__ import annotations

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc

POLICIES = """
namespaces:
  default: {window: 1h}
  orders: {window: 2h}
  trial: {shadow: true}
  lenient: {on_store_error: allow}
"""


def labels(**kv: str) -> frozenset[tuple[str, str]]:
    return frozenset(kv.items())


async def scripted_sequence(stub: dedup_pb2_grpc.DedupStub) -> None:
    """Nine Check calls, three Claims, two Commits and a CheckBatch of two (run it on a fresh key prefix)."""
    await stub.Check(pb.CheckRequest(namespace="orders", id=b"a"))  # NEW
    await stub.Check(pb.CheckRequest(namespace="orders", id=b"a"))  # DUPLICATE
    claim = await stub.Claim(pb.ClaimRequest(namespace="orders", id=b"b"))  # ACQUIRED
    await stub.Claim(pb.ClaimRequest(namespace="orders", id=b"b"))  # IN_PROGRESS
    await stub.Commit(pb.CommitRequest(namespace="orders", id=b"b", fencing_token=claim.fencing_token))  # COMMITTED
    await stub.Commit(pb.CommitRequest(namespace="orders", id=b"b", fencing_token=1))  # LEASE_LOST
    await stub.Claim(pb.ClaimRequest(namespace="orders", id=b"b"))  # DUPLICATE
    await stub.Check(pb.CheckRequest(namespace="orders", id=b"b"))  # DUPLICATE
    # Namespaces without a policy of their own are counted as "default", never by their raw name.
    for name in ("anything", "something.else", "anything"):
        await stub.Check(pb.CheckRequest(namespace=name, id=b"x"))  # NEW, NEW, DUPLICATE
    # Shadow: answered NEW, counted as what the store decided.
    await stub.Check(pb.CheckRequest(namespace="trial", id=b"s"))
    shadowed = await stub.Check(pb.CheckRequest(namespace="trial", id=b"s"))
    assert shadowed.outcome == pb.CHECK_OUTCOME_NEW
    await stub.CheckBatch(pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="orders", id=i) for i in (b"a", b"c")]))


EXPECTED_DECISIONS = {
    labels(namespace="orders", operation="check", outcome="NEW"): 2,
    labels(namespace="orders", operation="check", outcome="DUPLICATE"): 3,
    labels(namespace="orders", operation="claim", outcome="ACQUIRED"): 1,
    labels(namespace="orders", operation="claim", outcome="IN_PROGRESS"): 1,
    labels(namespace="orders", operation="claim", outcome="DUPLICATE"): 1,
    labels(namespace="orders", operation="commit", outcome="COMMITTED"): 1,
    labels(namespace="orders", operation="commit", outcome="LEASE_LOST"): 1,
    labels(namespace="default", operation="check", outcome="NEW"): 2,
    labels(namespace="default", operation="check", outcome="DUPLICATE"): 1,
    labels(namespace="trial", operation="check", outcome="NEW"): 1,
    labels(namespace="trial", operation="check", outcome="DUPLICATE"): 1,
}
EXPECTED_LEASE_LOST = {labels(namespace="orders", operation="commit"): 1}
EXPECTED_DUPLICATE_AGES = {labels(namespace="orders"): 4, labels(namespace="default"): 1, labels(namespace="trial"): 1}
EXPECTED_WINDOWS = {
    labels(namespace="default"): 3600,
    labels(namespace="orders"): 7200,
    labels(namespace="trial"): 86400,
    labels(namespace="lenient"): 86400,
}
# dedup_rpc_duration observations: the unary RPCs of the sequence (all OK).
EXPECTED_CALLS = {
    labels(method="Check", operation="check", code="OK"): 8,
    labels(method="Claim", operation="claim", code="OK"): 3,
    labels(method="Commit", operation="commit", code="OK"): 2,
    labels(method="CheckBatch", operation="check_batch", code="OK"): 1,
}

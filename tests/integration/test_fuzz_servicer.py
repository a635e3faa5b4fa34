"""Random requests at the servicer see only documented statuses, and the server keeps serving."""

from __future__ import annotations

import asyncio
import os

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.support.inprocess import RunningSidecar

DOCUMENTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
EXAMPLES = int(os.environ.get("DEDUP_FUZZ_EXAMPLES", "300"))

namespaces = st.one_of(st.sampled_from(["ok", "a.b-c_d", "x" * 63, "x" * 64, "", "UP", "-a"]), st.text(max_size=70))
ids = st.binary(min_size=0, max_size=600)
durations = st.one_of(st.sampled_from([0, -1, 1, 9, 10, 2**62]), st.integers(-(2**63), 2**63 - 1))
tokens = st.one_of(st.sampled_from([0, 1, 2**53 - 1, 2**53]), st.integers(0, 2**64 - 1))
fingerprints = st.binary(max_size=80)

calls = st.one_of(
    st.builds(lambda n, i, f, w: ("Check", pb.CheckRequest(namespace=n, id=i, fingerprint=f, window_ms=w)),
              namespaces, ids, fingerprints, durations),
    st.builds(lambda n, i, f, w: ("Claim", pb.ClaimRequest(namespace=n, id=i, fingerprint=f, lease_ms=w)),
              namespaces, ids, fingerprints, durations),
    st.builds(lambda n, i, t, r: ("Commit", pb.CommitRequest(namespace=n, id=i, fencing_token=t, result=r)),
              namespaces, ids, tokens, st.one_of(st.none(), st.binary(max_size=5000))),
    st.builds(lambda n, i, t: ("Release", pb.ReleaseRequest(namespace=n, id=i, fencing_token=t)),
              namespaces, ids, tokens),
    st.builds(lambda n, i, t, w: ("Renew", pb.RenewRequest(namespace=n, id=i, fencing_token=t, lease_ms=w)),
              namespaces, ids, tokens, durations),
    st.builds(lambda n, i: ("Inspect", pb.InspectRequest(namespace=n, id=i)), namespaces, ids),
    st.builds(
        lambda items: ("CheckBatch", pb.CheckBatchRequest(items=items)),
        st.lists(st.builds(lambda n, i: pb.CheckRequest(namespace=n, id=i), namespaces, ids), max_size=4),
    ),
)  # fmt: skip


def fuzz(target: str) -> dict[str, int]:
    """Runs hypothesis in a thread with a blocking client, so the server's event loop keeps serving."""
    seen: dict[str, int] = {}
    with grpc.insecure_channel(target) as channel:
        stub = dedup_pb2_grpc.DedupStub(channel)

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(calls)
        def one(call: tuple[str, object]) -> None:
            method, message = call
            try:
                getattr(stub, method)(message, timeout=10)
                seen["OK"] = seen.get("OK", 0) + 1
            except grpc.RpcError as err:
                assert err.code() in DOCUMENTED, (method, message, err.code(), err.details())  # type: ignore[attr-defined]  # noqa: PT017
                seen[err.code().name] = seen.get(err.code().name, 0) + 1  # type: ignore[attr-defined]

        one()
    return seen


async def test_random_requests_get_only_documented_statuses(sidecar: RunningSidecar) -> None:
    seen = await asyncio.to_thread(fuzz, sidecar.target)
    assert seen.get("INVALID_ARGUMENT", 0) > 0
    assert seen.get("OK", 0) > 0
    still = await sidecar.stub.Check(pb.CheckRequest(namespace="ok", id=b"still-serving"))
    assert still.outcome == pb.CHECK_OUTCOME_NEW

"""The baseline: a grpc.aio Dedup server whose handlers do nothing but build a response.

  python -m bench.noop_server --listen 127.0.0.1:PORT
Same server options and event loop (uvloop) as `dedup-sidecar serve`, no Redis, no validation.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc

Context = grpc.aio.ServicerContext  # type: ignore[type-arg]


CHECK = pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW)
CLAIM = pb.ClaimResponse(outcome=pb.CLAIM_OUTCOME_ACQUIRED, fencing_token=1)
COMMIT = pb.CommitResponse(outcome=pb.COMMIT_OUTCOME_COMMITTED)
RELEASE = pb.ReleaseResponse(outcome=pb.RELEASE_OUTCOME_RELEASED)
RENEW = pb.RenewResponse(outcome=pb.RENEW_OUTCOME_RENEWED)


def _answer(kind: str, body: object) -> object:
    """The response body of one Stream message (or unary call) of this kind: the fixed answer per item."""
    single = {"check": CHECK, "claim": CLAIM, "commit": COMMIT, "release": RELEASE, "renew": RENEW}
    if kind in single:
        return single[kind]
    items = body.items  # type: ignore[attr-defined]
    if kind == "check_batch":
        return pb.CheckBatchResponse(results=[CHECK for _ in items])
    if kind == "claim_batch":
        return pb.ClaimBatchResponse(results=[CLAIM for _ in items])
    return pb.CommitBatchResponse(results=[COMMIT for _ in items])


class NoopDedup(dedup_pb2_grpc.DedupServicer):
    async def Check(self, request: pb.CheckRequest, context: Context) -> pb.CheckResponse:
        return pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW)

    async def Claim(self, request: pb.ClaimRequest, context: Context) -> pb.ClaimResponse:
        return pb.ClaimResponse(outcome=pb.CLAIM_OUTCOME_ACQUIRED, fencing_token=1)

    async def Commit(self, request: pb.CommitRequest, context: Context) -> pb.CommitResponse:
        return pb.CommitResponse(outcome=pb.COMMIT_OUTCOME_COMMITTED)

    async def Release(self, request: pb.ReleaseRequest, context: Context) -> pb.ReleaseResponse:
        return pb.ReleaseResponse(outcome=pb.RELEASE_OUTCOME_RELEASED)

    async def Renew(self, request: pb.RenewRequest, context: Context) -> pb.RenewResponse:
        return pb.RenewResponse(outcome=pb.RENEW_OUTCOME_RENEWED)

    async def CheckBatch(self, request: pb.CheckBatchRequest, context: Context) -> pb.CheckBatchResponse:
        return pb.CheckBatchResponse(results=[pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW) for _ in request.items])

    async def ClaimBatch(self, request: pb.ClaimBatchRequest, context: Context) -> pb.ClaimBatchResponse:
        return pb.ClaimBatchResponse(results=[CLAIM for _ in request.items])

    async def CommitBatch(self, request: pb.CommitBatchRequest, context: Context) -> pb.CommitBatchResponse:
        return pb.CommitBatchResponse(results=[COMMIT for _ in request.items])

    async def Stream(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: Context
    ) -> AsyncIterator[pb.StreamResponse]:
        async for m in request_iterator:
            kind = m.WhichOneof("request") or "check"
            if kind == "check_batch":  # as the unary CheckBatch (and earlier runs of this baseline) build it
                results = [pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW) for _ in m.check_batch.items]
                yield pb.StreamResponse(
                    correlation_id=m.correlation_id, check_batch=pb.CheckBatchResponse(results=results)
                )
                continue
            out = pb.StreamResponse(correlation_id=m.correlation_id)
            getattr(out, kind).CopyFrom(_answer(kind, getattr(m, kind)))
            yield out


async def serve(listen: str) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    dedup_pb2_grpc.add_DedupServicer_to_server(NoopDedup(), server)
    server.add_insecure_port(listen)
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.noop_server")
    parser.add_argument("--listen", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.listen))
    except ImportError:
        asyncio.run(serve(args.listen))


if __name__ == "__main__":
    main()

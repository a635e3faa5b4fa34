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


class NoopDedup(dedup_pb2_grpc.DedupServicer):
    async def Check(self, request: pb.CheckRequest, context: Context) -> pb.CheckResponse:
        return pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW)

    async def Claim(self, request: pb.ClaimRequest, context: Context) -> pb.ClaimResponse:
        return pb.ClaimResponse(outcome=pb.CLAIM_OUTCOME_ACQUIRED, fencing_token=1)

    async def Commit(self, request: pb.CommitRequest, context: Context) -> pb.CommitResponse:
        return pb.CommitResponse(outcome=pb.COMMIT_OUTCOME_COMMITTED)

    async def CheckBatch(self, request: pb.CheckBatchRequest, context: Context) -> pb.CheckBatchResponse:
        return pb.CheckBatchResponse(results=[pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW) for _ in request.items])

    async def Stream(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: Context
    ) -> AsyncIterator[pb.StreamResponse]:
        async for m in request_iterator:
            if m.WhichOneof("request") == "check_batch":
                results = [pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW) for _ in m.check_batch.items]
                yield pb.StreamResponse(
                    correlation_id=m.correlation_id, check_batch=pb.CheckBatchResponse(results=results)
                )
            else:
                yield pb.StreamResponse(correlation_id=m.correlation_id, check=pb.CheckResponse(outcome=1))


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

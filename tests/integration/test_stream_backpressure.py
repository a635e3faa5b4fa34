"""Stream backpressure: the window bounds requests read but not yet *written*, not merely not yet queued."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.service import DedupService
from sidecar.transport.servicer import Context, DedupServicer
from tests.support.inprocess import RunningSidecar, running_sidecar
from tests.support.redis_server import RedisProcess

WINDOW = 16
SENT = 300
RESULT = b"r" * 60_000  # every response carries it: HTTP/2 flow control stops the writes early


class CountingServicer(DedupServicer):
    """Counts the messages the Stream started answering and the responses it handed to gRPC."""

    def __init__(self, service: DedupService) -> None:
        super().__init__(service, 5.0, stream_window=WINDOW)
        self.started = 0
        self.handed = 0
        self.most_unsent = 0

    async def _stream_one(self, m: pb.StreamRequest) -> pb.StreamResponse:
        self.started += 1
        self.most_unsent = max(self.most_unsent, self.started - self.handed)
        return await super()._stream_one(m)

    async def Stream(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: Context
    ) -> AsyncIterator[pb.StreamResponse]:
        async for response in super().Stream(request_iterator, context):
            self.handed += 1
            yield response  # resumes once gRPC wrote it


async def test_a_client_that_never_reads_holds_at_most_a_window_of_responses(redis_server: RedisProcess) -> None:
    policies = {"namespaces": {"big": {"result_max_bytes": 65_536}}}
    async with running_sidecar(redis_server.url, policies) as sidecar:
        await _commit_big_result(sidecar)
        servicer = CountingServicer(sidecar.service)
        server = grpc.aio.server()
        dedup_pb2_grpc.add_DedupServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            # No BDP probing: the client's receive window stays at its initial size.
            options = [("grpc.http2.bdp_probe", 0), ("grpc.max_receive_message_length", 1 << 20)]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
                stream = dedup_pb2_grpc.DedupStub(channel).Stream(timeout=60)
                for n in range(SENT):
                    await stream.write(
                        pb.StreamRequest(correlation_id=n, claim=pb.ClaimRequest(namespace="big", id=b"x"))
                    )
                # Never reads. The server answers until flow control stops its writes, then stops reading.
                deadline = time.monotonic() + 10
                while True:
                    before = servicer.started
                    await asyncio.sleep(0.2)  # sampling: no progress over 0.2s means it stopped reading
                    if servicer.started == before and servicer.started >= WINDOW:
                        break
                    assert time.monotonic() < deadline, "the server never stopped reading"
                assert servicer.started < SENT  # it stopped reading: the rest waits in the transport
                assert servicer.started - servicer.handed <= WINDOW
                assert servicer.most_unsent <= WINDOW
                stream.cancel()
        finally:
            await server.stop(None)


async def _commit_big_result(sidecar: RunningSidecar) -> None:
    held = await sidecar.stub.Claim(pb.ClaimRequest(namespace="big", id=b"x"))
    commit = pb.CommitRequest(namespace="big", id=b"x", fencing_token=held.fencing_token, result=RESULT)
    assert (await sidecar.stub.Commit(commit)).outcome == pb.COMMIT_OUTCOME_COMMITTED

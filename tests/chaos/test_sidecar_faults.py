"""The sidecar process itself: SIGTERM under load drains in-flight calls."""

from __future__ import annotations

import asyncio
import signal

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.verify.proxy import FaultProxy
from tests.support.sidecar_process import SidecarProcess


async def test_sigterm_under_load_finishes_in_flight_calls(proxy: FaultProxy) -> None:
    sidecar = SidecarProcess(["--redis-url", proxy.url, "--shutdown-grace", "10s"])
    await asyncio.to_thread(sidecar.start)
    try:
        async with grpc.aio.insecure_channel(sidecar.target) as channel:
            stub = dedup_pb2_grpc.DedupStub(channel)
            warm = await stub.Check(pb.CheckRequest(namespace="chaos", id=b"warm"))
            assert warm.outcome == pb.CHECK_OUTCOME_NEW
            proxy.latency_s = 0.5  # every Redis round trip is slow: calls are in flight when SIGTERM lands
            in_flight = [
                asyncio.ensure_future(stub.Check(pb.CheckRequest(namespace="chaos", id=f"t-{i}".encode()), timeout=10))
                for i in range(30)
            ]
            await asyncio.sleep(0.2)  # let them reach the server (not a synchronisation: any order is valid)
            sidecar.signal(signal.SIGTERM)
            replies = await asyncio.gather(*in_flight, return_exceptions=True)
            finished = [r for r in replies if isinstance(r, pb.CheckResponse)]
            assert all(r.outcome == pb.CHECK_OUTCOME_NEW for r in finished)
            failed = [r for r in replies if not isinstance(r, pb.CheckResponse)]
            # Calls that reached the server before SIGTERM finish; one refused after it is UNAVAILABLE, and one
            # that a loaded machine could not finish in its deadline is DEADLINE_EXCEEDED: never a wrong outcome.
            unknown = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
            codes = [r.code() if isinstance(r, grpc.aio.AioRpcError) else r for r in failed]
            assert all(code in unknown for code in codes), codes
            assert len(finished) >= 1
        assert await asyncio.to_thread(sidecar.wait_exit, 30) == 0
        messages = sidecar.log_messages()
        assert any(m.startswith("shutting down") for m in messages)
    finally:
        await asyncio.to_thread(sidecar.stop)

"""SIGTERM: NOT_SERVING, in-flight calls finish, then exit at once; idle or frozen clients do not hold it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess
from tests.telemetry.test_metrics import scrape, values

GRACE = "30s"
EXIT_BOUND_S = 8.0  # far below the grace: nothing waits for idle or frozen connections

# A consumer as ADR 0013 has it: one long-lived Stream (plus a unary call), then idle; it is SIGSTOPped.
FROZEN_CLIENT = r"""
import sys, threading, time, grpc
from dedup.v1 import dedup_pb2 as pb, dedup_pb2_grpc
channel = grpc.insecure_channel(sys.argv[1])
stub = dedup_pb2_grpc.DedupStub(channel)
stub.Check(pb.CheckRequest(namespace="orders", id=b"frozen-unary"), timeout=10)
gate = threading.Event()
def requests():
    yield pb.StreamRequest(correlation_id=1, check=pb.CheckRequest(namespace="orders", id=b"frozen-stream"))
    gate.wait()
responses = stub.Stream(requests())
next(responses)
print("ready", flush=True)
time.sleep(3600)
"""


@pytest.fixture
def frozen_client() -> Iterator[subprocess.Popen[str]]:
    processes: list[subprocess.Popen[str]] = []

    def start(target: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", FROZEN_CLIENT, target], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        processes.append(process)
        return process

    yield start  # type: ignore[misc]
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


def started(redis_server: RedisProcess, prefix: str, *args: str) -> SidecarProcess:
    return SidecarProcess(
        ["--redis-url", redis_server.url, "--key-prefix", prefix, "--shutdown-grace", GRACE, *args]
    ).start()


async def test_idle_and_frozen_clients_do_not_hold_the_shutdown(
    redis_server: RedisProcess, key_prefix: str, frozen_client: object
) -> None:
    sidecar = started(redis_server, key_prefix)
    try:
        client = frozen_client(sidecar.target)  # type: ignore[operator]
        assert (await asyncio.to_thread(client.stdout.readline)).strip() == "ready"
        os.kill(client.pid, signal.SIGSTOP)
        async with grpc.aio.insecure_channel(sidecar.target) as idle:  # connected, an open Stream, no call
            stub = dedup_pb2_grpc.DedupStub(idle)
            await stub.Check(pb.CheckRequest(namespace="orders", id=b"idle"), timeout=10)
            outgoing: asyncio.Queue[pb.StreamRequest | None] = asyncio.Queue()

            async def requests():  # type: ignore[no-untyped-def]
                while (message := await outgoing.get()) is not None:
                    yield message

            stream = stub.Stream(requests())
            await outgoing.put(pb.StreamRequest(correlation_id=1, check=pb.CheckRequest(namespace="orders", id=b"s")))
            assert (await stream.read()).check.outcome == pb.CHECK_OUTCOME_NEW

            signalled = time.monotonic()
            sidecar.signal(signal.SIGTERM)
            code = await asyncio.to_thread(sidecar.wait_exit, 60)
            took = time.monotonic() - signalled
            assert code == 0
            assert took < EXIT_BOUND_S, f"exit took {took:.1f}s with --shutdown-grace {GRACE}"
            with pytest.raises(grpc.aio.AioRpcError) as ended:  # the open stream was ended, not left hanging
                await stream.read()
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            await outgoing.put(None)
    finally:
        sidecar.stop()


async def test_an_in_flight_waiting_claim_answers_before_the_exit(redis_server: RedisProcess, key_prefix: str) -> None:
    sidecar = started(redis_server, key_prefix, "--metrics-listen", "127.0.0.1:0")
    try:
        url = str(sidecar.wait_log(lambda e: e.get("msg") == "telemetry")["metrics_url"])
        async with grpc.aio.insecure_channel(sidecar.target) as channel:
            stub = dedup_pb2_grpc.DedupStub(channel)
            await stub.Claim(pb.ClaimRequest(namespace="orders", id=b"w", lease_ms=60_000))
            waiting = asyncio.ensure_future(
                stub.Claim(pb.ClaimRequest(namespace="orders", id=b"w", wait_ms=25_000), timeout=30)
            )
            deadline = time.monotonic() + 10
            while values(await asyncio.to_thread(scrape, url), "dedup_claim_waiters") != {frozenset(): 1.0}:
                assert time.monotonic() < deadline, "the Claim never started waiting"
                await asyncio.sleep(0.02)
            signalled = time.monotonic()
            sidecar.signal(signal.SIGTERM)
            answer = await asyncio.wait_for(waiting, 20)
            assert answer.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS  # answered, not cut off
            assert answer.retry_after_ms > 50_000
            assert await asyncio.to_thread(sidecar.wait_exit, 60) == 0
            assert time.monotonic() - signalled < EXIT_BOUND_S
    finally:
        sidecar.stop()


def test_a_restarted_sidecar_binds_the_same_port_at_once(redis_server: RedisProcess, key_prefix: str) -> None:
    first = started(redis_server, key_prefix)
    port = first.target.rpartition(":")[2]
    with grpc.insecure_channel(first.target) as channel:
        dedup_pb2_grpc.DedupStub(channel).Check(pb.CheckRequest(namespace="orders", id=b"r"), timeout=10)
        assert first.stop() == 0
    # The last --listen wins: the port the first one had, bound again right after its exit.
    second = SidecarProcess(
        ["--redis-url", redis_server.url, "--key-prefix", key_prefix, "--listen", f"127.0.0.1:{port}"]
    )
    try:
        second.start()
        with grpc.insecure_channel(second.target) as channel:
            again = dedup_pb2_grpc.DedupStub(channel).Check(pb.CheckRequest(namespace="orders", id=b"r"), timeout=10)
        assert again.outcome == pb.CHECK_OUTCOME_DUPLICATE
    finally:
        second.stop()

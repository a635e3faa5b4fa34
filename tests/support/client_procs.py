"""Client work run in separate OS processes (spawned), for races and crashes."""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc


def fire_concurrently(
    target: str, operation: str, namespace: str, record_id: bytes, count: int, start: Any
) -> list[int]:
    """Waits for `start`, then sends `count` Check or Claim calls at once; returns their outcomes."""
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = dedup_pb2_grpc.DedupStub(channel)
        if operation == "check":
            method, request = stub.Check, pb.CheckRequest(namespace=namespace, id=record_id)
        else:
            method, request = stub.Claim, pb.ClaimRequest(namespace=namespace, id=record_id, lease_ms=60_000)
        start.wait(60)
        futures = [method.future(request, timeout=30) for _ in range(count)]
        return [future.result().outcome for future in futures]


def race(target: str, operation: str, namespace: str, record_id: bytes, processes: int, per_process: int) -> list[int]:
    """Every process's outcomes, after releasing all processes at the same moment."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(processes) as pool:
            pending = [
                pool.apply_async(fire_concurrently, (target, operation, namespace, record_id, per_process, start))
                for _ in range(processes)
            ]
            start.set()
            outcomes: list[int] = []
            for result in pending:
                outcomes += result.get(timeout=120)
            return outcomes


def claim_then_hang(target: str, namespace: str, record_id: bytes, lease_ms: int, report: Any) -> None:
    """Claims, reports its token, then blocks until killed (a holder that dies without Commit)."""
    with grpc.insecure_channel(target) as channel:
        stub = dedup_pb2_grpc.DedupStub(channel)
        held = stub.Claim(pb.ClaimRequest(namespace=namespace, id=record_id, lease_ms=lease_ms), timeout=30)
        report.put((os.getpid(), held.outcome, held.fencing_token))
        signal.pause()

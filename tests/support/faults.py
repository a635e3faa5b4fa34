"""Fault-injection toolkit for tests: processes to kill/pause, the TCP fault proxy, a slow
or full Redis, and a consumer process that can be killed between Claim and Commit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from sidecar.verify.proxy import FaultProxy, Mode
from tests.support.redis_server import RedisProcess

__all__ = ["ConsumerProcess", "FaultProxy", "Mode", "paused", "poll_until"]

AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
AOF_EVERYSEC = ("--appendonly", "yes", "--appendfsync", "everysec")


def poll_until(condition: Callable[[], bool], timeout_s: float = 10.0, every_s: float = 0.02) -> None:
    """Waits for `condition` (bounded): the only way tests wait."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s}s")


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP the process for the block, SIGCONT after."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def client_paused(redis: RedisProcess, ms: int, mode: str = "ALL") -> Iterator[None]:
    """CLIENT PAUSE: a slow Redis (commands wait, nothing fails)."""
    redis.client().execute_command("CLIENT", "PAUSE", ms, mode)
    try:
        yield
    finally:
        redis.client().execute_command("CLIENT", "UNPAUSE")


_CONSUMER = r"""
import sys, grpc
from dedup.v1 import dedup_pb2 as pb, dedup_pb2_grpc as rpc
target, ns, mid, lease = sys.argv[1:5]
stub = rpc.DedupStub(grpc.insecure_channel(target))
r = stub.Claim(pb.ClaimRequest(namespace=ns, id=mid.encode(), lease_ms=int(lease)), timeout=5)
print(pb.ClaimOutcome.Name(r.outcome), r.fencing_token, flush=True)
sys.stdin.readline()  # the test says when to go on (or kills/pauses us first)
c = stub.Commit(pb.CommitRequest(namespace=ns, id=mid.encode(), fencing_token=r.fencing_token), timeout=5)
print(pb.CommitOutcome.Name(c.outcome), flush=True)
"""


class ConsumerProcess:
    """A real consumer process: Claims, prints `OUTCOME TOKEN`, waits for a line, Commits, prints the outcome."""

    def __init__(self, target: str, namespace: str, message_id: str, lease_ms: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CONSUMER, target, namespace, message_id, str(lease_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        outcome, token = self.process.stdout.readline().split()
        self.claim_outcome = outcome
        self.token = int(token)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def go_on(self) -> str:
        """Lets it Commit; returns the commit outcome."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline().strip()
        self.process.wait(10)
        return line

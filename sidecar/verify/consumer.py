"""A consumer that does what the docs tell users to: Claim -> effect -> Commit.

- DUPLICATE: ack without applying; IN_PROGRESS: redeliver after retry_after; ACQUIRED: apply
  the effect to the three sinks (transactional, fenced with the token, then plain right after a
  synchronous Renew), then Commit (retrying the same Commit while the lease lasts: a Commit
  retried by its holder is safe), ack on COMMITTED.
- Store or transport errors: never ack; the broker redelivers.
Consumer faults come from the nemesis: a crash after Claim (the task ends, nothing is acked or
released), a crash after the effects and before Commit (the window only a transactional sink
closes), and a pause past the lease (a stale holder that wakes up after another took over).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.verify.broker import Broker
from sidecar.verify.history import History

ConsumerFault = Callable[[], str | None]  # returns "crash", "pause" or None


class Consumer:
    def __init__(
        self,
        number: int,
        stub: dedup_pb2_grpc.DedupAsyncStub,
        broker: Broker,
        history: History,
        fault: ConsumerFault,
        *,
        namespace: str,
        lease_ms: int,
        rpc_timeout_s: float,
        effect_s: float,
    ) -> None:
        self.number = number
        self._stub = stub
        self._broker = broker
        self._history = history
        self._fault = fault
        self._namespace = namespace
        self._lease_ms = lease_ms
        self._rpc_timeout_s = rpc_timeout_s
        self._effect_s = effect_s

    async def run(self) -> None:
        while True:
            message = await self._broker.get()
            await self.handle(message)

    def _error(self, operation: str, err: grpc.RpcError) -> None:
        code = err.code() if isinstance(err, grpc.aio.AioRpcError) else None
        self._history.rpc_errors[f"{operation}:{code.name if code else 'UNKNOWN'}"] += 1

    async def handle(self, message: str) -> None:
        claimed_at = time.monotonic()
        try:
            claim = await self._stub.Claim(
                pb.ClaimRequest(namespace=self._namespace, id=message.encode(), lease_ms=self._lease_ms),
                timeout=self._rpc_timeout_s,
            )
        except grpc.RpcError as err:
            self._error("claim", err)
            self._broker.nack(message, 0.2)
            return
        outcome = pb.ClaimOutcome.Name(claim.outcome).removeprefix("CLAIM_OUTCOME_")
        self._history.outcomes[f"claim:{outcome}"] += 1
        if claim.outcome == pb.CLAIM_OUTCOME_DUPLICATE:
            self._broker.ack(message)
            self._history.acked.add(message)
            return
        if claim.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS:
            self._broker.nack(message, max(claim.retry_after_ms, 50) / 1000)
            return
        if claim.outcome != pb.CLAIM_OUTCOME_ACQUIRED:
            self._history.conflicts += 1
            return
        await self._process(message, claim.fencing_token, claimed_at)

    async def _process(self, message: str, token: int, claimed_at: float) -> None:
        self._history.acquired.append((message, token, claimed_at))
        fault = self._fault()
        if fault == "crash":  # died holding the lease: no effect, no commit, no ack, no release
            self._history.faults["consumer_crash"] += 1
            return
        await asyncio.sleep(self._effect_s)
        if fault == "pause":  # a stale holder: wakes after another holder took over (or a long while)
            self._history.faults["consumer_pause"] += 1
            deadline = time.monotonic() + 4 * self._lease_ms / 1000
            while time.monotonic() < deadline and not self._history.sink.newer_than(message, token):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        self._history.transactional.apply(message, token)  # marker + effect, one atomic step
        now, lease_s = time.monotonic(), self._lease_ms / 1000
        if not self._history.sink.apply(message, token, self.number, claimed_at, now, lease_s):
            self._broker.nack(message, 0.05)  # fenced out: the newer holder owns it
            return
        if not await self._ensure(message, token):  # the plain effect only while the lease is ours
            self._broker.nack(message, 0.05)
            return
        self._history.plain.apply(message, token)
        self._history.fates[(message, token)] = "pending"
        if fault == "crash_after_effect":  # died after its effects, before Commit: the crash window
            self._history.faults["consumer_crash_after_effect"] += 1
            self._history.fates[(message, token)] = "crashed"
            return
        await self._commit(message, token, claimed_at)

    async def _ensure(self, message: str, token: int) -> bool:
        """A synchronous Renew right before the plain effect (the helper's `lease.ensure()`)."""
        try:
            reply = await self._stub.Renew(
                pb.RenewRequest(namespace=self._namespace, id=message.encode(), fencing_token=token,
                                lease_ms=self._lease_ms),
                timeout=self._rpc_timeout_s,
            )  # fmt: skip
        except grpc.RpcError as err:
            self._error("renew", err)
            return False
        return bool(reply.outcome == pb.RENEW_OUTCOME_RENEWED)

    async def _commit(self, message: str, token: int, claimed_at: float) -> None:
        lease_end = claimed_at + self._lease_ms / 1000
        while True:
            try:
                reply = await self._stub.Commit(
                    pb.CommitRequest(namespace=self._namespace, id=message.encode(), fencing_token=token),
                    timeout=self._rpc_timeout_s,
                )
            except grpc.RpcError as err:
                self._error("commit", err)
                if time.monotonic() + 0.1 < lease_end:
                    await asyncio.sleep(0.1)
                    continue
                self._history.fates[(message, token)] = "unconfirmed"
                self._broker.nack(message, 0.2)
                return
            if reply.outcome == pb.COMMIT_OUTCOME_COMMITTED:
                self._history.outcomes["commit:COMMITTED"] += 1
                self._history.committed(message, token, time.monotonic())
                self._history.acked.add(message)
                self._broker.ack(message)
            else:
                self._history.outcomes["commit:LEASE_LOST"] += 1
                self._history.lease_lost += 1
                self._history.fates[(message, token)] = "lease_lost"
                self._broker.nack(message, 0.05)
            return

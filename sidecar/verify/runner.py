"""Runs one verification: broker -> consumers -> sidecar, with a nemesis, then the checker."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, TextIO

import grpc

from dedup.v1 import dedup_pb2_grpc
from sidecar.verify.broker import Broker
from sidecar.verify.consumer import Consumer
from sidecar.verify.history import History, Verdict, check
from sidecar.verify.local import LocalDeployment
from sidecar.verify.nemesis import PROCESS_FAULTS, ConsumerFaults, Fault, run_schedule, schedule


@dataclass(frozen=True)
class VerifyConfig:
    target: str = ""  # empty: --local
    seed: int = 1
    messages: int = 1000
    consumers: int = 8
    namespace: str = ""
    duplicate_rate: float = 0.3
    max_delay_s: float = 2.0
    lease_ms: int = 10_000
    rpc_timeout_s: float = 1.0
    effect_s: float = 0.005
    crash_rate: float = 0.02
    pause_rate: float = 0.01
    fault_every_s: float = 3.0
    fault_window_s: float = 20.0
    process_faults: tuple[str, ...] = PROCESS_FAULTS
    persistence: str = "always"
    max_duration_s: float = 120.0
    progress: bool = False


@dataclass(frozen=True)
class Report:
    config: VerifyConfig
    verdict: Verdict
    faults_scheduled: list[Fault]
    elapsed_s: float
    deliveries: int
    finished: bool

    def as_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "seed": c.seed,
            "target": c.target or "local",
            "namespace": c.namespace,
            "messages": c.messages,
            "consumers": c.consumers,
            "lease_ms": c.lease_ms,
            "persistence": c.persistence if not c.target else "unknown (remote)",
            "deliveries": self.deliveries,
            "elapsed_s": round(self.elapsed_s, 2),
            "finished": self.finished,
            "faults_scheduled": [_fault(f) for f in self.faults_scheduled],
            **self.verdict.as_dict(),
        }

    def summary(self) -> str:
        v = self.verdict
        faults = ", ".join(f"{k}={n}" for k, n in sorted(v.faults.items())) or "none"
        errors = ", ".join(f"{k}={n}" for k, n in sorted(v.rpc_errors.items())) or "none"
        causes = "; ".join(f"{n}x {cause}" for cause, n in sorted(v.plain_causes.items()))
        return "\n".join(
            [
                f"verify seed={self.config.seed} target={self.config.target or 'local'} "
                f"namespace={self.config.namespace}",
                f"  messages {v.messages}, deliveries {self.deliveries} "
                f"({self.deliveries - v.messages} redeliveries), consumers {self.config.consumers}, "
                f"{self.elapsed_s:.1f}s{'' if self.finished else ' (TIME LIMIT: not every message was acked)'}",
                f"  faults injected: {faults}",
                f"  rpc errors: {errors}",
                f"  lost (input - applied, on any sink): {len(v.lost)}",
                f"  wrong answers (ACQUIRED after a recorded Commit): {v.duplicates_after_commit}",
                f"  transactional sink: duplicate effects {v.transactional_duplicates}"
                f" -> {'exactly once' if v.transactional_duplicates == 0 and not v.lost else 'BROKEN'}",
                f"  fenced sink: stale writes {v.stale_fenced_writes}, repeats by a newer token {v.fenced_repeats}, "
                f"stale writes rejected {v.fenced_rejections}"
                f" -> {'no stale write' if v.stale_fenced_writes == 0 else 'BROKEN'}",
                f"  plain sink: duplicate effects {v.plain_duplicates}"
                f"{' (' + causes + ')' if causes else ''} -> at least once: the crash window, not effectively once",
                f"  LEASE_LOST: {v.lease_lost}",
                f"  verdict: {'OK' if v.ok else 'GUARANTEE BROKEN'} "
                "(nothing lost, transactional exactly once, no stale fenced write, no wrong answer)",
            ]
        )


def _fault(f: Fault) -> dict[str, Any]:
    return {"at_s": f.at_s, "kind": f.kind, "duration_s": f.duration_s}


async def _progress(broker: Broker, total: int, out: TextIO, started: float) -> None:
    while True:
        done = len(broker.acked)
        filled = int(30 * done / max(total, 1))
        out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} acked, {time.monotonic() - started:.0f}s")
        out.flush()
        await asyncio.sleep(0.5)


async def verify(config: VerifyConfig, out: TextIO = sys.stderr) -> Report:
    rng = random.Random(config.seed)
    namespace = config.namespace or f"verify.{uuid.uuid4().hex[:8]}"
    config = replace(config, namespace=namespace)
    messages = [f"m-{config.seed}-{i}" for i in range(config.messages)]
    deployment: LocalDeployment | None = None
    target = config.target
    if not target:
        deployment = LocalDeployment(config.persistence, config.lease_ms)
        target = await deployment.start()
    history = History()
    broker = Broker(
        messages, random.Random(rng.random()), duplicate_rate=config.duplicate_rate,
        max_delay_s=config.max_delay_s, visibility_s=config.lease_ms / 1000 + 1,
    )  # fmt: skip
    faults = schedule(random.Random(rng.random()), config.fault_window_s, config.fault_every_s, config.process_faults)
    faults = faults if deployment is not None else []
    consumer_faults = ConsumerFaults(random.Random(rng.random()), config.crash_rate, config.pause_rate)
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    finished = False
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub: dedup_pb2_grpc.DedupAsyncStub = dedup_pb2_grpc.DedupStub(channel)
            for number in range(config.consumers):
                consumer = Consumer(
                    number, stub, broker, history, consumer_faults, namespace=namespace,
                    lease_ms=config.lease_ms, rpc_timeout_s=config.rpc_timeout_s, effect_s=config.effect_s,
                )  # fmt: skip
                tasks.append(asyncio.create_task(consumer.run()))
            if deployment is not None:
                loop_start = asyncio.get_running_loop().time()
                tasks.append(asyncio.create_task(run_schedule(deployment, faults, history, loop_start)))
            if config.progress:
                tasks.append(asyncio.create_task(_progress(broker, len(messages), out, started)))
            broker.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.max_duration_s):
                    await broker.wait_all_acked()
                    finished = True
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        broker.close()
        if config.progress:
            out.write("\n")
        if deployment is not None:
            await deployment.close()
    return Report(config, check(messages, history), faults, time.monotonic() - started, broker.deliveries, finished)

"""A seeded, bounded schedule of faults, and the code that injects them."""

from __future__ import annotations

import asyncio
import random
import signal
from dataclasses import dataclass

from sidecar.verify.history import History
from sidecar.verify.local import LocalDeployment
from sidecar.verify.proxy import Mode

# Faults that need the deployment's processes (`--local`); consumer faults work everywhere.
PROCESS_FAULTS = (
    "sidecar_kill",
    "sidecar_term",
    "redis_stall",
    "redis_restart",
    "proxy_latency",
    "proxy_blackhole",
    "proxy_half_open",
    "proxy_reset",
)


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float
    kind: str
    duration_s: float


def schedule(rng: random.Random, duration_s: float, every_s: float, kinds: tuple[str, ...]) -> list[Fault]:
    """Faults at seeded random times, at most one at a time, each lasting 0.3..1.5 s."""
    faults: list[Fault] = []
    at = rng.uniform(0.5, every_s)
    while kinds and at < duration_s:
        fault = Fault(round(at, 3), rng.choice(kinds), round(rng.uniform(0.3, 1.5), 3))
        faults.append(fault)
        at += fault.duration_s + rng.uniform(0.5 * every_s, 1.5 * every_s)
    return faults


class ConsumerFaults:
    """Decides, per acquired lease, whether the consumer crashes (before its effects, or after them
    and before Commit: half each) or pauses past its lease."""

    def __init__(self, rng: random.Random, crash_rate: float, pause_rate: float) -> None:
        self._rng = rng
        self._crash_rate = crash_rate
        self._pause_rate = pause_rate

    def __call__(self) -> str | None:
        roll = self._rng.random()
        if roll < self._crash_rate / 2:
            return "crash"
        if roll < self._crash_rate:
            return "crash_after_effect"
        if roll < self._crash_rate + self._pause_rate:
            return "pause"
        return None


async def inject(deployment: LocalDeployment, fault: Fault) -> None:
    assert deployment.proxy is not None
    assert deployment.sidecar is not None
    proxy, redis, sidecar = deployment.proxy, deployment.redis, deployment.sidecar
    match fault.kind:
        case "sidecar_kill":
            await sidecar.restart(signal.SIGKILL)
        case "sidecar_term":
            await sidecar.restart(signal.SIGTERM)
        case "redis_stall":
            redis.pause()
            try:
                await asyncio.sleep(fault.duration_s)
            finally:
                redis.resume()
        case "redis_restart":
            redis.kill()
            await asyncio.to_thread(redis.start)
        case "proxy_reset":
            proxy.set(Mode.RESET)
            await asyncio.sleep(fault.duration_s)
            proxy.heal()
        case "proxy_latency" | "proxy_blackhole" | "proxy_half_open":
            mode = {"proxy_latency": Mode.PASS, "proxy_blackhole": Mode.BLACKHOLE}.get(fault.kind, Mode.HALF_OPEN)
            proxy.set(mode, latency_s=0.2 if fault.kind == "proxy_latency" else 0.0)
            await asyncio.sleep(fault.duration_s)
            proxy.heal()  # connections that lost bytes are reset, as TCP would
        case _:
            raise ValueError(f"unknown fault {fault.kind}")


async def run_schedule(deployment: LocalDeployment, faults: list[Fault], history: History, started: float) -> None:
    loop = asyncio.get_running_loop()
    for fault in faults:
        delay = started + fault.at_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        history.faults[fault.kind] += 1
        await inject(deployment, fault)

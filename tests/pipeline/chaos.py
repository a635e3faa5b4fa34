"""The chaos driver: seeded faults while the producer publishes.

- SIGKILL of a random consumer every 2-4 s (the supervisor restarts it);
- SIGSTOP of one consumer right after a Claim (seen in its event log), for longer than
  its lease (3x lease + 1 s), then SIGCONT;
- the sidecar stopped with SIGTERM and restarted; later killed with SIGKILL and restarted;
- a Redis restart (AOF, fsync always: its records survive).
Every fault is logged with its wall-clock time, so duplicates can be traced to a cause.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.pipeline.processes import Consumers, Sidecar, Slot
from tests.support.redis_server import RedisProcess


@dataclass
class ChaosLog:
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, **fields: Any) -> None:
        self.entries.append({"t": time.time(), "kind": kind, **fields})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.entries:
            out[entry["kind"]] = out.get(entry["kind"], 0) + 1
        return out


class FaultSchedule:
    """Seeded faults on a schedule: a consumer SIGKILLed every 2-4 s (the supervisor restarts it)
    and one-off faults at fractions of the run (`plan`); every fault logged with its time."""

    def __init__(self, seed: int, duration_s: float, consumers: Consumers, sidecar: Sidecar) -> None:
        self.rng = random.Random(seed)
        self.duration_s = duration_s
        self.consumers = consumers
        self.sidecar = sidecar
        self.log = ChaosLog()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started = 0.0

    def plan(self) -> list[tuple[float, Callable[[], None]]]:
        """(seconds after the start, fault) pairs."""
        return []

    def may_kill(self, slot: Slot) -> bool:
        return slot.alive()

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._killer, name="chaos-kill", daemon=True)]
        self._threads += [
            threading.Thread(target=self._at, args=(at, fault), name=f"chaos-{fault.__name__}", daemon=True)
            for at, fault in self.plan()
        ]
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        if any(thread.is_alive() for thread in self._threads):
            self.errors.append("chaos threads did not finish in time")

    def stop(self) -> None:
        self._stop.set()

    def _at(self, at_s: float, fault: Callable[[], None]) -> None:
        if self._stop.wait(max(0.0, self.started + at_s - time.monotonic())):
            return
        try:
            fault()
        except Exception as err:  # reported by the test, not swallowed
            self.errors.append(f"{fault.__name__}: {err!r}")

    def _killer(self) -> None:
        rng = random.Random(self.rng.random())
        while not self._stop.wait(rng.uniform(2.0, 4.0)):
            if time.monotonic() - self.started > self.duration_s:
                return
            with self.consumers.locked():
                candidates = [s for s in self.consumers.slots if self.may_kill(s)]
                if not candidates:
                    continue
                slot = rng.choice(candidates)
                pid = slot.signal(signal.SIGKILL)
                assert slot.process is not None
                slot.process.wait()
                self.log.add("consumer_sigkill", consumer=slot.names[pid], pid=pid)

    def _sidecar_sigkill(self) -> None:
        self.log.add("sidecar_sigkill")
        self.sidecar.restart(signal.SIGKILL)
        self.log.add("sidecar_up")


class Chaos(FaultSchedule):
    """The RabbitMQ pipeline's faults (module docstring)."""

    def __init__(
        self,
        seed: int,
        duration_s: float,
        lease_s: float,
        consumers: Consumers,
        sidecar: Sidecar,
        redis: RedisProcess,
    ) -> None:
        super().__init__(seed, duration_s, consumers, sidecar)
        self.lease_s = lease_s
        self.redis = redis

    def plan(self) -> list[tuple[float, Callable[[], None]]]:
        d = self.duration_s
        return [
            (0.15 * d, self._sidecar_sigterm),
            (0.30 * d, self._pause_after_claim),
            (0.50 * d, self._redis_restart),
            (0.70 * d, self._sidecar_sigkill),
        ]

    def may_kill(self, slot: Slot) -> bool:
        return slot.alive() and not slot.paused  # the paused holder is the SIGSTOP fault's

    def _sidecar_sigterm(self) -> None:
        self.log.add("sidecar_sigterm")
        self.sidecar.restart(signal.SIGTERM)
        self.log.add("sidecar_up")

    def _redis_restart(self) -> None:
        self.log.add("redis_stop")
        self.redis.restart()
        self.log.add("redis_up")

    def _pause_after_claim(self) -> None:
        """SIGSTOP a consumer as soon as its event log shows a new Claim; SIGCONT after 3x lease + 1 s."""
        with self.consumers.locked():
            slot: Slot = self.rng.choice([s for s in self.consumers.slots if s.alive()])
            slot.paused = True  # the killer leaves it alone from now on
        offset = slot.events.stat().st_size if slot.events.exists() else 0
        deadline = time.monotonic() + 30
        claim: dict[str, Any] | None = None
        while claim is None and time.monotonic() < deadline and not self._stop.is_set():
            with open(slot.events, "rb") as events:
                events.seek(offset)
                chunk = events.read()
            # Only whole lines: the consumer may be writing the last one right now. The first line
            # read may also start mid-line (the size was taken during a write): skip what won't parse.
            complete, _, _partial = chunk.rpartition(b"\n")
            offset += len(complete) + 1 if complete else 0
            for line in complete.split(b"\n") if complete else []:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry["e"] == "claimed" and slot.alive():
                    claim = entry
                    break
            time.sleep(0.002)  # polling the event log, not synchronising: bounded by the deadline above
        if claim is None:
            slot.paused = False
            self.errors.append("no claim seen to pause after")
            return
        pid = slot.signal(signal.SIGSTOP)
        pause_s = 3 * self.lease_s + 1
        self.log.add("consumer_sigstop", consumer=slot.names[pid], pid=pid, id=claim["id"], token=claim["token"])
        time.sleep(pause_s)
        slot.signal(signal.SIGCONT)
        self.log.add("consumer_sigcont", consumer=slot.names[pid], pid=pid)
        slot.paused = False

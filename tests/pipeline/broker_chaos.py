"""Seeded faults for the Kafka and NATS pipeline tests (the RabbitMQ test has its own, richer driver).

- SIGKILL of a random consumer every 2-4 s while the producer runs (the supervisor restarts it:
  for Kafka each kill and each restart is a rebalance of the group);
- the sidecar killed (SIGKILL) once and restarted on the same port;
- optionally one more consumer slot started late (a scale-out: another rebalance for Kafka).
Every fault is logged with its wall-clock time.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable

from tests.pipeline.chaos import ChaosLog
from tests.pipeline.processes import Consumers, Sidecar, Slot


class BrokerChaos:
    def __init__(
        self, seed: int, duration_s: float, consumers: Consumers, sidecar: Sidecar, late: Slot | None = None
    ) -> None:
        self.rng = random.Random(seed)
        self.duration_s = duration_s
        self.consumers = consumers
        self.sidecar = sidecar
        self.late = late
        self.log = ChaosLog()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started = 0.0

    def start(self) -> None:
        d = self.duration_s
        plan: list[tuple[float, Callable[[], None]]] = [(0.4 * d, self._sidecar_sigkill)]
        if self.late is not None:
            plan.append((0.6 * d, self._scale_out))
        self._threads = [threading.Thread(target=self._killer, name="chaos-kill", daemon=True)]
        self._threads += [
            threading.Thread(target=self._at, args=(at, fault), name=f"chaos-{fault.__name__}", daemon=True)
            for at, fault in plan
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
                candidates = [s for s in self.consumers.slots if s.alive()]
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

    def _scale_out(self) -> None:
        assert self.late is not None
        with self.consumers.locked():
            self.late.start()
            self.consumers.slots.append(self.late)
        self.log.add("consumer_added", consumer=self.late.name)

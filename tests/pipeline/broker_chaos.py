"""Seeded faults for the Kafka and NATS pipeline tests (the RabbitMQ test has its own, richer driver).

- SIGKILL of a random consumer every 2-4 s while the producer runs (the supervisor restarts it:
  for Kafka each kill and each restart is a rebalance of the group);
- the sidecar killed (SIGKILL) once and restarted on the same port;
- optionally one more consumer slot started late (a scale-out: another rebalance for Kafka).
Every fault is logged with its wall-clock time.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.pipeline.chaos import FaultSchedule
from tests.pipeline.processes import Consumers, Sidecar, Slot


class BrokerChaos(FaultSchedule):
    """The Kafka and NATS pipelines' faults (module docstring)."""

    def __init__(
        self, seed: int, duration_s: float, consumers: Consumers, sidecar: Sidecar, late: Slot | None = None
    ) -> None:
        super().__init__(seed, duration_s, consumers, sidecar)
        self.late = late

    def plan(self) -> list[tuple[float, Callable[[], None]]]:
        plan: list[tuple[float, Callable[[], None]]] = [(0.4 * self.duration_s, self._sidecar_sigkill)]
        if self.late is not None:
            plan.append((0.6 * self.duration_s, self._scale_out))
        return plan

    def _scale_out(self) -> None:
        assert self.late is not None
        with self.consumers.locked():
            self.late.start()
            self.consumers.slots.append(self.late)
        self.log.add("consumer_added", consumer=self.late.name)

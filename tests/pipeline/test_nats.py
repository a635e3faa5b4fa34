"""NATS JetStream through the sidecar, against a real nats-server with JetStream.

Two Python consumers (clients/python/examples/nats, nats-py, the asyncio helper) and one Node
consumer (clients/node/examples/nats, @nats-io/jetstream, processOnce) share a durable pull
consumer with explicit acks and AckWait 6 s and apply each order to PostgreSQL with the
transactional sink recipe. The producer publishes DEDUP_NATS_MESSAGES orders (default
1000) with Nats-Msg-Id: 5 % twice at once (JetStream drops those copies) and 3 % again after
the stream's duplicate window (JetStream stores those: the sidecar removes them). Consumers are
SIGKILLed every 2-4 s (their unacked messages come back after AckWait) and the sidecar is killed
and restarted once. Asserted from PostgreSQL: 0 lost, 0 duplicate effects; and from JetStream:
nothing left pending or unacked. DEDUP_NATS_SEED seeds the run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
import psycopg
import pytest

from tests.pipeline.broker_chaos import BrokerChaos
from tests.pipeline.checks import Row, analyse, read_events
from tests.pipeline.processes import ROOT, Consumers, Sidecar, Slot, start_redis, with_postgres
from tests.support import nats as nats_support
from tests.support import postgres
from tests.support.nats import NatsProcess
from tests.support.postgres import PostgresProcess

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pipeline"), pytest.mark.timeout(900)]

PY_EXAMPLE = ROOT / "clients/python/examples/nats"
NODE_EXAMPLE = ROOT / "clients/node/examples/nats"
MESSAGES = int(os.environ.get("DEDUP_NATS_MESSAGES", "1000"))
SEED = int(os.environ.get("DEDUP_NATS_SEED", "14"))
RATE = float(os.environ.get("DEDUP_NATS_RATE", "40"))  # published per second
DRAIN_TIMEOUT_S = float(os.environ.get("DEDUP_NATS_DRAIN_TIMEOUT", "180"))
NAMESPACE = "orders.nats"
DURABLE = "orders-apply"


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[NatsProcess, PostgresProcess]]:
    assert nats_support.available(), "nats-server not built: run `make install` (scripts/deps.d/66-nats.sh)"
    assert postgres.available(), "postgresql not installed: run `make install` (scripts/deps.d/60-pipeline.sh)"
    with with_postgres(NatsProcess()) as services:
        yield services


def fetch(dsn: str) -> list[Row]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT seq, id, token, consumer FROM nats_effect ORDER BY seq").fetchall()
    return [Row(*row) for row in rows]


def pending(url: str) -> tuple[int, int]:
    """(messages not yet delivered, delivered but unacked) of the durable consumer."""

    async def probe() -> tuple[int, int]:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().consumer_info("ORDERS", DURABLE)
            return info.num_pending or 0, info.num_ack_pending or 0
        finally:
            await nc.close()

    return asyncio.run(probe())


def test_nats_jetstream_under_chaos(services: tuple[NatsProcess, PostgresProcess], tmp_path: Path) -> None:
    broker, pg = services
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute((PY_EXAMPLE / "schema.sql").read_text())
    redis = start_redis(tmp_path / "redis")
    policies = tmp_path / "policies.yaml"
    policies.write_text("namespaces:\n  default:\n    lease: 5s\n    max_lease: 1h\n")
    sidecar = Sidecar(redis.url, policies)
    sidecar.start()
    duration_s = MESSAGES / RATE
    publish = [
        sys.executable, str(PY_EXAMPLE / "publish.py"), "--nats-url", broker.url, "--count", str(MESSAGES),
        "--retry-rate", "0.05", "--late-rate", "0.03", "--dup-window", "2", "--late-after", "3",
        "--rate", str(RATE), "--seed", str(SEED),
    ]  # fmt: skip
    # The stream exists before the consumers subscribe (the publisher creates it).
    subprocess.run(
        [*publish, "--count", "0", "--late-after", "0"], capture_output=True, text=True, timeout=60, check=True
    )
    command = [
        sys.executable, str(PY_EXAMPLE / "consumer.py"), "--nats-url", broker.url, "--target", sidecar.target,
        "--pg-dsn", pg.dsn, "--namespace", NAMESPACE, "--durable", DURABLE,
    ]  # fmt: skip
    assert (NODE_EXAMPLE / "dist/consumer.js").exists(), "Node example not built: run `make install` (66-nats.sh)"
    node = [
        "node", str(NODE_EXAMPLE / "dist/consumer.js"), "--nats-url", broker.url, "--target", sidecar.target,
        "--pg-dsn", pg.dsn, "--namespace", NAMESPACE, "--durable", DURABLE,
    ]  # fmt: skip
    slots = [
        Slot(name, cmd, tmp_path / f"{name}.events", tmp_path / f"{name}.log")
        for name, cmd in (("py0", command), ("py1", command), ("node0", node))
    ]
    consumers = Consumers(slots)
    chaos = BrokerChaos(SEED, duration_s, consumers, sidecar)
    try:
        consumers.start()
        chaos.start()
        published = subprocess.run(publish, capture_output=True, text=True, timeout=duration_s * 3 + 120, check=True)
        chaos.join(timeout_s=120)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if len({r.id for r in fetch(pg.dsn)}) >= MESSAGES and pending(broker.url) == (0, 0):
                break
            time.sleep(2)
        left = pending(broker.url)
    finally:
        chaos.stop()
        consumers.stop()
        sidecar.stop()
        redis.close()
    ids = [f"order-{n}" for n in range(MESSAGES)]
    events = read_events([s.events for s in slots])
    report = analyse(ids, fetch(pg.dsn), [], [], events, chaos.log.entries)
    flat = [e for entries in events.values() for e in entries]
    statuses = Counter(e["status"] for e in flat if e["e"] == "outcome")
    absorbed = sum(1 for e in flat if e["e"] == "tx" and not e["first"])
    redelivered = sum(1 for e in flat if e["e"] == "outcome" and e.get("delivered", 1) > 1)
    print(published.stdout.strip())
    print(
        f"nats: messages={MESSAGES} lost={len(report.lost)} transactional_duplicates="
        f"{sum(report.tx_duplicates.values())} outcomes={dict(sorted(statuses.items()))} "
        f"redelivered_outcomes={redelivered} handler_reruns_absorbed_by_sink={absorbed} pending_unacked={left} chaos: "
        + ", ".join(f"{k}={n}" for k, n in sorted(report.chaos.items()))
        + f", consumer_restarts={consumers.restarts}"
    )
    assert not chaos.errors, chaos.errors
    assert report.chaos.get("consumer_sigkill", 0) >= 3, report.chaos
    assert "sidecar_sigkill" in report.chaos, report.chaos
    assert not report.lost, f"lost {len(report.lost)}: {report.lost[:20]}"
    assert not report.unknown, report.unknown[:20]
    assert not report.tx_duplicates, f"transactional sink applied twice: {report.tx_duplicates}"
    assert statuses["DUPLICATE"] > 0, "the copies re-sent after the duplicate window never reached the sidecar"
    assert left == (0, 0), f"JetStream still has messages pending/unacked: {left}"

"""The real pipeline: RabbitMQ + PostgreSQL + Redis + the sidecar + the shipped consumers, under chaos.

Two Python and two Go consumers (the RabbitMQ examples, run as their README says) take
DEDUP_PIPELINE_MESSAGES orders (default 1500; 5 % published twice) from a private RabbitMQ
node while the chaos driver kills consumers, pauses one past its lease right after a Claim,
restarts the sidecar (SIGTERM, then SIGKILL) and restarts Redis. The verdict is counted from
PostgreSQL: 0 lost, 0 duplicate effects on the transactional sink, no stale fenced write, and
every plain-sink duplicate reported with its cause. DEDUP_PIPELINE_SEED seeds the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.pipeline.chaos import Chaos
from tests.pipeline.checks import Report, Row, analyse, pause_story, read_events
from tests.pipeline.processes import (
    PY_EXAMPLE,
    Consumers,
    Sidecar,
    Slot,
    build_go_consumer,
    go_command,
    python_command,
    start_redis,
    with_postgres,
)
from tests.support import postgres, rabbitmq
from tests.support.postgres import PostgresProcess
from tests.support.rabbitmq import RabbitMQProcess

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pipeline"), pytest.mark.timeout(1800)]

MESSAGES = int(os.environ.get("DEDUP_PIPELINE_MESSAGES", "1500"))
SEED = int(os.environ.get("DEDUP_PIPELINE_SEED", "11"))
RATE = float(os.environ.get("DEDUP_PIPELINE_RATE", "40"))  # published per second
LEASE_S = 5.0
NAMESPACE = "orders.apply"
QUEUE = "orders"
DRAIN_TIMEOUT_S = float(os.environ.get("DEDUP_PIPELINE_DRAIN_TIMEOUT", "180"))


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RabbitMQProcess, PostgresProcess]]:
    assert rabbitmq.available(), "rabbitmq-server not installed: run `make install` (scripts/deps.d/60-pipeline.sh)"
    assert postgres.available(), "postgresql not installed: run `make install` (scripts/deps.d/60-pipeline.sh)"
    with with_postgres(RabbitMQProcess()) as services:
        yield services


def fetch(dsn: str, table: str) -> list[Row]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT seq, id, token, consumer FROM {table} ORDER BY seq").fetchall()
    return [Row(*row) for row in rows]


def drained(dsn: str, broker: RabbitMQProcess) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(DISTINCT id) FROM order_effect").fetchone()
    applied = row[0] if row else 0
    return applied >= MESSAGES and broker.queue_depth(QUEUE) == (0, 0)


def test_pipeline_under_chaos(services: tuple[RabbitMQProcess, PostgresProcess], tmp_path: Path) -> None:
    broker, pg = services
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute((PY_EXAMPLE / "schema.sql").read_text())
    redis = start_redis(tmp_path / "redis")
    policies = tmp_path / "policies.yaml"
    policies.write_text(f"namespaces:\n  default:\n    lease: {int(LEASE_S * 1000)}ms\n    max_lease: 1h\n")
    sidecar = Sidecar(redis.url, policies)
    sidecar.start()
    go_binary = build_go_consumer(tmp_path)
    py = python_command(broker.url, sidecar.target, pg.dsn, NAMESPACE)
    go = go_command(go_binary, broker.url, sidecar.target, pg.dsn, NAMESPACE)
    slots = [
        Slot(name, command, tmp_path / f"{name}.events", tmp_path / f"{name}.log")
        for name, command in (("py0", py), ("py1", py), ("go0", go), ("go1", go))
    ]
    consumers = Consumers(slots)
    duration_s = MESSAGES / RATE
    chaos = Chaos(SEED, duration_s, LEASE_S, consumers, sidecar, redis)
    report: Report | None = None
    try:
        consumers.start()
        chaos.start()
        publish = [
            sys.executable, str(PY_EXAMPLE / "publish.py"), "--amqp-url", broker.url, "--queue", QUEUE,
            "--count", str(MESSAGES), "--retry-rate", "0.05", "--rate", str(RATE), "--seed", str(SEED),
        ]  # fmt: skip
        published = subprocess.run(
            publish,
            capture_output=True,
            text=True,
            timeout=duration_s * 3 + 120,
            check=True,
        )
        chaos.join(timeout_s=120)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not drained(pg.dsn, broker) and time.monotonic() < deadline:
            time.sleep(2)
        ids = [f"order-{n}" for n in range(MESSAGES)]
        events = read_events([slot.events for slot in slots])
        tx_rows = fetch(pg.dsn, "order_effect")
        report = analyse(
            ids,
            tx_rows,
            fetch(pg.dsn, "order_fenced_write"),
            fetch(pg.dsn, "order_plain_effect"),
            events,
            chaos.log.entries,
        )
        report.chaos["consumer_restarts"] = consumers.restarts
        print(published.stdout.strip())
        print(report.summary())
        for order_id, cause in report.plain_duplicates:
            print(f"  plain duplicate {order_id}: {cause}")
        for line in pause_story(events, chaos.log.entries, tx_rows):
            print(f"  {line}")
        (tmp_path / "chaos.json").write_text(json.dumps(chaos.log.entries, indent=1))
    finally:
        chaos.stop()
        consumers.stop()
        sidecar.stop()
        redis.close()
    assert not chaos.errors, chaos.errors
    assert report is not None
    assert {"sidecar_sigterm", "sidecar_sigkill", "redis_stop", "consumer_sigstop"} <= set(report.chaos), report.chaos
    assert report.chaos.get("consumer_sigkill", 0) >= int(duration_s / 4) - 2, report.chaos
    assert not report.lost, f"lost {len(report.lost)}: {report.lost[:20]}\n{report.summary()}"
    assert not report.unknown, report.unknown[:20]
    assert not report.tx_duplicates, f"transactional sink applied twice: {report.tx_duplicates}"
    assert not report.stale_fenced, f"stale fenced writes: {report.stale_fenced}"
    assert not report.unexplained(), f"plain duplicates without an expected cause: {report.unexplained()}"
    assert broker.queue_depth(QUEUE) == (0, 0), "the queue did not drain"

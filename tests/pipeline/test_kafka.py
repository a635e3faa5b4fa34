"""Kafka read-process-write through the sidecar, against a real single-node KRaft broker.

Two Go consumers (clients/go/examples/kafka, franz-go) and one Java consumer
(clients/java/examples/kafka, kafka-clients) share a consumer group on topic `in`; each
applies its orders to PostgreSQL with the transactional sink recipe and produces the output to
`out` in a Kafka transaction together with the input offset. The producer publishes
DEDUP_KAFKA_MESSAGES orders (default 1000), 5 % of them twice (new offsets) and 3 % once more
after the sidecar's window (15 s here), when only the effect row remembers which record emitted.
Meanwhile consumers are SIGKILLed every 2-4 s (each kill and restart is a rebalance), one
consumer joins late (another rebalance), and the sidecar is killed and restarted once. Asserted
from PostgreSQL and from `out` read with read_committed: 0 lost, 0 duplicate effects, every id
exactly once in `out`, and each `out` record carries the output of the one effect.
DEDUP_KAFKA_SEED seeds the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.pipeline.broker_chaos import BrokerChaos
from tests.pipeline.checks import Row, analyse, read_events
from tests.pipeline.processes import ROOT, Consumers, Sidecar, Slot, start_redis, with_postgres
from tests.support import kafka, postgres
from tests.support.kafka import KafkaProcess
from tests.support.postgres import PostgresProcess

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pipeline"), pytest.mark.timeout(900)]

GO_EXAMPLE = ROOT / "clients/go/examples/kafka"
JAVA_EXAMPLE = ROOT / "clients/java/examples/kafka"
MESSAGES = int(os.environ.get("DEDUP_KAFKA_MESSAGES", "1000"))
SEED = int(os.environ.get("DEDUP_KAFKA_SEED", "14"))
RATE = float(os.environ.get("DEDUP_KAFKA_RATE", "40"))  # published per second
DRAIN_TIMEOUT_S = float(os.environ.get("DEDUP_KAFKA_DRAIN_TIMEOUT", "180"))
NAMESPACE = "orders.kafka"
WINDOW_S = 15  # the sidecar's window for the namespace; the late re-sends come 16 s after the last order


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[KafkaProcess, PostgresProcess]]:
    assert kafka.available(), "Kafka jars or java missing: run `make install` (scripts/deps.d/65-kafka.sh)"
    assert postgres.available(), "postgresql not installed: run `make install` (scripts/deps.d/60-pipeline.sh)"
    with with_postgres(KafkaProcess()) as services:
        yield services


def build(out: Path) -> Path:
    """`go build` of the example, as its README says (its own module, `replace` to the client)."""
    binary = out / "kafka-example"
    done = subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=GO_EXAMPLE, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"go build of {GO_EXAMPLE} failed:\n{done.stderr[-3000:]}"
    return binary


def read_out(binary: Path, brokers: str, idle: str = "3s") -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(binary), "read-out", "-brokers", brokers, "-idle", idle],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def lag(binary: Path, brokers: str) -> int:
    """Records of `in` the group has not committed yet."""
    done = subprocess.run(
        [str(binary), "lag", "-brokers", brokers], capture_output=True, text=True, timeout=120, check=False
    )
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else -1


def effects(dsn: str) -> tuple[list[Row], dict[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT seq, id, token, consumer, output FROM kafka_effect ORDER BY seq").fetchall()
    return [Row(*row[:4]) for row in rows], {row[1]: row[4] for row in rows}


def test_kafka_read_process_write_under_chaos(services: tuple[KafkaProcess, PostgresProcess], tmp_path: Path) -> None:
    broker, pg = services
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute((GO_EXAMPLE / "schema.sql").read_text())
    binary = build(tmp_path)
    redis = start_redis(tmp_path / "redis")
    policies = tmp_path / "policies.yaml"
    # A short window, so that the late re-sends arrive when the sidecar has forgotten most ids: the
    # effect row (its emitter) must keep them from emitting a second output.
    policies.write_text(f"namespaces:\n  default:\n    lease: 10s\n    max_lease: 1h\n    window: {WINDOW_S}s\n")
    sidecar = Sidecar(redis.url, policies)
    sidecar.start()

    def slot(name: str) -> Slot:
        command = [
            str(binary), "consume", "-brokers", broker.bootstrap, "-target", sidecar.target, "-pg-dsn", pg.dsn,
            "-namespace", NAMESPACE, "-txn-id", f"kafka-{name}",
        ]  # fmt: skip
        return Slot(name, command, tmp_path / f"{name}.events", tmp_path / f"{name}.log")

    assert (JAVA_EXAMPLE / "target/lib").is_dir(), "Java example not built: run `make install` (65-kafka.sh)"
    java = [
        "java", "-Xms64m", "-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp", f"{JAVA_EXAMPLE / 'target/classes'}:{JAVA_EXAMPLE / 'target/lib'}/*",
        "dev.dedup.examples.kafka.KafkaConsumerExample", "--brokers", broker.bootstrap, "--target", sidecar.target,
        "--pg-dsn", pg.dsn, "--namespace", NAMESPACE, "--txn-id", "kafka-java0",
    ]  # fmt: skip
    java_slot = Slot("java0", java, tmp_path / "java0.events", tmp_path / "java0.log")
    consumers = Consumers([slot("go0"), slot("go1"), java_slot])
    late = slot("go2")
    duration_s = MESSAGES / RATE
    chaos = BrokerChaos(SEED, duration_s, consumers, sidecar, late=late)
    out: list[dict[str, Any]] = []
    try:
        consumers.start()
        chaos.start()
        produce = [
            str(binary), "produce", "-brokers", broker.bootstrap, "-count", str(MESSAGES), "-dup-rate", "0.05",
            "-late-rate", "0.03", "-late-after", f"{WINDOW_S + 1}s", "-rate", str(RATE), "-seed", str(SEED),
        ]  # fmt: skip
        published = subprocess.run(
            produce, capture_output=True, text=True, timeout=duration_s * 3 + WINDOW_S + 120, check=True
        )
        chaos.join(timeout_s=120)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            rows, _ = effects(pg.dsn)
            if len({r.id for r in rows}) >= MESSAGES and lag(binary, broker.bootstrap) == 0:
                break
            time.sleep(2)
    finally:
        chaos.stop()
        consumers.stop()
        sidecar.stop()
        redis.close()
    out = read_out(binary, broker.bootstrap, idle="10s")
    ids = [f"order-{n}" for n in range(MESSAGES)]
    tx_rows, outputs = effects(pg.dsn)
    events = read_events([s.events for s in [*consumers.slots]])
    report = analyse(ids, tx_rows, [], [], events, chaos.log.entries)
    per_id = Counter(r["id"] for r in out)
    missing_out = sorted(set(ids) - set(per_id))
    duplicate_out = {i: n - 1 for i, n in per_id.items() if n > 1}
    wrong_output = [r["id"] for r in out if json.dumps(r["value"], sort_keys=True) != _canon(outputs.get(r["id"]))]
    flat = [e for entries in events.values() for e in entries]
    re_emitted = _re_emissions(flat)
    forgotten = _after(flat, "PROCESSED", "skip")  # the sidecar had forgotten the id; the effect row named the emitter
    absorbed = sum(1 for e in flat if e["e"] == "tx" and not e["first"])
    skipped = sum(1 for e in flat if e["e"] == "skip")
    statuses = Counter(e["status"] for e in flat if e["e"] == "outcome")
    aborted = sum(1 for e in flat if e["e"] == "txn" and not e["committed"])
    print(published.stdout.strip())
    print(
        f"kafka: messages={MESSAGES} lost={len(report.lost)} transactional_duplicates="
        f"{sum(report.tx_duplicates.values())} out_records={len(out)} out_missing={len(missing_out)} "
        f"out_duplicates={sum(duplicate_out.values())} re_emitted_from_stored_result={re_emitted} "
        f"skipped_after_window={forgotten} "
        f"duplicates_skipped={skipped} handler_reruns_absorbed_by_sink={absorbed} "
        f"aborted_transactions={aborted} outcomes={dict(sorted(statuses.items()))} chaos: "
        + ", ".join(f"{k}={n}" for k, n in sorted(report.chaos.items()))
        + f", consumer_restarts={consumers.restarts}"
    )
    assert not chaos.errors, chaos.errors
    assert report.chaos.get("consumer_sigkill", 0) >= 3, report.chaos
    assert {"sidecar_sigkill", "consumer_added"} <= set(report.chaos), report.chaos
    assert not report.lost, f"lost {len(report.lost)}: {report.lost[:20]}"
    assert not report.unknown, report.unknown[:20]
    assert not report.tx_duplicates, f"transactional sink applied twice: {report.tx_duplicates}"
    assert not missing_out, f"no `out` record for {len(missing_out)}: {missing_out[:20]}"
    assert not duplicate_out, f"duplicate `out` records: {duplicate_out}"
    assert not wrong_output, f"`out` differs from the effect's output: {wrong_output[:20]}"


def _canon(output: str | None) -> str:
    return json.dumps(json.loads(output), sort_keys=True) if output else ""


def _re_emissions(flat: list[dict[str, Any]]) -> int:
    """Emits that followed a DUPLICATE outcome (the stored result named the record itself)."""
    return _after(flat, "DUPLICATE", "emit")


def _after(flat: list[dict[str, Any]], status: str, event: str) -> int:
    """How many `event`s of a consumer for an id followed an outcome `status` for it."""
    last: dict[tuple[str, str], str] = {}
    count = 0
    for entry in sorted(flat, key=lambda e: e["t"]):
        key = (entry["c"], entry.get("id", ""))
        if entry["e"] == "outcome":
            last[key] = entry["status"]
        elif entry["e"] == event and last.get(key) == status:
            count += 1
    return count

"""The Grafana dashboard's main panels, rendered with matplotlib from a real sidecar's /metrics.

There is no Grafana here, so this is the honest equivalent of a screenshot: it
starts a real Redis and a real sidecar (`--metrics-listen`), drives a scripted
workload whose duplicates arrive at known ages, scrapes /metrics every step,
evaluates the dashboard's PromQL on the scrapes (bench/promql.py: rate and
histogram_quantile) and draws four panels: decisions by outcome, duplicate rate
per namespace, duplicate age p50/p99 against the window, RPC latency p50/p99.

Workload (rates per namespace, ages of the original when a duplicate arrives):
  orders    window 60s, Check:           10 new ids/s; redelivered at 0.3s (10%), 8s (5%) and 50s (5%)
  payments  window 120s, Claim + Commit: 10 new ids/s; redelivered at 2s (5%); at --crash-at s a
            "consumer crash" redelivers every id of the previous 15s (ages 1-15s)

    python bench/dashboard_plot.py [--seconds 80] [--out docs/img/dashboard.png]

Needs matplotlib (`pip install -e '.[plot]'`). The run prints the decision counts
it scheduled next to the ones the sidecar counted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.promql import Scrape, quantile_by, rate_by  # noqa: E402
from dedup.v1 import dedup_pb2 as pb  # noqa: E402
from dedup.v1 import dedup_pb2_grpc  # noqa: E402
from tests.support.redis_server import RedisProcess  # noqa: E402
from tests.support.sidecar_process import SidecarProcess  # noqa: E402

POLICIES = """
namespaces:
  orders: {window: 60s}
  payments: {window: 120s}
"""
RATE = 10  # new ids per second per namespace
ORDERS_REDELIVERY = ((0.3, 0.10), (8.0, 0.05), (50.0, 0.05))  # (age s, probability)
PAYMENTS_REDELIVERY = ((2.0, 0.05),)
CRASH_SPAN_S = 15.0


@dataclass(frozen=True)
class Event:
    at: float
    namespace: str
    id: bytes
    duplicate: bool


def schedule(seconds: float, crash_at: float, rng: random.Random) -> list[Event]:
    events: list[Event] = []
    for n in range(int(seconds * RATE)):
        at = n / RATE + rng.uniform(0, 0.5 / RATE)
        for namespace, redeliveries in (("orders", ORDERS_REDELIVERY), ("payments", PAYMENTS_REDELIVERY)):
            record_id = f"{namespace}-{n}-{uuid.uuid4().hex[:8]}".encode()
            events.append(Event(at, namespace, record_id, False))
            for age, probability in redeliveries:
                if rng.random() < probability and at + age < seconds:
                    events.append(Event(at + age, namespace, record_id, True))
            if namespace == "payments" and crash_at - CRASH_SPAN_S <= at < crash_at - 1:
                events.append(Event(crash_at + rng.uniform(0, 1), namespace, record_id, True))
    return sorted(events, key=lambda e: e.at)


async def deliver(stub: dedup_pb2_grpc.DedupStub, event: Event, outcomes: Counter[str]) -> None:
    if event.namespace == "orders":
        check = await stub.Check(pb.CheckRequest(namespace="orders", id=event.id))
        outcomes[f"orders check {pb.CheckOutcome.Name(check.outcome)}"] += 1
        return
    claim = await stub.Claim(pb.ClaimRequest(namespace="payments", id=event.id, lease_ms=30_000))
    outcomes[f"payments claim {pb.ClaimOutcome.Name(claim.outcome)}"] += 1
    if claim.outcome == pb.CLAIM_OUTCOME_ACQUIRED:
        await asyncio.sleep(0.02)  # the "work"
        commit = await stub.Commit(
            pb.CommitRequest(namespace="payments", id=event.id, fencing_token=claim.fencing_token)
        )
        outcomes[f"payments commit {pb.CommitOutcome.Name(commit.outcome)}"] += 1


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def run_workload(
    target: str, url: str, events: list[Event], seconds: float, step_s: float
) -> tuple[list[float], list[Scrape], Counter[str]]:
    outcomes: Counter[str] = Counter()
    times: list[float] = []
    scrapes: list[Scrape] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = dedup_pb2_grpc.DedupStub(channel)
        start = time.monotonic()

        async def scraper() -> None:
            tick = 0
            while True:
                scrapes.append(await asyncio.to_thread(scrape, url))
                times.append(time.monotonic() - start)
                tick += 1
                await asyncio.sleep(max(0.0, start + tick * step_s - time.monotonic()))

        scraping = asyncio.create_task(scraper())
        pending: set[asyncio.Task[None]] = set()
        for event in events:  # paced by the schedule: the ages are the schedule's, measured by Redis
            await asyncio.sleep(max(0.0, start + event.at - time.monotonic()))
            task = asyncio.create_task(deliver(stub, event, outcomes))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        await asyncio.sleep(max(0.0, start + seconds + step_s - time.monotonic()))
        scraping.cancel()
    scrapes.append(scrape(url))
    times.append(time.monotonic() - start)
    return times, scrapes, outcomes


def render(times: list[float], scrapes: list[Scrape], out: Path, step_s: float, range_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = max(1, round(range_s / step_s))
    indices = range(1, len(scrapes))
    xs = [times[i] for i in indices]
    fig, axes = plt.subplots(2, 2, figsize=(15, 9.5), constrained_layout=True)
    window = f"[{range_s:g}s]"

    def series(query: object) -> dict[tuple[str, ...], list[float]]:
        out: dict[tuple[str, ...], list[float]] = {}
        for n, i in enumerate(indices):
            for key, value in query(i).items():  # type: ignore[operator]
                out.setdefault(key, [math.nan] * len(xs))[n] = value
        return out

    def rates(name: str, by: list[str], **match: str) -> object:
        return lambda i: rate_by(
            scrapes, i, steps, step_s, name, by, lambda found: all(found.get(k) == v for k, v in match.items())
        )

    ax = axes[0][0]
    for (operation, outcome), ys in sorted(series(rates("dedup_decisions_total", ["operation", "outcome"])).items()):
        ax.plot(xs, ys, label=f"{operation} {outcome}")
    ax.set_title(f"Decisions by outcome\nsum by (operation, outcome) (rate(dedup_decisions_total{window}))")
    ax.set_ylabel("decisions / s")

    ax = axes[0][1]
    dup = series(rates("dedup_decisions_total", ["namespace"], outcome="DUPLICATE"))
    every = series(
        lambda i: rate_by(scrapes, i, steps, step_s, "dedup_decisions_total", ["namespace"],
                          lambda found: found["operation"] in ("check", "claim"))
    )  # fmt: skip
    for key in sorted(every):
        ratio = [d / a if a else math.nan for d, a in zip(dup.get(key, [0.0] * len(xs)), every[key], strict=True)]
        ax.plot(xs, [r * 100 for r in ratio], label=key[0])
    ax.set_title(f"Duplicate rate per namespace\nDUPLICATE / all check|claim decisions, rate{window}")
    ax.set_ylabel("% of deliveries")

    ax = axes[1][0]
    ages = rates("dedup_duplicate_age_seconds_bucket", ["namespace", "le"])
    for q, style in ((0.5, "-"), (0.99, "-.")):
        quantiles = series(lambda i, q=q: quantile_by(ages(i), q, 1))  # type: ignore[operator]
        for key, ys in sorted(quantiles.items()):
            ax.plot(xs, ys, style, label=f"p{round(q * 100)} {key[0]}")
    for (namespace,), ys in sorted(series(lambda i: {
        (dict(found)["namespace"],): v for (name, found), v in scrapes[i].items() if name == "dedup_window_seconds"
    }).items()):  # fmt: skip
        ax.plot(xs, ys, ":", linewidth=2, label=f"window {namespace}")
    ax.set_yscale("log")
    ax.set_title(
        "Duplicate age vs window\n"
        f"histogram_quantile(p, rate(dedup_duplicate_age_seconds_bucket{window})), dedup_window_seconds"
    )
    ax.set_ylabel("seconds (log)")

    ax = axes[1][1]
    latency = rates("dedup_rpc_duration_seconds_bucket", ["method", "le"])
    for q, style in ((0.5, "-"), (0.99, "-.")):
        quantiles = series(lambda i, q=q: quantile_by(latency(i), q, 1))  # type: ignore[operator]
        for key, ys in sorted(quantiles.items()):
            ax.plot(xs, [y * 1000 for y in ys], style, label=f"p{round(q * 100)} {key[0]}")
    ax.set_title(
        "RPC latency p50 / p99\n"
        f"histogram_quantile(p, sum by (method, le) (rate(dedup_rpc_duration_seconds_bucket{window})))"
    )
    ax.set_ylabel("ms")

    for row in axes:
        for ax in row:
            ax.title.set_fontsize(9)
            ax.set_xlabel("seconds since start")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(
        "dedup-sidecar dashboard panels: matplotlib rendering of /metrics scraped from a real sidecar + Redis "
        "(bench/dashboard_plot.py), not a Grafana screenshot",
        fontsize=10,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=80.0)
    parser.add_argument("--crash-at", type=float, default=35.0)
    parser.add_argument("--step", type=float, default=1.0, help="scrape interval, s")
    parser.add_argument("--range", type=float, default=10.0, help="rate() range, s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    args = parser.parse_args()

    events = schedule(args.seconds, args.crash_at, random.Random(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        policies = Path(tmp) / "policies.yaml"
        policies.write_text(POLICIES)
        redis = RedisProcess().start()
        sidecar = SidecarProcess(
            ["--redis-url", redis.url, "--policies", str(policies), "--metrics-listen", "127.0.0.1:0",
             "--key-prefix", f"plot-{uuid.uuid4().hex}:"]
        ).start()  # fmt: skip
        try:
            url = str(sidecar.wait_log(lambda e: e.get("msg") == "telemetry")["metrics_url"])
            times, scrapes, outcomes = asyncio.run(run_workload(sidecar.target, url, events, args.seconds, args.step))
        finally:
            sidecar.stop()
            redis.stop()

    scheduled = Counter(f"{e.namespace} {'duplicate' if e.duplicate else 'new'}" for e in events)
    counted = {
        f"{dict(labels)['namespace']} {dict(labels)['operation']} {dict(labels)['outcome']}": int(value)
        for (name, labels), value in scrapes[-1].items()
        if name == "dedup_decisions_total"
    }
    print(f"scheduled deliveries: {dict(sorted(scheduled.items()))}")
    print(f"answers the driver got: {dict(sorted(outcomes.items()))}")
    print(f"dedup_decisions_total at the end: {dict(sorted(counted.items()))}")
    print(f"{len(scrapes)} scrapes over {times[-1]:.0f}s")
    render(times, scrapes, args.out, args.step, args.range)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

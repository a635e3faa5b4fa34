"""The `dedup-sidecar verify` subcommand: flags, the run, the summary and the JSON report.

Exit codes: 0 every guarantee held, 1 a guarantee was broken (a lost message, a duplicate
effect on the transactional sink, a stale write on the fenced sink, or a wrong answer; plain-sink
repeats are reported with their causes and do not fail the run), 2 usage error, 4 the run hit
--max-duration before every message was acked (inconclusive).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from sidecar.verify.nemesis import PROCESS_FAULTS
from sidecar.verify.runner import VerifyConfig, verify

EXIT_BROKEN = 1
EXIT_INCONCLUSIVE = 4


def add_verify_command(commands: Any) -> None:
    p = commands.add_parser(
        "verify",
        help="prove effectively-once: a simulated at-least-once broker, consumers and faults against a sidecar",
    )
    p.add_argument("--target", default="", help="sidecar to verify (host:port); omit with --local")
    p.add_argument(
        "--local", action="store_true", help="start a private Redis, fault proxy and sidecar and inject process faults"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the message order, duplicates and faults (default 1)")
    p.add_argument("--messages", type=int, default=1000, help="distinct messages (default 1000)")
    p.add_argument("--consumers", type=int, default=8, help="concurrent consumers (default 8)")
    p.add_argument("--namespace", default="", help="namespace to use (default verify.<random>; needs a policy)")
    p.add_argument("--duplicate-rate", type=float, default=0.3, help="chance of each extra delivery (default 0.3)")
    p.add_argument("--lease-ms", type=int, default=10_000, help="lease per claim (default 10000)")
    p.add_argument("--crash-rate", type=float, default=0.02, help="chance a consumer dies after Claim (default 0.02)")
    p.add_argument(
        "--pause-rate", type=float, default=0.01, help="chance a consumer pauses past its lease (default 0.01)"
    )
    p.add_argument("--fault-every", type=float, default=3.0, help="mean seconds between process faults (--local)")
    p.add_argument("--fault-window", type=float, default=20.0, help="seconds during which faults are injected")
    p.add_argument(
        "--faults", default=",".join(PROCESS_FAULTS), help="process faults to draw from (--local), comma-separated"
    )
    p.add_argument(
        "--persistence", choices=("always", "everysec", "off"), default="always", help="AOF of the --local Redis"
    )
    p.add_argument("--max-duration", type=float, default=120.0, help="give up after this many seconds")
    p.add_argument("--json", default="", help="also write the JSON report to this file ('-' for stdout)")
    p.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    p.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    if bool(args.target) == bool(args.local):
        print("error: give exactly one of --target HOST:PORT or --local", file=sys.stderr)
        return 2
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = set(faults) - set(PROCESS_FAULTS)
    if unknown:
        print(f"error: unknown faults {sorted(unknown)}; known: {', '.join(PROCESS_FAULTS)}", file=sys.stderr)
        return 2
    config = VerifyConfig(
        target=args.target, seed=args.seed, messages=args.messages, consumers=args.consumers,
        namespace=args.namespace, duplicate_rate=args.duplicate_rate, lease_ms=args.lease_ms,
        crash_rate=args.crash_rate, pause_rate=args.pause_rate, fault_every_s=args.fault_every,
        fault_window_s=args.fault_window, process_faults=faults, persistence=args.persistence,
        max_duration_s=args.max_duration, progress=args.progress or sys.stderr.isatty(),
    )  # fmt: skip
    report = asyncio.run(verify(config))
    print(report.summary())
    if args.json:
        body = json.dumps(report.as_dict(), indent=2, sort_keys=True)
        if args.json == "-":
            print(body)
        else:
            with open(args.json, "w") as handle:
                handle.write(body + "\n")
    if not report.verdict.ok:
        return EXIT_BROKEN
    return 0 if report.finished else EXIT_INCONCLUSIVE

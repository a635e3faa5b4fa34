"""`dedup-sidecar`: serve, check-store, and operator commands against a running sidecar.

Operator exit codes (for scripts): 0 NEW/ACQUIRED/COMMITTED/RELEASED/RENEWED/
FORGOTTEN/inspected, 10 DUPLICATE, 11 IN_PROGRESS, 12 CONFLICT, 13 LEASE_LOST,
14 ABSENT (forget), 3 the RPC failed (status printed), 2 usage error.
check-store: 0 safe, 1 unsafe, 2 unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from sidecar import __version__
from sidecar.settings import SettingsError, add_arguments, load_settings

OUTCOME_EXIT_CODES = {
    "DUPLICATE": 10,
    "IN_PROGRESS": 11,
    "CONFLICT": 12,
    "LEASE_LOST": 13,
    "ABSENT": 14,
}
EXIT_RPC_FAILED = 3
DEFAULT_TARGET = "127.0.0.1:50051"


def _id_bytes(args: argparse.Namespace) -> bytes:
    return bytes.fromhex(args.id) if args.hex else args.id.encode()


def _request(args: argparse.Namespace) -> tuple[str, Message]:
    from dedup.v1 import dedup_pb2 as pb

    common: dict[str, Any] = {"namespace": args.namespace, "id": _id_bytes(args)}
    fingerprint = (getattr(args, "fingerprint", None) or "").encode()
    match args.command:
        case "check":
            return "Check", pb.CheckRequest(**common, fingerprint=fingerprint, window_ms=args.window_ms)
        case "claim":
            return "Claim", pb.ClaimRequest(
                **common, fingerprint=fingerprint, lease_ms=args.lease_ms, wait_ms=args.wait_ms
            )
        case "commit":
            result = args.result.encode() if args.result is not None else None
            return "Commit", pb.CommitRequest(
                **common, fencing_token=args.token, result=result, window_ms=args.window_ms
            )
        case "release":
            return "Release", pb.ReleaseRequest(**common, fencing_token=args.token)
        case "renew":
            return "Renew", pb.RenewRequest(**common, fencing_token=args.token, lease_ms=args.lease_ms)
        case "inspect":
            return "Inspect", pb.InspectRequest(**common)
        case "forget":
            return "Forget", pb.ForgetRequest(**common)
    raise AssertionError(args.command)


def _outcome_name(response: Message) -> str:
    fields = response.DESCRIPTOR.fields_by_name
    name = "outcome" if "outcome" in fields else "state"
    enum = fields[name].enum_type
    assert enum is not None
    full = enum.values_by_number[getattr(response, name)].name
    return full.split("_OUTCOME_")[-1].removeprefix("RECORD_STATE_")


def _readable(value: object) -> object:
    """Bytes as text when they are UTF-8, else as hex; everything else as is."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + value.hex()
    return value


def _operate(args: argparse.Namespace) -> int:
    from dedup.v1 import dedup_pb2_grpc

    method, request = _request(args)
    target = args.target or os.environ.get("DEDUP_TARGET", DEFAULT_TARGET)
    with grpc.insecure_channel(target) as channel:
        stub = dedup_pb2_grpc.DedupStub(channel)
        try:
            response = getattr(stub, method)(request, timeout=args.timeout)
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            return EXIT_RPC_FAILED
    outcome = _outcome_name(response)
    if args.json:
        print(json.dumps(json_format.MessageToDict(response, preserving_proto_field_name=True), sort_keys=True))
    else:
        print(outcome)
        for descriptor, value in response.ListFields():
            if descriptor.name not in ("outcome", "state"):
                print(f"  {descriptor.name}: {_readable(value)}")
    if method == "Inspect":
        return 0
    return OUTCOME_EXIT_CODES.get(outcome, 0)


def _serve(args: argparse.Namespace) -> int:
    from sidecar.app import serve
    from sidecar.logs import configure_logging
    from sidecar.workers import is_worker, supervise, worker_settings

    settings = load_settings(args)
    configure_logging(settings.log_level)
    if is_worker():
        settings = worker_settings(settings)
    elif settings.workers > 1:
        return supervise(settings, sys.argv[sys.argv.index("serve") + 1 :])
    try:
        import uvloop

        return uvloop.run(serve(settings))
    except ImportError:
        return asyncio.run(serve(settings))


def _check_store(args: argparse.Namespace) -> int:
    from sidecar.domain.errors import StoreError
    from sidecar.redis_store.connection import connect, redact
    from sidecar.redis_store.factory import inspect_any

    settings = load_settings(args)
    if not settings.redis_url:
        print("error: check-store needs --redis-url or DEDUP_REDIS_URL", file=sys.stderr)
        return 2

    async def run() -> int:
        client = connect(settings.redis_url, timeout_s=settings.store_timeout / 1000, mode=settings.redis_mode)
        try:
            report = await inspect_any(client)
        except StoreError as err:
            print(f"store {redact(settings.redis_url)}: unreachable ({err})")
            return 2
        finally:
            await client.aclose()
        print(f"store {redact(settings.redis_url)}:")
        for line in report.lines():
            print(f"  {line}")
        print("verdict: " + ("safe" if report.safe else "UNSAFE") + ("" if report.verifiable else " (cannot verify)"))
        return 0 if report.safe else 1

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dedup-sidecar", description="Deduplication sidecar for message consumers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC service")
    add_arguments(serve)
    serve.set_defaults(run=_serve)

    check_store = commands.add_parser("check-store", help="report whether a Redis is safe for dedup records")
    add_arguments(check_store)
    check_store.set_defaults(run=_check_store)

    for name, help_text in (
        ("check", "mark an id on first sight"),
        ("claim", "take a lease on an id"),
        ("commit", "mark a claimed id done"),
        ("release", "drop a lease"),
        ("renew", "extend a lease"),
        ("inspect", "read a record"),
        ("forget", "delete a record (admin)"),
    ):
        op = commands.add_parser(name, help=help_text)
        op.add_argument("namespace")
        op.add_argument("id", help="the message id (UTF-8 text, or hex with --hex)")
        op.add_argument("--hex", action="store_true", help="the id is hex-encoded bytes")
        op.add_argument("--target", help=f"sidecar address (default $DEDUP_TARGET or {DEFAULT_TARGET}; unix:PATH)")
        op.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds (default 5)")
        op.add_argument("--json", action="store_true", help="print the response as JSON")
        if name in ("check", "claim"):
            op.add_argument("--fingerprint", help="content fingerprint")
        if name in ("check", "commit"):
            op.add_argument("--window-ms", type=int, default=0, help="window (0: policy default)")
        if name in ("claim", "renew"):
            op.add_argument("--lease-ms", type=int, default=0, help="lease (0: policy default)")
        if name == "claim":
            op.add_argument(
                "--wait-ms",
                type=int,
                default=0,
                help="wait this long for a holder's Commit/Release (0: answer at once)",
            )
        if name in ("commit", "release", "renew"):
            op.add_argument("--token", type=int, required=True, help="fencing token from claim")
        if name == "commit":
            op.add_argument("--result", help="result to store for later duplicates")
        op.set_defaults(run=_operate)

    from sidecar.verify.command import add_verify_command

    add_verify_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

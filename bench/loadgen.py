"""One load-generator process: drives a Dedup server for a fixed time, prints a JSON result.

Run by the harness, several at once, each with its own channels:
  python -m bench.loadgen --target HOST:PORT --mode check --concurrency 16 --duration 5
Modes: check, claim_commit (unary Claim then Commit, one id), check_batch (CheckBatch of --batch),
stream (Stream, one Check per message), stream_batch (Stream, one CheckBatch per message),
helper_stream / helper_unary ("helper per message": --concurrency consumers, each running the Python
client's AsyncEffectivelyOnce with an empty handler, Claim -> handler -> Commit, per message; one client
per channel, its calls over the Stream or unary; a client without a transport choice is unary, and
the output says which transport was used).
With --rate, calls start on a fixed schedule (open loop) and latency counts from the scheduled time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc

NAMESPACE = "bench"
MODES = ("check", "claim_commit", "check_batch", "stream", "stream_batch", "helper_stream", "helper_unary")


class Ids:
    """Unique 16-byte ids: 8 random bytes for this process, then a counter."""

    def __init__(self) -> None:
        self._tag = uuid.uuid4().bytes[:8]
        self._counter = itertools.count()

    def next(self) -> bytes:
        return self._tag + next(self._counter).to_bytes(8, "big")


class Recorder:
    def __init__(self) -> None:
        self.ids = 0
        self.calls = 0
        self.errors = 0
        self.latencies_us: list[int] = []
        self.recording = False

    def done(self, started: float, ids: int) -> None:
        if self.recording:
            self.ids += ids
            self.calls += 1
            self.latencies_us.append(int((time.perf_counter() - started) * 1e6))


async def unary_worker(stub: dedup_pb2_grpc.DedupStub, mode: str, batch: int, ids: Ids) -> Callable[[], Awaitable[int]]:
    if mode == "check":

        async def call() -> int:
            await stub.Check(pb.CheckRequest(namespace=NAMESPACE, id=ids.next()))
            return 1

    elif mode == "claim_commit":

        async def call() -> int:
            record = ids.next()
            claimed = await stub.Claim(pb.ClaimRequest(namespace=NAMESPACE, id=record))
            await stub.Commit(pb.CommitRequest(namespace=NAMESPACE, id=record, fencing_token=claimed.fencing_token))
            return 1

    else:

        async def call() -> int:
            items = [pb.CheckRequest(namespace=NAMESPACE, id=ids.next()) for _ in range(batch)]
            response = await stub.CheckBatch(pb.CheckBatchRequest(items=items))
            return len(response.results)

    return call


async def run_unary(args: argparse.Namespace, stubs: list[dedup_pb2_grpc.DedupStub], rec: Recorder) -> None:
    ids = Ids()
    stop_at = time.perf_counter() + args.warmup + args.duration
    schedule = itertools.count()
    t0 = time.perf_counter()

    async def worker(index: int) -> None:
        call = await unary_worker(stubs[index % len(stubs)], args.mode, args.batch, ids)
        while (now := time.perf_counter()) < stop_at:
            started = now
            if args.rate:
                started = t0 + next(schedule) / args.rate
                if started > stop_at:
                    return
                if started > now:
                    await asyncio.sleep(started - now)
            try:
                count = await call()
            except grpc.RpcError:
                rec.errors += 1
                continue
            rec.done(started, count)

    await asyncio.gather(*(worker(i) for i in range(args.concurrency)))


async def run_stream(args: argparse.Namespace, stubs: list[dedup_pb2_grpc.DedupStub], rec: Recorder) -> None:
    """One Stream per channel; --concurrency messages in flight in total, split over the streams."""
    ids = Ids()
    stop_at = time.perf_counter() + args.warmup + args.duration
    per_stream = max(1, args.concurrency // len(stubs))

    async def one_stream(stub: dedup_pb2_grpc.DedupStub) -> None:
        window = asyncio.Semaphore(per_stream)
        sent: dict[int, tuple[float, int]] = {}
        correlation = itertools.count(1)

        async def requests() -> AsyncIterator[pb.StreamRequest]:
            while time.perf_counter() < stop_at:
                await window.acquire()
                cid = next(correlation)
                if args.mode == "stream":
                    message = pb.StreamRequest(
                        correlation_id=cid, check=pb.CheckRequest(namespace=NAMESPACE, id=ids.next())
                    )
                    count = 1
                else:
                    items = [pb.CheckRequest(namespace=NAMESPACE, id=ids.next()) for _ in range(args.batch)]
                    message = pb.StreamRequest(correlation_id=cid, check_batch=pb.CheckBatchRequest(items=items))
                    count = args.batch
                sent[cid] = (time.perf_counter(), count)
                yield message

        call = stub.Stream(requests())
        async for response in call:
            started, count = sent.pop(response.correlation_id)
            if response.WhichOneof("response") == "error":
                rec.errors += 1
            else:
                rec.done(started, count)
            window.release()

    await asyncio.gather(*(one_stream(stub) for stub in stubs))


async def run_helper(args: argparse.Namespace, rec: Recorder) -> str:
    """Consumers running the effectively-once helper per message; returns the transport used."""
    import inspect

    from dedup_client.aio import AsyncDedupClient
    from dedup_client.once_aio import AsyncEffectivelyOnce

    wanted = args.mode.removeprefix("helper_")
    options: dict[str, object] = {}
    if "transport" in inspect.signature(AsyncDedupClient).parameters:
        options["transport"] = wanted
    clients = [AsyncDedupClient(args.target, **options) for _ in range(args.channels)]  # type: ignore[arg-type]
    once_options: dict[str, object] = {}
    if args.wait_ms >= 0 and "wait_ms" in inspect.signature(AsyncEffectivelyOnce).parameters:
        once_options["wait_ms"] = args.wait_ms
    helpers = [AsyncEffectivelyOnce(client, NAMESPACE, **once_options) for client in clients]  # type: ignore[arg-type]
    ids = Ids()
    stop_at = time.perf_counter() + args.warmup + args.duration

    async def handler(_lease: object) -> None:
        return None

    async def consumer(index: int) -> None:
        once = helpers[index % len(helpers)]
        while (started := time.perf_counter()) < stop_at:
            try:
                outcome = await once.run(ids.next(), handler)
            except Exception:  # a DedupError: counted, as a failed RPC is in the other modes
                rec.errors += 1
                continue
            if outcome.status.name != "PROCESSED":
                rec.errors += 1
                continue
            rec.done(started, 1)

    try:
        await asyncio.gather(*(consumer(i) for i in range(args.concurrency)))
        used = str(getattr(clients[0], "transport", "unary"))
    finally:
        for client in clients:
            await client.close()
    return used


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    channels = [
        grpc.aio.insecure_channel(args.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(args.channels)
    ]
    for channel in channels:
        await asyncio.wait_for(channel.channel_ready(), 20)
    stubs = [dedup_pb2_grpc.DedupStub(channel) for channel in channels]
    rec = Recorder()
    runner = run_stream if args.mode.startswith("stream") else run_unary

    async def arm() -> tuple[float, float]:
        await asyncio.sleep(args.warmup)
        rec.recording = True
        return time.perf_counter(), time.process_time()

    armed = asyncio.ensure_future(arm())
    transport = "stream" if args.mode.startswith("stream") else "unary"
    if args.mode.startswith("helper"):
        transport = await run_helper(args, rec)
    else:
        await runner(args, stubs, rec)
    started, cpu_started = await armed
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    for channel in channels:
        await channel.close()
    return {
        "pid": os.getpid(),
        "ids": rec.ids,
        "calls": rec.calls,
        "errors": rec.errors,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "latencies_us": rec.latencies_us,
        "transport": transport,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--target", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--concurrency", type=int, default=16, help="calls (or stream messages) in flight")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=0.0, help="calls/s for this process (0: as fast as possible)")
    parser.add_argument("--wait-ms", type=int, default=-1, help="helper: Claim wait_ms (-1: client default)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop

        result = uvloop.run(main_async(args))
    except ImportError:
        result = asyncio.run(main_async(args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

"""A small asyncio TCP fault proxy (toxiproxy and `tc netem` are not available everywhere).

Sits between the sidecar and Redis. Modes, switchable at any time:
- PASS: forward both ways;
- latency: every chunk waits `latency_s` before it is forwarded (both ways);
- BLACKHOLE: bytes are read and dropped both ways; connections stay open (a network partition);
- HALF_OPEN: client -> server still flows, server -> client is dropped (the write is applied,
  its reply is lost: the case that makes retried writes unsafe);
- RESET: every open connection is closed with RST and new ones are reset at once.

A TCP stream never loses bytes and goes on: so when a fault that dropped bytes ends (heal, or
a switch to another mode), every connection that lost bytes is reset, as TCP would after a
partition long enough to give up. (Dropping and then resuming the same stream would hand a
pipelining client replies that belong to other requests: no real network does that.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from enum import Enum


class Mode(Enum):
    PASS = "pass"  # noqa: S105 - not a password
    BLACKHOLE = "blackhole"
    HALF_OPEN = "half_open"
    RESET = "reset"


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), not FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to upstream_host:upstream_port."""

    def __init__(self, upstream_host: str, upstream_port: int, listen_port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_port = listen_port
        self.mode = Mode.PASS
        self.latency_s = 0.0
        self.forwarded_bytes = 0
        self.dropped_bytes = 0
        self._server: asyncio.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._lossy: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.reset_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def set(self, mode: Mode, latency_s: float | None = None) -> None:
        self._reset_lossy()
        self.mode = mode
        if latency_s is not None:
            self.latency_s = latency_s
        if mode is Mode.RESET:
            self.reset_all()

    def heal(self) -> None:
        self._reset_lossy()
        self.mode = Mode.PASS
        self.latency_s = 0.0

    def _reset_lossy(self) -> None:
        for pair in list(self._lossy & self._conns):
            for side in pair:
                _abort(side)
            self._conns.discard(pair)
        self._lossy.clear()

    def reset_all(self) -> None:
        for client, upstream in list(self._conns):
            _abort(client)
            _abort(upstream)
        self._conns.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.mode is Mode.RESET:
            _abort(client_w)
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(client_w)
            return
        pair = (client_w, up_w)
        self._conns.add(pair)
        for reader, writer, upstream in ((client_r, up_w, True), (up_r, client_w, False)):
            task = asyncio.create_task(self._pipe(reader, writer, upstream, pair))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _drops(self, to_upstream: bool) -> bool:
        return self.mode is Mode.BLACKHOLE or (self.mode is Mode.HALF_OPEN and not to_upstream)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        to_upstream: bool,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if self.latency_s > 0:
                    await asyncio.sleep(self.latency_s)
                if self._drops(to_upstream):
                    self.dropped_bytes += len(chunk)
                    self._lossy.add(pair)
                    continue
                writer.write(chunk)
                self.forwarded_bytes += len(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if pair in self._conns:
                self._conns.discard(pair)
                for side in pair:
                    side.close()

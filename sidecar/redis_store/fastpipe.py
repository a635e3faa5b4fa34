"""FastPipe: one auto-pipelined Redis connection for the hot path (scripts only).

Every command issued during one event-loop pass is packed by hiredis and sent
in ONE socket write; replies are parsed by hiredis's reader and matched to
callers in order. Redis answers a connection's commands in order, so a FIFO of
futures is the whole protocol. redis-py packs each command in Python (about
20 µs each) and takes a pool connection per call; this path costs about 1 µs
per command (numbers in docs/adr/0070-redis-client.md).

Safety, as in connection.py: a command that was written is never sent again.
If the connection is lost or stalls for `timeout_s`, every pending command
fails with StoreError (kind connection or timeout) and the next command opens
a new connection. The one re-send is a NOSCRIPT reply: Redis did not run the
script, so it is sent again as EVAL (which also caches it).

Used for standalone redis:// and unix:// URLs only; rediss://, Sentinel and
Cluster stay on redis-py (factory.py decides), which also does admin and health.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ResponseError

from sidecar.domain.errors import StoreError, StoreTimeout
from sidecar.redis_store.errors import to_store_error

Arg = str | int | float | bytes

FAST_SCHEMES = ("redis://", "unix://")


def supports(url: str) -> bool:
    """Whether FastPipe can serve this URL (plain standalone TCP or Unix socket)."""
    return url.startswith(FAST_SCHEMES)


class _Protocol(asyncio.Protocol):
    """Feeds bytes to hiredis and resolves the oldest pending future per reply."""

    def __init__(self, pipe: FastPipe) -> None:
        self._pipe = pipe
        self._reader = hiredis.Reader(replyError=ResponseError, notEnoughData=_MORE)
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def _current(self) -> bool:
        """False once the pipe has moved on to another connection: a late callback must not touch it."""
        return self._pipe._transport is self._transport

    def data_received(self, data: bytes) -> None:
        if not self._current():
            return
        self._reader.feed(data)
        pending = self._pipe._pending
        while (reply := self._reader.gets()) is not _MORE:
            head = pending[0]
            if type(head) is _Group:
                head.replies.append(reply)
                if len(head.replies) < head.size:
                    continue
                pending.popleft()
                future = head.future
                reply = head.replies
            else:
                future = pending.popleft()  # type: ignore[assignment]
            if not future.done():  # a caller whose deadline passed has gone
                future.set_result(reply)
        self._pipe._progress = asyncio.get_running_loop().time()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pipe._transport is not self._transport:
            return  # already dropped (_abort), or a newer connection is in use
        self._pipe._lost(StoreError("connection", str(exc) if exc else "connection closed by the server"))


_MORE = object()


class _Group:
    """The replies of `size` commands sent together, resolving one future with the list."""

    __slots__ = ("future", "replies", "size")

    def __init__(self, future: asyncio.Future[Any], size: int) -> None:
        self.future = future
        self.size = size
        self.replies: list[Any] = []


class FastPipe:
    """An auto-pipelining connection; `execute` sends one command and awaits its reply."""

    def __init__(self, url: str, *, timeout_s: float, client_name: str = "dedup-sidecar") -> None:
        if not supports(url):
            raise ValueError(f"FastPipe serves redis:// and unix:// URLs only, not {url.split('://')[0]}://")
        self._options: dict[str, Any] = dict(parse_url(url))
        self._timeout_s = timeout_s
        self._client_name = client_name
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._pending: deque[asyncio.Future[Any] | _Group] = deque()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._progress = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False
        self._tags = itertools.count(1)

    # -- connection -------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        options = self._options
        async with asyncio.timeout(self._timeout_s):
            if "path" in options:
                transport, _ = await loop.create_unix_connection(lambda: _Protocol(self), options["path"])
            else:
                transport, _ = await loop.create_connection(
                    lambda: _Protocol(self), options.get("host", "localhost"), options.get("port", 6379)
                )
        self._transport = transport
        self._progress = loop.time()
        setup: list[tuple[Arg, ...]] = []
        if options.get("password"):
            user = options.get("username")
            setup.append(("AUTH", user, options["password"]) if user else ("AUTH", options["password"]))
        if options.get("db"):
            setup.append(("SELECT", int(options["db"])))
        setup.append(("CLIENT", "SETNAME", self._client_name))
        replies = [self._send(command) for command in setup]
        try:
            async with asyncio.timeout(self._timeout_s):
                for reply in replies:
                    if isinstance(error := await reply, ResponseError):
                        raise error
        except BaseException:
            self._abort(StoreError("connection", "connection setup failed"))
            raise

    async def _ensure_connected(self) -> None:
        if self._transport is not None:
            return
        if self._closed:
            raise StoreError("connection", "the fast pipe is closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
            self._connecting.add_done_callback(self._connected)
        await asyncio.shield(self._connecting)

    def _connected(self, attempt: asyncio.Future[None]) -> None:
        self._connecting = None
        if not attempt.cancelled():
            attempt.exception()  # retrieved: every waiter sees it

    def _lost(self, error: StoreError) -> None:
        """Fails every pending and unsent command; the next command reconnects."""
        self._transport = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._out.clear()
        pending, self._pending = self._pending, deque()
        for entry in pending:
            future = entry.future if isinstance(entry, _Group) else entry
            if not future.done():
                future.set_exception(error)

    def _abort(self, error: StoreError) -> None:
        transport = self._transport
        self._lost(error)
        if transport is not None:
            transport.abort()

    # -- sending ----------------------------------------------------------

    def _send(self, command: tuple[Arg, ...]) -> asyncio.Future[Any]:
        """One command; its future gets the reply."""
        return self._queue([command], None)

    def _queue(self, commands: Sequence[tuple[Arg, ...]], group: int | None) -> asyncio.Future[Any]:
        pack = hiredis.pack_command
        return self._queue_packed([pack(command) for command in commands], group)  # type: ignore[arg-type]

    def _queue_packed(self, packed: list[bytes], group: int | None) -> asyncio.Future[Any]:
        """Queues commands already in RESP, one per chunk. With `group` (their number), one future
        gets the list of their replies (no future per command); without, the one command's reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._transport is None:  # lost since the caller checked: never queue for a dead socket
            future.set_exception(StoreError("connection", "connection lost"))
            return future
        self._out += packed
        if not self._pending:
            self._progress = loop.time()
        self._pending.append(future if group is None else _Group(future, group))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout_s, self._check_stall)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None:
            data = b"".join(self._out)
            self._out.clear()
            self._transport.write(data)

    def _check_stall(self) -> None:
        """Kills a connection whose oldest pending command got no reply for timeout_s."""
        self._watchdog = None
        if not self._pending or self._transport is None:
            return
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._progress
        if idle >= self._timeout_s:
            self._abort(StoreTimeout(f"no reply from Redis for {idle:.3f}s"))
        else:
            self._watchdog = loop.call_later(self._timeout_s - idle, self._check_stall)

    async def execute(self, *command: Arg) -> Any:
        """Sends one command (coalesced with this loop pass's others) and returns its reply."""
        await self._ensure_connected()
        reply = await self._send(command)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def execute_many(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Sends the commands (in one write with this loop pass's others) and returns their replies
        in order, a ResponseError as a value. An `ECHO <tag>` closes the group: if its reply is not
        the tag, the replies are out of step with the requests (a broken proxy), so the connection
        is dropped and every pending call fails, as for a script's echo (FastScripts)."""
        pack = hiredis.pack_command
        return await self.execute_packed([pack(command) for command in commands], len(commands))  # type: ignore[arg-type]

    async def execute_packed(self, packed: list[bytes], count: int) -> list[Any]:
        """execute_many for `count` commands the caller packed in RESP itself (a hot path that
        knows its commands' shape packs them about three times faster than hiredis)."""
        await self._ensure_connected()
        tag = b"%d" % next(self._tags)
        replies: list[Any] = await self._queue_packed([*packed, _echo(tag)], count + 1)
        if replies[-1] != tag:
            error = StoreError("protocol", "replies out of step with their commands; connection dropped")
            self._abort(error)
            raise error
        del replies[-1]
        return replies

    async def close(self) -> None:
        self._closed = True
        self._abort(StoreError("connection", "the fast pipe was closed"))


def _echo(tag: bytes) -> bytes:
    return b"*2\r\n$4\r\nECHO\r\n$%d\r\n%b\r\n" % (len(tag), tag)


def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def echoing(source: str) -> str:
    """The script wrapped so that its reply is {tag, reply}, the tag being an extra last ARGV.

    The wrapped script sees ARGV without the tag (a local copy shadows the global), so the
    scripts' own argument layouts, including ones read from the end, are unchanged.
    """
    return (
        "local call_tag = ARGV[#ARGV]\n"
        "local ARGV = (function(all) local t = {} for i = 1, #all - 1 do t[i] = all[i] end return t end)(ARGV)\n"
        f"local function body()\n{source}\nend\n"
        "return {call_tag, body()}\n"
    )


class FastScripts:
    """Runs the named Lua scripts over a FastPipe by EVALSHA, falling back to EVAL on NOSCRIPT.

    Every call carries a fresh tag that the script echoes. Redis answers in order and TCP
    loses nothing, so the echo always matches; if it ever does not (a broken proxy in the
    path), the connection is dropped and every pending call fails: a reply is never handed
    to a request it does not belong to.
    """

    def __init__(self, pipe: FastPipe, sources: Mapping[str, str]) -> None:
        self.pipe = pipe
        self._sources = {name: echoing(source) for name, source in sources.items()}
        self._shas = {name: _sha1(source) for name, source in self._sources.items()}
        self._tags = itertools.count(1)

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        tag = b"%d" % next(self._tags)
        try:
            try:
                reply = await self.pipe.execute("EVALSHA", self._shas[name], len(keys), *keys, *args, tag)
            except ResponseError as err:
                if not str(err).startswith("NOSCRIPT"):
                    raise
                reply = await self.pipe.execute("EVAL", self._sources[name], len(keys), *keys, *args, tag)
        except StoreError:
            raise
        except Exception as err:
            raise to_store_error(err) from err
        if not (isinstance(reply, list) and len(reply) == 2 and reply[0] == tag):
            error = StoreError("protocol", f"reply out of step with its request ({name}); connection dropped")
            self.pipe._abort(error)
            raise error
        if isinstance(reply[1], ResponseError):  # a script's redis.error_reply(...)
            raise to_store_error(reply[1])
        return reply[1]

    async def close(self) -> None:
        await self.pipe.close()

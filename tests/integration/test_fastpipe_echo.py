"""FastScripts never hands a reply to a request it does not belong to: the echoed tag is checked."""

from __future__ import annotations

import asyncio

import hiredis
import pytest

from sidecar.domain.errors import StoreError
from sidecar.redis_store.fastpipe import FastPipe, FastScripts
from tests.support.redis_server import RedisProcess


async def test_an_out_of_step_reply_drops_the_connection_and_fails_the_call() -> None:
    """A broken middlebox answers every script with another request's tag; no answer is accepted."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                name = command[0].upper()
                if name == b"CLIENT":
                    writer.write(b"+OK\r\n")
                else:  # EVALSHA/EVAL: reply with a tag that is not the request's
                    writer.write(b"*2\r\n$7\r\nnot-you\r\n:1\r\n")
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scripts = FastScripts(FastPipe(f"redis://127.0.0.1:{port}/0", timeout_s=5), {"noop": "return 1"})
    try:
        for _ in range(2):
            with pytest.raises(StoreError) as caught:
                await scripts.run("noop", ["k"], [])
            assert caught.value.kind == "protocol"
        assert connections == 2  # the out-of-step connection was dropped, the next call reconnected
    finally:
        await scripts.close()
        server.close()
        await server.wait_closed()


async def test_scripts_see_their_own_arguments_without_the_tag(redis_server: RedisProcess) -> None:
    scripts = FastScripts(FastPipe(redis_server.url, timeout_s=5), {"last": "return {#ARGV, ARGV[#ARGV]}"})
    try:
        assert await scripts.run("last", [], [b"first", b"trailer"]) == [2, b"trailer"]
        assert await scripts.run("last", [], []) == [0]  # {0, nil}: Redis stops the array at nil
    finally:
        await scripts.close()


async def test_plain_commands_are_closed_by_an_echo_that_must_match() -> None:
    """execute_many (Check without Lua) ends each group with ECHO <tag>; a wrong echo drops the connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                name = command[0].upper()
                if name == b"CLIENT":
                    writer.write(b"+OK\r\n")
                elif name == b"ECHO":
                    writer.write(b"$7\r\nnot-you\r\n")
                else:  # SET ... NX GET: "absent", which the caller must not get to see
                    writer.write(b"$-1\r\n")
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = FastPipe(f"redis://127.0.0.1:{port}/0", timeout_s=5)
    try:
        with pytest.raises(StoreError) as caught:
            await pipe.execute_many([("SET", "k", b"1", "NX", "PX", 1000, "GET")])
        assert caught.value.kind == "protocol"
    finally:
        await pipe.close()
        server.close()
        await server.wait_closed()


async def test_plain_commands_answer_in_order(redis_server: RedisProcess) -> None:
    pipe = FastPipe(redis_server.url, timeout_s=5)
    try:
        replies = await pipe.execute_many([("ECHO", b"a"), ("ECHO", b"b"), ("INCRBY", "not-a-number", "x")])
        assert replies[:2] == [b"a", b"b"]
        assert isinstance(replies[2], Exception)  # an error reply is a value, for its item alone
    finally:
        await pipe.close()

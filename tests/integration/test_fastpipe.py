"""FastPipe against real servers: ordering, NOSCRIPT, AUTH/db, Unix sockets, and failure without resends."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import ResponseError

from sidecar.domain.errors import StoreError, StoreTimeout
from sidecar.redis_store.factory import open_store
from sidecar.redis_store.fastpipe import FastPipe, FastScripts, supports
from sidecar.redis_store.scripts import script_sources
from tests.support.redis_server import RedisProcess


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A private server, for tests that kill clients or the server."""
    server = RedisProcess().start()
    yield server
    server.close()


async def test_concurrent_commands_are_answered_in_order(redis_server: RedisProcess, key_prefix: str) -> None:
    pipe = FastPipe(redis_server.url, timeout_s=2)
    try:
        replies = await asyncio.gather(*(pipe.execute("INCR", f"{key_prefix}n") for _ in range(2000)))
        assert replies == list(range(1, 2001))
        assert await pipe.execute("GET", f"{key_prefix}n") == b"2000"
        assert await pipe.execute("GET", f"{key_prefix}absent") is None
    finally:
        await pipe.close()


async def test_error_reply_fails_only_its_command(redis_server: RedisProcess, key_prefix: str) -> None:
    pipe = FastPipe(redis_server.url, timeout_s=2)
    try:
        await pipe.execute("SET", f"{key_prefix}s", b"text")
        results = await asyncio.gather(
            pipe.execute("INCR", f"{key_prefix}s"), pipe.execute("GET", f"{key_prefix}s"), return_exceptions=True
        )
        assert isinstance(results[0], ResponseError)
        assert results[1] == b"text"
    finally:
        await pipe.close()


async def test_scripts_reload_after_script_flush(redis_server: RedisProcess, key_prefix: str) -> None:
    scripts = FastScripts(FastPipe(redis_server.url, timeout_s=2), {"echo": "return ARGV[1]"})
    try:
        assert await scripts.run("echo", [], [b"one"]) == b"one"
        redis_server.client().script_flush()
        # Many callers hit NOSCRIPT in the same pass; each is re-sent once as EVAL.
        replies = await asyncio.gather(*(scripts.run("echo", [f"{key_prefix}k"], [str(i)]) for i in range(50)))
        assert replies == [str(i).encode() for i in range(50)]
        assert await scripts.run("echo", [], [b"again"]) == b"again"
    finally:
        await scripts.close()


async def test_script_errors_become_store_errors(redis_server: RedisProcess) -> None:
    scripts = FastScripts(FastPipe(redis_server.url, timeout_s=2), {"boom": "return redis.error_reply('OOM fake')"})
    try:
        with pytest.raises(StoreError) as caught:
            await scripts.run("boom", [], [])
        assert caught.value.kind == "oom"
    finally:
        await scripts.close()


async def test_lost_connection_fails_every_pending_command_and_resends_none(
    own_redis: RedisProcess, key_prefix: str
) -> None:
    pipe = FastPipe(own_redis.url, timeout_s=5, client_name="victim")
    admin = own_redis.client()
    try:
        await pipe.execute("PING")
        # The BLPOP blocks the connection, so the INCRs behind it are written but not yet run.
        blocked = asyncio.ensure_future(pipe.execute("BLPOP", f"{key_prefix}list", 10))
        queued = [asyncio.ensure_future(pipe.execute("INCR", f"{key_prefix}counter")) for _ in range(20)]
        await _until(lambda: any(c["cmd"] == "blpop" for c in admin.client_list() if c["name"] == "victim"))
        admin.client_kill_filter(_type="normal", skipme=True)
        for future in [blocked, *queued]:
            with pytest.raises(StoreError) as caught:
                await future
            assert caught.value.kind == "connection"
        # The next command reconnects; nothing failed was sent again.
        assert await pipe.execute("GET", f"{key_prefix}counter") is None
        assert admin.get(f"{key_prefix}counter") is None
    finally:
        await pipe.close()


async def test_stalled_connection_times_out_every_pending_command(own_redis: RedisProcess, key_prefix: str) -> None:
    pipe = FastPipe(own_redis.url, timeout_s=0.3)
    try:
        await pipe.execute("PING")
        pending = [pipe.execute("BLPOP", f"{key_prefix}list", 5), pipe.execute("PING")]
        results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 3)
        assert all(isinstance(r, StoreTimeout) for r in results)
        assert await pipe.execute("PING") == b"PONG"
    finally:
        await pipe.close()


async def test_server_down_then_back(own_redis: RedisProcess) -> None:
    pipe = FastPipe(own_redis.url, timeout_s=1)
    scripts = FastScripts(pipe, {"one": "return 1"})
    try:
        assert await scripts.run("one", [], []) == 1
        own_redis.kill()
        with pytest.raises(StoreError) as caught:
            await scripts.run("one", [], [])
        assert caught.value.kind == "connection"
        own_redis.start()
        assert await scripts.run("one", [], []) == 1  # reconnected, and reloaded the script (NOSCRIPT)
    finally:
        await pipe.close()


async def test_auth_and_database_from_the_url(redis_server: RedisProcess, key_prefix: str) -> None:
    user = f"u{key_prefix.strip(':')}"
    redis_server.client().acl_setuser(user, enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
    pipe = FastPipe(f"redis://{user}:s3cret@127.0.0.1:{redis_server.port}/3", timeout_s=2, client_name="authed")
    try:
        info = (await pipe.execute("CLIENT", "INFO")).decode()
        assert " db=3 " in info
        assert " name=authed " in info
        assert f" user={user} " in info
    finally:
        await pipe.close()
        redis_server.client().acl_deluser(user)


async def test_wrong_password_is_a_store_error(redis_server: RedisProcess) -> None:
    url = f"redis://nobody:wrong@127.0.0.1:{redis_server.port}/0"
    scripts = FastScripts(FastPipe(url, timeout_s=2), {"one": "return 1"})
    try:
        with pytest.raises(StoreError) as caught:
            await scripts.run("one", [], [])
        assert caught.value.kind == "auth"
    finally:
        await scripts.close()


async def test_unix_socket() -> None:
    socket_path = Path(tempfile.mkdtemp(prefix="dedup-sock-")) / "redis.sock"
    server = RedisProcess("--unixsocket", str(socket_path), "--unixsocketperm", "700").start()
    store = open_store(f"unix://{socket_path}", timeout_s=2)
    try:
        assert store.fast is not None
        assert await store.fast.pipe.execute("PING") == b"PONG"
    finally:
        await store.close()
        server.close()


def test_only_plain_standalone_urls_take_the_fast_path() -> None:
    assert supports("redis://127.0.0.1:6379/0")
    assert supports("unix:///tmp/r.sock")
    assert not supports("rediss://127.0.0.1:6379/0")
    assert not supports("redis+sentinel://h:26379/mymaster")
    assert open_store("rediss://127.0.0.1:1/0", timeout_s=1).fast is None
    assert open_store("redis://127.0.0.1:1/0", timeout_s=1, client="redis-py").fast is None


async def test_store_runs_the_state_machine_over_the_fast_path(redis_server: RedisProcess, key_prefix: str) -> None:
    store = open_store(redis_server.url, timeout_s=2)
    assert store.fast is not None
    try:
        sources = script_sources()
        assert set(sources) >= {"check", "claim", "commit"}
        from sidecar.domain.outcomes import CheckOutcome
        from sidecar.domain.store import CheckItem

        items = [CheckItem(f"{key_prefix}{i % 3}", 60_000, False, False, b"", b"") for i in range(6)]
        results = await store.check(items)
        outcomes = [r.outcome for r in results]  # type: ignore[union-attr]
        assert outcomes == [CheckOutcome.NEW] * 3 + [CheckOutcome.DUPLICATE] * 3
    finally:
        await store.close()


async def _until(condition: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)

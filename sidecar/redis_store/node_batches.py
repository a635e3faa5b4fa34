"""One round trip per cluster node: a batch's per-slot script calls, pipelined per master.

A Lua script may only touch keys of one hash slot, so a cluster batch is one
script call per slot. Calls whose slots one master owns are sent in one
non-transactional pipeline on one connection to that master (EVALSHA ...,
EVALSHA ..., then WAIT/WAITAOF when a call asks for replica acks, so WAIT
counts exactly these writes), and the masters' pipelines run in parallel. Each
call gets its own reply or error; a node that fails fails only its calls.

A call is sent again only when its reply proves the script did not run, and
only once, in a second round pipelined per node the same way (with its own
WAIT): NOSCRIPT (the script is loaded on that node first), MOVED (the slot
map is patched from the reply first) and ASK (sent to the importing node
after ASKING). A connection error or a timeout is never retried (the script
may have run): it fails that node's calls and marks the slot map for a
refresh before the next batch, as redis-py does for its own commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.commands.core import AsyncScript

from sidecar.domain.errors import StoreError
from sidecar.domain.store import ReplicaAcks, strictest
from sidecar.redis_store.acks import AckMode, check_confirmed, wait_args
from sidecar.redis_store.errors import to_store_error
from sidecar.redis_store.redis_internals import PipelineCommand, follow_moved, mark_slot_map_stale, send_pipeline

# Errors after which the client's slot map may be wrong: refresh it before the next batch.
_STALE_MAP = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.SlotNotCoveredError,
    OSError,
)

_LOST = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


@dataclass(eq=False, slots=True)
class ScriptCall:
    """One slot's script call; `result` is its reply or the exception that answers it."""

    script: AsyncScript
    keys: Sequence[Any]
    args: Sequence[Any]
    acks: ReplicaAcks
    slot: int
    result: Any = None
    ask: ClusterNode | None = None  # the importing node, for the retry after an ASK reply


def call_error(err: BaseException) -> StoreError:
    """The StoreError for a call's exception (redirections named, not `response`)."""
    if isinstance(err, redis_errors.AskError | redis_errors.MovedError):
        return StoreError("moved", f"slot {err.slot_id} is moving to {err.host}:{err.port}; retry")
    if isinstance(err, redis_errors.TryAgainError):
        return StoreError("tryagain", f"slot being migrated: {err}")
    if isinstance(err, redis_errors.ClusterDownError):
        return StoreError("clusterdown", str(err))
    return to_store_error(err)


async def run_per_node(client: RedisCluster, calls: Sequence[ScriptCall], mode: AckMode) -> None:
    """Fills every call's `result`; raises nothing for a call's or a node's failure."""
    try:
        await client.initialize()  # a no-op unless the slot map was marked stale
        again = await _round(client, calls, mode, may_retry=True)
        if again:
            await _round(client, again, mode, may_retry=False)
    except Exception as err:  # no slot map at all (no node reachable): every unanswered call
        for call in calls:
            if call.result is None:
                call.result = err


def _mark_stale(client: RedisCluster) -> None:
    mark_slot_map_stale(client)


async def _round(
    client: RedisCluster, calls: Sequence[ScriptCall], mode: AckMode, *, may_retry: bool
) -> list[ScriptCall]:
    """Sends `calls`, one pipeline per node, all nodes at once; returns the calls to send again."""
    by_node: dict[str, tuple[ClusterNode, list[ScriptCall]]] = {}
    for call in calls:
        call.result = None
        try:
            node = call.ask or client.nodes_manager.get_node_from_slot(call.slot)
        except redis_errors.RedisError as err:  # SlotNotCoveredError: no master owns the slot now
            call.result = err
            _mark_stale(client)
            continue
        by_node.setdefault(node.name, (node, []))[1].append(call)
    await asyncio.gather(*(_send(client, node, group, mode) for node, group in by_node.values()))
    if not may_retry:
        return []
    again: list[ScriptCall] = []
    loaded: set[tuple[str, str]] = set()
    for node, group in by_node.values():
        for call in group:
            call.ask = None
            reply = call.result
            if isinstance(reply, redis_errors.NoScriptError):
                if await _load(node, call.script, loaded, call):
                    again.append(call)
            elif isinstance(reply, redis_errors.MovedError):
                await follow_moved(client, reply)
                again.append(call)
            elif isinstance(reply, redis_errors.AskError):
                call.ask = client.nodes_manager.get_node(host=reply.host, port=reply.port)
                if call.ask is not None:
                    again.append(call)
    return again


async def _load(node: ClusterNode, script: AsyncScript, loaded: set[tuple[str, str]], call: ScriptCall) -> bool:
    """SCRIPT LOAD on `node`, once per node and script; False (and the call answered) if it failed."""
    if (node.name, script.sha) in loaded:
        return True
    try:
        await node.execute_command("SCRIPT", "LOAD", script.script)
    except Exception as err:
        call.result = err
        return False
    loaded.add((node.name, script.sha))
    return True


async def _send(client: RedisCluster, node: ClusterNode, calls: list[ScriptCall], mode: AckMode) -> None:
    """One pipeline on one connection to `node`: every call's EVALSHA, then WAIT if any call needs acks."""
    commands: list[PipelineCommand] = []
    evals: list[PipelineCommand] = []
    for call in calls:
        if call.ask is not None:
            commands.append(PipelineCommand(len(commands), "ASKING"))
        evals.append(PipelineCommand(len(commands), "EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args))
        commands.append(evals[-1])
    acks = strictest([call.acks for call in calls])
    wait: PipelineCommand | None = None
    if acks.replicas:
        wait = PipelineCommand(len(commands), *wait_args(mode, acks))
        commands.append(wait)
    try:
        await send_pipeline(node, commands)
    except Exception as err:  # nothing read: the scripts may or may not have run
        for call in calls:
            call.result = err
        if isinstance(err, _STALE_MAP):
            _mark_stale(client)
        return
    lost: Exception | None = None  # after a timeout or a lost connection, every later reply is lost the same way
    for call, command in zip(calls, evals, strict=True):
        call.result = command.result
        if isinstance(call.result, _LOST):
            lost = lost or call.result
            call.result = lost
    if wait is not None:
        for call in calls:
            if call.acks.replicas and not isinstance(call.result, Exception):
                try:
                    check_confirmed(mode, call.acks, wait.result)
                except Exception as err:  # not met, or the WAIT itself failed: never acknowledged
                    call.result = err
    if any(isinstance(call.result, _STALE_MAP) for call in calls):
        _mark_stale(client)

"""Replica-acknowledged writes: WAIT / WAITAOF on the same connection as the write.

WAIT counts only the writes made on the connection it runs on, so it is
pipelined right behind the script (one non-transactional pipeline: EVALSHA,
then WAIT, on one connection, in one round trip). When fewer replicas than
asked confirm in time, the write stays on the master but the RPC fails
UNAVAILABLE (kind `replica_acks`): it was never acknowledged, so the caller
retries. WAITAOF (Redis >= 7.2, Valkey) also waits for the fsync of the
replicas' (and, with appendonly on, the master's own) AOF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript

from sidecar.domain.errors import StoreError
from sidecar.domain.policy import PolicySet
from sidecar.domain.store import ReplicaAcks
from sidecar.redis_store.safety import StoreReport

COMMANDS = ("auto", "wait", "waitaof")


class ReplicaAcksNotMet(StoreError):
    def __init__(self, message: str) -> None:
        super().__init__("replica_acks", message)


@dataclass(frozen=True, slots=True)
class AckMode:
    """Which command confirms a write: WAIT, or WAITAOF with `local` (0|1) local fsyncs."""

    command: str = "wait"
    local: int = 0

    def describe(self) -> str:
        if self.command == "waitaof":
            where = "the master's and " if self.local else ""
            return f"WAITAOF {self.local} <n> <timeout>: waits for the AOF fsync of {where}n replicas"
        return "WAIT <n> <timeout>: waits until n replicas received the write (in memory, not fsynced)"


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        parts.append(int(part) if part.isdigit() else 0)
    return tuple(parts)


def supports_waitaof(report: StoreReport) -> bool:
    return report.server == "valkey" or _version(report.version) >= (7, 2)


def choose_mode(choice: str, report: StoreReport | None) -> AckMode:
    """`auto`: WAITAOF when the server has it and runs with appendonly, else WAIT."""
    local = 1 if report is not None and report.appendonly == "yes" else 0
    if choice == "wait":
        return AckMode("wait")
    if choice == "waitaof":
        return AckMode("waitaof", local)
    if report is not None and supports_waitaof(report) and report.appendonly == "yes":
        return AckMode("waitaof", local)
    return AckMode("wait")


def wait_args(mode: AckMode, acks: ReplicaAcks) -> tuple[Any, ...]:
    if mode.command == "waitaof":
        return ("WAITAOF", mode.local, acks.replicas, acks.timeout_ms)
    return ("WAIT", acks.replicas, acks.timeout_ms)


def check_confirmed(mode: AckMode, acks: ReplicaAcks, reply: Any) -> None:
    """Raises ReplicaAcksNotMet unless the WAIT/WAITAOF reply confirms the requirement."""
    if isinstance(reply, Exception):
        raise reply
    if mode.command == "waitaof":
        local, replicas = int(reply[0]), int(reply[1])
        if local < mode.local:
            raise ReplicaAcksNotMet(f"the master did not fsync its AOF within {acks.timeout_ms}ms")
    else:
        replicas = int(reply)
    if replicas < acks.replicas:
        raise ReplicaAcksNotMet(
            f"{replicas} of {acks.replicas} required replicas confirmed the write within {acks.timeout_ms}ms "
            f"({mode.command.upper()}); the write is on the master but was not acknowledged"
        )


async def _pipelined(client: Redis, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any], wait: Any) -> Any:
    pipe = client.pipeline(transaction=False)
    pipe.evalsha(script.sha, len(keys), *keys, *args)
    pipe.execute_command(*wait)
    return await pipe.execute(raise_on_error=False)


async def _pipelined_cluster(
    client: RedisCluster, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any], wait: Any
) -> Any:
    """Both commands pinned to the slot's master, so they share one of its connections."""
    node = client.get_node_from_key(keys[0])
    pipe = client.pipeline()
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, target_nodes=node)
    pipe.execute_command(*wait, target_nodes=node)
    return await pipe.execute(raise_on_error=False, allow_redirections=False)


async def run_acked(
    client: Redis | RedisCluster,
    script: AsyncScript,
    keys: Sequence[Any],
    args: Sequence[Any],
    acks: ReplicaAcks,
    mode: AckMode,
) -> Any:
    """The script's reply, once `acks` is met; raises ReplicaAcksNotMet or the Redis error."""
    wait = wait_args(mode, acks)
    # Two attempts at most, and only for replies that prove the script did not run:
    # NOSCRIPT (load it first) and MOVED (the slot map changed; refresh it first).
    for attempt in (1, 2):
        if isinstance(client, RedisCluster):
            reply, confirmed = await _pipelined_cluster(client, script, keys, args, wait)
        else:
            reply, confirmed = await _pipelined(client, script, keys, args, wait)
        if attempt == 1 and isinstance(reply, redis_errors.NoScriptError):
            await client.script_load(script.script)
            continue
        if attempt == 1 and isinstance(reply, redis_errors.MovedError) and isinstance(client, RedisCluster):
            await client.nodes_manager.initialize()
            continue
        if isinstance(reply, Exception):
            raise reply
        check_confirmed(mode, acks, confirmed)
        return reply
    raise StoreError("response", "the script could not be run after loading it / refreshing the slot map")


def describe_acks(mode: AckMode, policies: PolicySet | None) -> list[str]:
    """The startup report's lines on replica acknowledgements: the command, and who uses it."""
    if policies is None:
        return ["replica acks: none configured"]
    named = dict(policies.namespaces)
    if policies.default is not None:
        named["(default)"] = policies.default
    using = {name: p for name, p in named.items() if p.min_replica_acks}
    if not using:
        return ["replica acks: no namespace sets min_replica_acks; writes are acknowledged by the master alone"]
    lines = [f"replica acks in force: {mode.describe()}"]
    lines += [
        f"replica acks: {name} min_replica_acks={p.min_replica_acks} timeout={p.replica_ack_timeout_ms}ms"
        for name, p in sorted(using.items())
    ]
    return lines

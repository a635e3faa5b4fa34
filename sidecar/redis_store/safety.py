"""Startup checks (docs/contract.md §6): is this Redis safe to keep dedup records in?

Every record has a TTL, so any `volatile-*` or `allkeys-*` eviction policy can
silently drop records and turn duplicates into NEW: only `noeviction` is safe.
Persistence and replication are reported, not enforced.

Everything is read from INFO, so the sidecar's Redis user needs no CONFIG permission (CONFIG GET
can read `requirepass` and every other secret of the server). A value INFO does not give is
reported as unknown; without `maxmemory_policy` the verdict is "cannot verify" and serving goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from sidecar.redis_store.errors import to_store_error

SAFE_EVICTION_POLICY = "noeviction"


@dataclass(frozen=True, slots=True)
class StoreReport:
    """What the checks found. `problems` make the store unsafe; `warnings` do not."""

    version: str = "unknown"
    server: str = "redis"
    role: str = "unknown"
    connected_replicas: int = 0
    maxmemory_policy: str = "unknown"
    appendonly: str = "unknown"
    appendfsync: str = "unknown"
    verifiable: bool = True
    problems: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def safe(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The report as readable lines, for logs and the `check-store` command."""
        out = [
            f"server: {self.server} {self.version} (role {self.role}, {self.connected_replicas} connected replicas)",
            f"maxmemory-policy: {self.maxmemory_policy}",
            f"persistence: appendonly={self.appendonly} appendfsync={self.appendfsync}",
        ]
        out += [f"UNSAFE: {problem}" for problem in self.problems]
        out += [f"warning: {warning}" for warning in self.warnings]
        return out


async def _info(client: Redis) -> dict[str, Any]:
    """INFO (every default section), or {} when the server refuses it (an ACL, managed Redis)."""
    try:
        info: dict[str, Any] = await client.info()
    except redis_errors.ResponseError:
        return {}
    return info


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)


async def inspect_store(client: Redis) -> StoreReport:
    """Runs the checks; raises StoreError when Redis cannot be reached at all."""
    try:
        await client.ping()
        info = await _info(client)
    except Exception as err:
        raise to_store_error(err) from err
    policy = _text(info.get("maxmemory_policy"))
    aof = info.get("aof_enabled")
    appendonly = None if aof is None else ("yes" if str(aof) == "1" else "no")
    appendfsync = None  # not in INFO; reading it would need CONFIG GET (docs/security.md)
    problems: list[str] = []
    warnings: list[str] = []
    verifiable = policy is not None
    if not verifiable:
        warnings.append("cannot verify maxmemory-policy (INFO does not give it here); make sure it is noeviction")
    elif policy != SAFE_EVICTION_POLICY:
        problems.append(
            f"maxmemory-policy is {policy}: Redis may evict dedup records and answer NEW for duplicates. "
            f"Fix: CONFIG SET maxmemory-policy {SAFE_EVICTION_POLICY} (and set it in redis.conf), "
            "or start with --allow-unsafe-store to accept the risk"
        )
    if appendonly == "no":
        warnings.append("appendonly is off: records written since the last RDB snapshot are lost if Redis restarts")
    return StoreReport(
        version=str(info.get("valkey_version") or info.get("redis_version") or "unknown"),
        server="valkey" if "valkey_version" in info else "redis",
        role=str(info.get("role", "unknown")),
        connected_replicas=int(info.get("connected_slaves", 0) or 0),
        maxmemory_policy=policy or "unknown",
        appendonly=appendonly or "unknown",
        appendfsync=appendfsync or "unknown",
        verifiable=verifiable,
        problems=tuple(problems),
        warnings=tuple(warnings),
    )

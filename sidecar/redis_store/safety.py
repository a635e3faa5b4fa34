"""Startup checks (docs/contract.md §6): is this Redis safe to keep dedup records in?

Every record has a TTL, so any `volatile-*` or `allkeys-*` eviction policy can
silently drop records and turn duplicates into NEW: only `noeviction` is safe.
Persistence and replication are reported, not enforced.
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


async def _config(client: Redis, name: str) -> str | None:
    """One CONFIG value, or None when CONFIG is forbidden (managed Redis, ACL)."""
    try:
        reply: dict[Any, Any] = await client.config_get(name)
    except redis_errors.ResponseError:
        return None
    value = reply.get(name.encode(), reply.get(name))
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


async def inspect_store(client: Redis) -> StoreReport:
    """Runs the checks; raises StoreError when Redis cannot be reached at all."""
    try:
        info = await client.info()
        policy = await _config(client, "maxmemory-policy")
        appendonly = await _config(client, "appendonly")
        appendfsync = await _config(client, "appendfsync")
    except Exception as err:
        raise to_store_error(err) from err
    problems: list[str] = []
    warnings: list[str] = []
    verifiable = policy is not None
    if not verifiable:
        warnings.append("cannot verify maxmemory-policy (CONFIG is not allowed); make sure it is noeviction")
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

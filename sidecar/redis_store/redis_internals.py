"""The redis-py internals the Cluster batch path relies on: in one place, pinned and tested.

redis-py has no public way to send one pipeline to one chosen node, to mark its slot map stale,
or to apply a MOVED redirect without re-reading the whole map, and node_batches.py needs all
three (one pipeline per node, ADR 0063). So it uses, through this module only:

- `RedisCluster._initialize`: the flag `RedisCluster.initialize()` reads to re-read CLUSTER SLOTS;
- `NodesManager.move_slot(MovedError)`: applies one redirect to the slot map;
- `ClusterNode.execute_pipeline(list[PipelineCommand])` and `PipelineCommand(position, *args)`:
  one pipeline on one connection to one node, each command's reply or error in `.result`.

pyproject.toml pins redis to the range these were checked on, and
tests/unit/test_redis_internals.py fails when any of them moves or changes shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.exceptions import MovedError

__all__ = ["PipelineCommand", "follow_moved", "mark_slot_map_stale", "send_pipeline"]


def mark_slot_map_stale(client: RedisCluster) -> None:
    """The next `initialize()` (before the next command) re-reads CLUSTER SLOTS."""
    client._initialize = True


async def follow_moved(client: RedisCluster, moved: MovedError) -> None:
    """Moves the one slot the redirect names to its new owner."""
    await client.nodes_manager.move_slot(moved)


async def send_pipeline(node: ClusterNode, commands: Sequence[PipelineCommand]) -> None:
    """One pipeline on one connection to `node`; each command's reply (or error) lands in `.result`."""
    await node.execute_pipeline(list(commands))

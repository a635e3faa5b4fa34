"""The redis-py internals sidecar/redis_store/redis_internals.py relies on are still there, in the same shape.

When redis-py is upgraded past the pinned range (pyproject.toml) and one of them moved, this fails
before a Cluster batch does."""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from redis.asyncio.cluster import ClusterNode, NodesManager, PipelineCommand, RedisCluster
from redis.exceptions import MovedError

REPO = Path(__file__).resolve().parents[2]


def test_installed_redis_is_in_the_pinned_range() -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in dependencies if Requirement(d).name == "redis"]
    assert pin.specifier, "redis must be pinned to the range its internals were checked on"
    assert pin.specifier.contains(version("redis")), f"redis {version('redis')} is outside {pin.specifier}"


def test_initialize_reads_the_stale_map_flag() -> None:
    source = inspect.getsource(RedisCluster.initialize)
    assert re.search(r"if self\._initialize\b", source), "RedisCluster.initialize() no longer reads _initialize"
    assert "_initialize" in inspect.getsource(RedisCluster.__init__)


def test_move_slot_takes_a_redirect() -> None:
    assert inspect.iscoroutinefunction(NodesManager.move_slot)
    parameters = list(inspect.signature(NodesManager.move_slot).parameters)
    assert parameters == ["self", "e"]
    source = inspect.getsource(NodesManager.move_slot)
    assert all(name in source for name in ("slot_id", "host", "port"))
    assert {"slot_id", "host", "port"} <= set(vars(MovedError("3999 127.0.0.1:6381")))


def test_execute_pipeline_runs_commands_on_one_node() -> None:
    assert inspect.iscoroutinefunction(ClusterNode.execute_pipeline)
    assert list(inspect.signature(ClusterNode.execute_pipeline).parameters) == ["self", "commands"]
    command = PipelineCommand(0, "EVALSHA", "sha", 1, "key")
    assert command.position == 0
    assert command.args == ("EVALSHA", "sha", 1, "key")
    assert hasattr(command, "result")


def test_the_node_lookups_the_batches_use() -> None:
    assert list(inspect.signature(NodesManager.get_node_from_slot).parameters)[:2] == ["self", "slot"]
    assert {"host", "port"} <= set(inspect.signature(NodesManager.get_node).parameters)
    assert inspect.iscoroutinefunction(NodesManager.initialize)

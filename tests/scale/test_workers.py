"""`serve --workers 2`: one port, both processes take connections, SIGTERM stops both."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.scale.servers import wait_for
from tests.support.sidecar_process import SidecarProcess


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _established_on(port: int) -> dict[str, int]:
    """inode -> local port of every ESTABLISHED TCP socket whose local port is `port`."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            local_port = int(parts[1].rsplit(":", 1)[1], 16)
            if local_port == port and parts[3] == "01":
                found[parts[9]] = local_port
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc to see which process holds a connection")
async def test_two_workers_share_one_port_and_stop_together(tmp_path: Path) -> None:
    sidecar = SidecarProcess(["--workers", "2", "--data-dir", str(tmp_path / "data")]).start()
    try:
        started = sidecar.wait_log(lambda e: e.get("msg") == "workers started")
        pids = list(started["pids"])
        wait_for(lambda: sidecar.log_messages().count("serving") == 2, 30, "both workers serving")
        port = int(started["listen"].rsplit(":", 1)[1])
        assert {e["listen"] for e in sidecar.logs if e.get("msg") == "serving"} == {started["listen"]}

        # Separate channels with local subchannel pools = separate TCP connections.
        channels = [
            grpc.aio.insecure_channel(started["listen"], options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(16)
        ]
        for index, channel in enumerate(channels):
            reply = await dedup_pb2_grpc.DedupStub(channel).Check(
                pb.CheckRequest(namespace="workers", id=f"m-{index}".encode()), timeout=10
            )
            assert reply.outcome == pb.CHECK_OUTCOME_NEW  # one shared store: every id is new once
        again = await dedup_pb2_grpc.DedupStub(channels[0]).Check(
            pb.CheckRequest(namespace="workers", id=b"m-5"), timeout=10
        )
        assert again.outcome == pb.CHECK_OUTCOME_DUPLICATE

        connections = _established_on(port)
        per_worker = {pid: len(_socket_inodes(pid) & set(connections)) for pid in pids}
        print(f"\nconnections per worker: {per_worker}")
        assert all(count > 0 for count in per_worker.values()), per_worker
        assert sum(per_worker.values()) == len(channels)
        for channel in channels:
            await channel.close()

        sidecar.signal(signal.SIGTERM)
        assert sidecar.wait_exit(30) == 0
        assert sidecar.log_messages().count("stopped") == 2  # each worker drained and stopped
        assert "workers stopped" in sidecar.log_messages()
        assert not any(_alive(pid) for pid in pids)
    finally:
        sidecar.stop()

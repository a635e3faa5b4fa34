"""Invariants 1 and 3 with real OS processes: atomic races, and a holder killed with SIGKILL."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections import Counter

from dedup.v1 import dedup_pb2 as pb
from tests.support.client_procs import claim_then_hang, race
from tests.support.inprocess import RunningSidecar
from tests.support.waiting import await_state


async def test_200_concurrent_checks_from_4_processes_give_exactly_one_new(sidecar: RunningSidecar) -> None:
    outcomes = await asyncio.to_thread(race, sidecar.target, "check", "race", b"one-id", 4, 50)
    assert Counter(outcomes) == {pb.CHECK_OUTCOME_NEW: 1, pb.CHECK_OUTCOME_DUPLICATE: 199}


async def test_200_concurrent_claims_from_4_processes_give_exactly_one_acquired(sidecar: RunningSidecar) -> None:
    outcomes = await asyncio.to_thread(race, sidecar.target, "claim", "race", b"one-id", 4, 50)
    assert Counter(outcomes) == {pb.CLAIM_OUTCOME_ACQUIRED: 1, pb.CLAIM_OUTCOME_IN_PROGRESS: 199}


async def test_holder_killed_after_claim_loses_the_lease_and_nothing_it_sends_later_counts(
    sidecar: RunningSidecar,
) -> None:
    stub = sidecar.stub
    context = multiprocessing.get_context("spawn")
    report = context.Queue()
    holder = context.Process(target=claim_then_hang, args=(sidecar.target, "crash", b"job-1", 1_000, report))
    holder.start()
    pid, outcome, dead_token = await asyncio.to_thread(report.get, True, 60)
    assert outcome == pb.CLAIM_OUTCOME_ACQUIRED
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(holder.join, 30)
    assert holder.exitcode == -signal.SIGKILL

    busy = await stub.Claim(pb.ClaimRequest(namespace="crash", id=b"job-1"))
    assert busy.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
    await await_state(stub, "crash", b"job-1", pb.RECORD_STATE_ABSENT)
    taken = await stub.Claim(pb.ClaimRequest(namespace="crash", id=b"job-1", lease_ms=60_000))
    assert taken.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert taken.fencing_token > dead_token

    # The dead holder's late messages (e.g. replayed by a proxy) get LEASE_LOST and change nothing.
    ref = {"namespace": "crash", "id": b"job-1", "fencing_token": dead_token}
    assert (await stub.Commit(pb.CommitRequest(**ref))).outcome == pb.COMMIT_OUTCOME_LEASE_LOST
    assert (await stub.Release(pb.ReleaseRequest(**ref))).outcome == pb.RELEASE_OUTCOME_LEASE_LOST
    assert (await stub.Renew(pb.RenewRequest(**ref))).outcome == pb.RENEW_OUTCOME_LEASE_LOST
    record = await stub.Inspect(pb.InspectRequest(namespace="crash", id=b"job-1"))
    assert record.state == pb.RECORD_STATE_IN_PROGRESS
    assert record.fencing_token == taken.fencing_token
    assert record.lease_expires_unix_ms == taken.lease_expires_unix_ms

"""The shipped verifier, smoke-sized: every fault class at least once, guarantees hold.

DEDUP_CHAOS_SCALE=N multiplies messages and the fault window (longer local runs)."""

from __future__ import annotations

import os

from sidecar.verify.nemesis import PROCESS_FAULTS
from sidecar.verify.runner import VerifyConfig, verify

SCALE = int(os.environ.get("DEDUP_CHAOS_SCALE", "1"))


async def test_verifier_under_every_fault_class_reports_effectively_once() -> None:
    config = VerifyConfig(
        seed=7,
        messages=300 * SCALE,
        consumers=8,
        max_delay_s=2.0 * SCALE,
        lease_ms=8_000,
        crash_rate=0.03,
        pause_rate=0.02,
        fault_every_s=0.6,
        fault_window_s=8.0 * SCALE,
        process_faults=PROCESS_FAULTS,
        max_duration_s=60.0 * SCALE,
    )
    report = await verify(config)
    verdict = report.verdict
    assert report.finished, report.summary()
    assert verdict.ok, report.summary()
    assert verdict.lost == []
    assert verdict.transactional_duplicates == 0
    assert verdict.stale_fenced_writes == 0
    assert verdict.faults.get("consumer_crash", 0) > 0
    # Every holder that died between its effect and its Commit shows up as one plain repeat, with that cause.
    crashed_after = verdict.faults.get("consumer_crash_after_effect", 0)
    assert crashed_after > 0, report.summary()
    assert verdict.plain_causes.get("holder died after its effect, before Commit", 0) == crashed_after
    assert "not effectively once" in report.summary()
    assert sum(verdict.faults.get(kind, 0) for kind in PROCESS_FAULTS) >= 5, report.summary()


async def test_verifier_flags_lost_and_duplicate_effects_when_redis_forgets() -> None:
    """The checker is not blind: with persistence off and Redis restarts, it sees forgotten commits."""
    config = VerifyConfig(
        seed=3,
        messages=300,
        consumers=8,
        max_delay_s=3.0,
        duplicate_rate=0.8,
        lease_ms=3_000,
        crash_rate=0.0,
        pause_rate=0.0,
        fault_every_s=0.5,
        fault_window_s=4.0,
        process_faults=("redis_restart",),
        persistence="off",
        max_duration_s=60.0,
    )
    report = await verify(config)
    assert report.verdict.faults.get("redis_restart", 0) >= 2
    assert report.verdict.duplicates_after_commit > 0, report.summary()
    assert report.verdict.transactional_duplicates == 0  # the database remembers what Redis forgot
    assert not report.verdict.ok

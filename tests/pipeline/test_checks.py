"""The pipeline's checker on hand-made histories (no I/O): every verdict and every cause."""

from __future__ import annotations

from typing import Any

from tests.pipeline.checks import EXPECTED_CAUSES, Row, analyse, pause_story


def ev(consumer: str, event: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"c": consumer, "e": event, "t": t, **fields}


def test_a_clean_run_has_nothing_to_report() -> None:
    rows = [Row(1, "a", 1, "py0.1"), Row(2, "b", 2, "go0.1")]
    report = analyse(["a", "b"], rows, rows, rows, {}, [])
    assert not report.lost
    assert not report.tx_duplicates
    assert not report.stale_fenced
    assert report.plain_duplicates == []
    assert report.fenced_repeats == 0


def test_lost_and_transactional_duplicates_are_counted() -> None:
    tx = [Row(1, "a", 1, "c"), Row(2, "a", 2, "c")]
    report = analyse(["a", "b"], tx, [], [], {}, [])
    assert report.lost == ["b"]
    assert report.tx_duplicates == {"a": 1}


def test_a_lower_token_after_a_higher_one_is_a_stale_fenced_write() -> None:
    fenced = [Row(1, "a", 5, "c"), Row(2, "a", 7, "c"), Row(3, "a", 6, "c")]
    report = analyse(["a"], [Row(1, "a", 5, "c")], fenced, [], {}, [])
    assert report.stale_fenced == [("a", 6, 7)]
    assert report.fenced_repeats == 2


def test_plain_repeat_after_a_kill_between_effect_and_commit() -> None:
    plain = [Row(1, "a", 1, "py0.1"), Row(2, "a", 2, "py1.1")]
    events = {"py0.1": [ev("py0.1", "claimed", 1.0, id="a", token=1), ev("py0.1", "plain", 1.1, id="a", token=1)]}
    chaos = [{"kind": "consumer_sigkill", "consumer": "py0.1", "t": 1.2}]
    report = analyse(["a"], [Row(1, "a", 1, "py0.1")], [], plain, events, chaos)
    assert report.plain_duplicates == [("a", "holder killed (SIGKILL) after its effect, before Commit")]
    assert not report.unexplained()


def test_plain_repeat_after_a_pause_past_the_lease() -> None:
    plain = [Row(1, "a", 1, "go0.1"), Row(2, "a", 2, "py1.1")]
    events = {
        "go0.1": [
            ev("go0.1", "plain", 1.1, id="a", token=1),
            ev("go0.1", "outcome", 20.0, id="a", status="LEASE_LOST", token=1),
        ]
    }
    chaos = [{"kind": "consumer_sigstop", "consumer": "go0.1", "t": 1.05}]
    report = analyse(["a"], [Row(1, "a", 1, "go0.1")], [], plain, events, chaos)
    assert report.causes() == {"holder paused (SIGSTOP) past its lease after its effect; another holder took over": 1}


def test_a_repeat_after_a_recorded_commit_is_unexplained() -> None:
    plain = [Row(1, "a", 1, "py0.1"), Row(2, "a", 2, "py1.1")]
    events = {
        "py0.1": [
            ev("py0.1", "plain", 1.1, id="a", token=1),
            ev("py0.1", "outcome", 1.2, id="a", status="PROCESSED", token=1),
        ]
    }
    report = analyse(["a"], [Row(1, "a", 1, "py0.1")], [], plain, events, [])
    assert len(report.unexplained()) == 1
    assert report.unexplained()[0][1] not in EXPECTED_CAUSES


def test_a_stale_plain_write_is_unexplained() -> None:
    plain = [Row(1, "a", 3, "py0.1"), Row(2, "a", 2, "py1.1")]
    report = analyse(["a"], [Row(1, "a", 3, "py0.1")], [], plain, {}, [])
    assert report.unexplained() == [("a", "unexplained: a stale holder wrote after a newer one")]


def test_the_pause_story_names_the_steps_and_who_applied() -> None:
    events = {
        "py0.1": [
            ev("py0.1", "claimed", 1.0, id="a", token=1),
            ev("py0.1", "tx", 17.0, id="a", token=1, first=False),
            ev("py0.1", "error", 17.1, id="a", kind="LeaseLostError"),
        ]
    }
    chaos = [{"kind": "consumer_sigstop", "consumer": "py0.1", "id": "a", "token": 1, "t": 1.01}]
    [line] = pause_story(events, chaos, [Row(5, "a", 2, "go1.1")])
    assert "claimed, tx=already-applied, error=LeaseLostError" in line
    assert "transactional effect by go1.1 (token 2)" in line


def test_a_stale_plain_write_after_a_pause_that_began_after_the_lease_check() -> None:
    plain = [Row(1, "a", 2, "py1.1"), Row(2, "a", 1, "go0.1")]  # the older token wrote last
    events = {
        "go0.1": [
            ev("go0.1", "claimed", 1.0, id="a", token=1),
            ev("go0.1", "ensured", 1.1, id="a", token=1),
            ev("go0.1", "plain", 20.0, id="a", token=1),
        ]
    }
    chaos = [
        {"kind": "consumer_sigstop", "consumer": "go0.1", "t": 1.2},
        {"kind": "consumer_sigcont", "consumer": "go0.1", "t": 19.0},
    ]
    report = analyse(["a"], [Row(1, "a", 1, "go0.1")], [], plain, events, chaos)
    assert report.causes() == {"holder paused (SIGSTOP) between its lease check and its plain effect": 1}
    assert not report.unexplained()


def test_a_stale_plain_write_whose_lease_check_came_after_the_pause_is_unexplained() -> None:
    # ensure() after the pause must have failed: a write after it is a bug, never an expected cause
    plain = [Row(1, "a", 2, "py1.1"), Row(2, "a", 1, "go0.1")]
    events = {
        "go0.1": [
            ev("go0.1", "ensured", 19.5, id="a", token=1),
            ev("go0.1", "plain", 20.0, id="a", token=1),
        ]
    }
    chaos = [
        {"kind": "consumer_sigstop", "consumer": "go0.1", "t": 1.2},
        {"kind": "consumer_sigcont", "consumer": "go0.1", "t": 19.0},
    ]
    report = analyse(["a"], [Row(1, "a", 1, "go0.1")], [], plain, events, chaos)
    assert report.unexplained() == [("a", "unexplained: a stale holder wrote after a newer one")]

"""The verifier's checker on hand-made histories: one verdict per kind of sink (ADR 0090)."""

from __future__ import annotations

from sidecar.verify.history import FATE_CAUSES, History, check


def applied(history: History, message: str, token: int, *, plain: bool = True) -> None:
    history.acquired.append((message, token, float(token)))
    history.transactional.apply(message, token)
    history.sink.apply(message, token, consumer=0, claimed_at=float(token), now=float(token))
    if plain:
        history.plain.apply(message, token)


def test_a_clean_history_is_ok_on_every_sink() -> None:
    history = History()
    for n, message in enumerate(["a", "b"], start=1):
        applied(history, message, n)
        history.committed(message, n, n + 0.5)
    verdict = check(["a", "b"], history)
    assert verdict.ok
    assert verdict.transactional_duplicates == verdict.plain_duplicates == verdict.fenced_repeats == 0


def test_a_crash_after_the_effect_is_a_plain_repeat_with_its_cause_and_the_verdict_stays_ok() -> None:
    history = History()
    applied(history, "a", 1)
    history.fates[("a", 1)] = "crashed"
    applied(history, "a", 2)
    history.committed("a", 2, 2.5)
    verdict = check(["a"], history)
    assert verdict.ok
    assert verdict.transactional_duplicates == 0
    assert verdict.fenced_repeats == 1
    assert verdict.stale_fenced_writes == 0
    assert verdict.plain_duplicates == 1
    assert verdict.plain_causes == {FATE_CAUSES["crashed"]: 1}


def test_a_message_missing_from_any_sink_is_lost() -> None:
    history = History()
    applied(history, "a", 1, plain=False)
    verdict = check(["a"], history)
    assert verdict.lost == ["a"]
    assert not verdict.ok


def test_an_acquired_claim_after_a_recorded_commit_is_a_wrong_answer() -> None:
    history = History()
    applied(history, "a", 1)
    history.committed("a", 1, 1.5)
    applied(history, "a", 2)  # claim sent at 2.0, after the COMMITTED answer at 1.5
    verdict = check(["a"], history)
    assert verdict.duplicates_after_commit == 1
    assert not verdict.ok
    assert verdict.plain_causes == {FATE_CAUSES["committed"]: 1}


def test_the_json_report_carries_the_three_sinks() -> None:
    history = History()
    applied(history, "a", 1)
    history.committed("a", 1, 1.5)
    sinks = check(["a"], history).as_dict()["sinks"]
    assert set(sinks) == {"transactional", "fenced", "plain"}
    assert sinks["plain"] == {"duplicate_effects": 0, "causes": {}}

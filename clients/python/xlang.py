"""Cross-language protocol (tests/contract/test_cross_language.py), Python side.

Env: DEDUP_TARGET, XLANG_MODE (commit | expect-duplicate), XLANG_NAMESPACE, XLANG_IDS (comma-separated).
  commit:            claim + commit every id, expecting ACQUIRED then COMMITTED
  expect-duplicate:  claim and check every id, expecting DUPLICATE for both
Prints a one-line summary; exits 0 iff every expectation held.
"""

from __future__ import annotations

import os
import sys

from dedup_client import CheckOutcome, ClaimOutcome, CommitOutcome, DedupClient, DedupError


def main() -> int:
    mode, namespace = os.environ["XLANG_MODE"], os.environ["XLANG_NAMESPACE"]
    ids = [i for i in os.environ["XLANG_IDS"].split(",") if i]
    failures: list[str] = []
    with DedupClient(os.environ["DEDUP_TARGET"]) as client:
        for id in ids:
            try:
                if mode == "commit":
                    claim = client.claim(namespace, id)
                    if claim.outcome is not ClaimOutcome.ACQUIRED:
                        failures.append(f"{id}: claim {claim.outcome}")
                        continue
                    commit = client.commit(namespace, id, claim.fencing_token)
                    if commit.outcome is not CommitOutcome.COMMITTED:
                        failures.append(f"{id}: commit {commit.outcome}")
                elif mode == "expect-duplicate":
                    claim_outcome = client.claim(namespace, id).outcome
                    check_outcome = client.check(namespace, id).outcome
                    if claim_outcome is not ClaimOutcome.DUPLICATE or check_outcome is not CheckOutcome.DUPLICATE:
                        failures.append(f"{id}: claim {claim_outcome}, check {check_outcome}")
                else:
                    print(f"python xlang: unknown XLANG_MODE {mode!r}")
                    return 2
            except DedupError as err:
                failures.append(f"{id}: {err}")
    verdict = "ok" if not failures else "FAILED " + "; ".join(failures)
    print(f"python xlang {mode} ns={namespace} ids={len(ids)}: {verdict}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

"""Which calls are retried, and how long to wait (shared by the sync and asyncio clients).

The rule (docs/adr/0010-client-retries.md): a client cannot tell, from an
UNAVAILABLE status, whether the request reached the store. So a call is retried
only when running it twice is harmless by the Lua state machine:

- Claim, ClaimBatch: a retry after a lost ACQUIRED answers IN_PROGRESS (our own
  lease): the caller nacks, and the redelivery acquires when that lease ends.
  Never a wrong DUPLICATE, never two holders. Delay, not loss.
- Commit, CommitBatch: the same holder committing again answers COMMITTED.
- Renew: extending the same lease twice is the same lease.
- Release: fenced by the token; a retry after a lost RELEASED answers LEASE_LOST,
  which harms no one (the lease is gone either way).
- Inspect: a read.

Never retried after sending: Check and CheckBatch (a retry after a lost NEW
answers DUPLICATE for the caller's own mark, and the caller drops a message it
never processed) and Forget (a retry could delete a record re-created in
between). For those, only gRPC's own transparent retry applies: it resends an
RPC only when the request never left the client or was refused before the
server's application saw it (gRFC A6), which is safe for every call.
DEADLINE_EXCEEDED is never retried: the deadline is the caller's whole budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

RETRY_SAFE_METHODS = frozenset({"Claim", "ClaimBatch", "Commit", "CommitBatch", "Renew", "Release", "Inspect"})
NEVER_RETRIED_METHODS = frozenset({"Check", "CheckBatch", "Forget"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of UNAVAILABLE for the retry-safe methods, within the call's deadline.

    max_attempts counts the first try: 1 disables retries. Backoff is
    exponential with full jitter: a random wait in [0, min(max, initial * 2**n)].
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, method: str, code: grpc.StatusCode, attempt: int, remaining_s: float) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up and raise.

        `attempt` is the number of attempts made so far (1 after the first try).
        """
        if method not in RETRY_SAFE_METHODS or code is not grpc.StatusCode.UNAVAILABLE:
            return None
        if attempt >= self.max_attempts:
            return None
        wait = random.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempt - 1)))
        # Leave the next attempt some of the budget; otherwise report the real error now.
        if wait + 0.01 >= remaining_s:
            return None
        return wait


NO_RETRIES = RetryPolicy(max_attempts=1)

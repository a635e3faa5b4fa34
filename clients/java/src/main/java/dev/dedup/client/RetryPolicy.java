package dev.dedup.client;

import io.grpc.Status;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Which calls are retried, and how (docs/adr/0010-client-retries.md: the same table in every
 * client). Only UNAVAILABLE, only inside the call's one deadline, and only for calls that are
 * harmless to run twice by the Lua state machine:
 *
 * <ul>
 *   <li>Claim, ClaimBatch: a retry after a lost ACQUIRED answers IN_PROGRESS (our own lease); the
 *       caller nacks and the redelivery acquires when the lease ends. Delay, never loss.
 *   <li>Commit, CommitBatch: commit.lua answers COMMITTED again to the same holder.
 *   <li>Renew (same lease), Release (fenced: only drops our own lease), Inspect (a read).
 * </ul>
 *
 * Never retried: Check and CheckBatch (after a lost NEW the id is marked, and a retry would answer
 * DUPLICATE for the caller's own mark: a message nobody processed would be dropped); Forget (a retry
 * could delete a record marked anew in between); anything after DEADLINE_EXCEEDED or any status
 * other than UNAVAILABLE.
 */
public final class RetryPolicy {
  /** Retry classes of the operations. */
  public enum Kind {
    RETRY,
    NEVER
  }

  private final int maxAttempts;
  private final long initialBackoffMs;

  /** {@code maxAttempts} includes the first; backoff doubles from {@code initialBackoffMs}, full jitter, capped at 1 s. */
  public RetryPolicy(int maxAttempts, long initialBackoffMs) {
    this.maxAttempts = Math.max(1, maxAttempts);
    this.initialBackoffMs = Math.max(1, initialBackoffMs);
  }

  /** Four attempts, 50 ms first backoff. */
  public static RetryPolicy defaults() {
    return new RetryPolicy(4, 50);
  }

  public static RetryPolicy none() {
    return new RetryPolicy(1, 1);
  }

  int maxAttempts() {
    return maxAttempts;
  }

  long backoffMs(int attempt) {
    long cap = Math.min(1000, initialBackoffMs << Math.min(attempt - 1, 10));
    return ThreadLocalRandom.current().nextLong(cap + 1);
  }

  static boolean retryable(Kind kind, Status status) {
    return kind == Kind.RETRY && status.getCode() == Status.Code.UNAVAILABLE;
  }
}

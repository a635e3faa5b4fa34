package dev.dedup.client;

import io.grpc.Status;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;

/**
 * Which failures may be retried, per operation (README "Retries").
 *
 * <ul>
 *   <li>Never after DEADLINE_EXCEEDED (the reply may be lost, and the deadline is spent), CANCELLED,
 *       or any status other than UNAVAILABLE.
 *   <li>{@link Kind#MARK} (Check, Claim and their batches): only an UNAVAILABLE meaning the request
 *       was not applied (no connection, or the sidecar's store refused it). An UNAVAILABLE for a
 *       connection closed mid-call is ambiguous: the mark may exist, and a retry would answer
 *       DUPLICATE/IN_PROGRESS for the caller's own mark, so it is surfaced instead.
 *   <li>{@link Kind#IDEMPOTENT} (Renew, Inspect): any UNAVAILABLE.
 *   <li>{@link Kind#NEVER} (Commit, CommitBatch, Release, Forget): a retry after a lost reply would
 *       answer LEASE_LOST/ABSENT for work that did succeed.
 * </ul>
 */
public final class RetryPolicy {
  /** Retry classes of the operations. */
  public enum Kind {
    MARK,
    IDEMPOTENT,
    NEVER
  }

  private static final Pattern AMBIGUOUS =
      Pattern.compile(
          "network closed|connection closed|connection reset|goaway|rst_stream|stream closed|broken pipe",
          Pattern.CASE_INSENSITIVE);

  private final int maxAttempts;
  private final long initialBackoffMs;

  public RetryPolicy(int maxAttempts, long initialBackoffMs) {
    this.maxAttempts = Math.max(1, maxAttempts);
    this.initialBackoffMs = Math.max(1, initialBackoffMs);
  }

  /** Three attempts, 50 ms first backoff (doubled, full jitter, capped at 1 s). */
  public static RetryPolicy defaults() {
    return new RetryPolicy(3, 50);
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
    if (kind == Kind.NEVER || status.getCode() != Status.Code.UNAVAILABLE) {
      return false;
    }
    if (kind == Kind.IDEMPOTENT) {
      return true;
    }
    String text = String.valueOf(status.getDescription()) + " " + String.valueOf(status.getCause());
    return !AMBIGUOUS.matcher(text).find();
  }
}

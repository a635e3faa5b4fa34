package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.net.ConnectException;
import org.junit.jupiter.api.Test;

/** Which failures each operation class retries (no sidecar needed). */
class RetryPolicyTest {
  private static final Status NO_CONNECTION =
      Status.UNAVAILABLE.withDescription("io exception").withCause(new ConnectException("Connection refused"));
  private static final Status CLOSED_MID_CALL = Status.UNAVAILABLE.withDescription("Network closed for unknown reason");
  private static final Status DEADLINE = Status.DEADLINE_EXCEEDED.withDescription("deadline exceeded");

  @Test
  void markOperationsRetryOnlyWhatCannotHaveBeenApplied() {
    assertTrue(RetryPolicy.retryable(RetryPolicy.Kind.MARK, NO_CONNECTION));
    assertFalse(RetryPolicy.retryable(RetryPolicy.Kind.MARK, CLOSED_MID_CALL));
    assertFalse(RetryPolicy.retryable(RetryPolicy.Kind.MARK, DEADLINE));
    assertFalse(RetryPolicy.retryable(RetryPolicy.Kind.MARK, Status.INVALID_ARGUMENT));
  }

  @Test
  void idempotentOperationsRetryAnyUnavailable() {
    assertTrue(RetryPolicy.retryable(RetryPolicy.Kind.IDEMPOTENT, CLOSED_MID_CALL));
    assertFalse(RetryPolicy.retryable(RetryPolicy.Kind.IDEMPOTENT, DEADLINE));
  }

  @Test
  void commitAndReleaseNeverRetry() {
    assertFalse(RetryPolicy.retryable(RetryPolicy.Kind.NEVER, NO_CONNECTION));
    assertFalse(RetryPolicy.retryable(RetryPolicy.Kind.NEVER, CLOSED_MID_CALL));
  }
}

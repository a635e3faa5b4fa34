package dev.dedup.client;

import com.google.protobuf.ByteString;
import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.CommitOutcome;
import dev.dedup.v1.CommitRequest;
import dev.dedup.v1.ReleaseRequest;
import dev.dedup.v1.RenewOutcome;
import dev.dedup.v1.RenewRequest;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The effectively-once helper: claim, run the handler with the lease, commit (storing the
 * handler's result), or release if the handler throws; the lease is renewed in the background
 * while the handler runs. DUPLICATE (with the stored result), IN_PROGRESS and CONFLICT are
 * reported to the caller, who acks or nacks its broker accordingly.
 */
public final class EffectivelyOnce implements AutoCloseable {
  private final DedupClient client;
  private final ScheduledExecutorService heartbeats;

  public EffectivelyOnce(DedupClient client) {
    this.client = client;
    this.heartbeats =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "dedup-lease-renewer");
              t.setDaemon(true);
              return t;
            });
  }

  /** The lease the handler runs under. */
  public record Lease(String namespace, ByteString id, long token, AtomicBoolean lost) {
    /** True once a renew answered LEASE_LOST: stop work early, the commit will fail. */
    public boolean isLost() {
      return lost.get();
    }
  }

  /** The work to run at most once to completion; its return value is stored as the result. */
  @FunctionalInterface
  public interface Handler {
    /** Returns the result to store for later duplicates, or null for none. */
    byte[] handle(Lease lease) throws Exception;
  }

  /** What happened to a message. */
  public enum Status {
    /** The handler ran and its work was committed: ack. */
    PROCESSED,
    /** Already processed: ack without processing. */
    DUPLICATE,
    /** Another consumer holds the lease: do not ack; redeliver after retryAfter. */
    IN_PROGRESS,
    /** Seen with a different fingerprint: a bug upstream. */
    CONFLICT
  }

  /** The outcome; {@code result} is the handler's (PROCESSED) or the stored one (DUPLICATE). */
  public record Outcome(Status status, Optional<byte[]> result, long token, Duration retryAfter) {}

  /** The lease was lost before commit: another holder may be doing the work. */
  public static final class LeaseLostException extends RuntimeException {
    public LeaseLostException(long token) {
      super("lease lost before commit (token " + token + ")");
    }
  }

  /** Runs {@code handler} for (namespace, id) with the policy's default lease. */
  public Outcome process(String namespace, String id, Handler handler) throws Exception {
    return process(ClaimRequest.newBuilder().setNamespace(namespace).setId(DedupClient.bytes(id)).build(), handler);
  }

  /**
   * Runs {@code handler} under a lease taken with {@code claim} (namespace, id, fingerprint,
   * lease_ms). If it throws, the lease is released and the exception rethrown.
   */
  public Outcome process(ClaimRequest claim, Handler handler) throws Exception {
    ClaimResponse r = client.claim(claim);
    if (r.getOutcome() == ClaimOutcome.CLAIM_OUTCOME_DUPLICATE) {
      Optional<byte[]> stored = r.hasResult() ? Optional.of(r.getResult().toByteArray()) : Optional.empty();
      return new Outcome(Status.DUPLICATE, stored, 0, Duration.ZERO);
    }
    if (r.getOutcome() == ClaimOutcome.CLAIM_OUTCOME_IN_PROGRESS) {
      return new Outcome(Status.IN_PROGRESS, Optional.empty(), 0, Duration.ofMillis(r.getRetryAfterMs()));
    }
    if (r.getOutcome() != ClaimOutcome.CLAIM_OUTCOME_ACQUIRED) {
      return new Outcome(Status.CONFLICT, Optional.empty(), 0, Duration.ZERO);
    }
    long token = r.getFencingToken();
    Lease lease = new Lease(claim.getNamespace(), claim.getId(), token, new AtomicBoolean());
    long leaseMs =
        claim.getLeaseMs() > 0 ? claim.getLeaseMs() : Math.max(300, r.getLeaseExpiresUnixMs() - System.currentTimeMillis());
    ScheduledFuture<?> beat = startHeartbeat(lease, claim.getLeaseMs(), Math.max(50, leaseMs / 3));
    byte[] result;
    try {
      result = handler.handle(lease);
    } catch (Exception | Error e) {
      beat.cancel(false);
      try {
        client.release(
            ReleaseRequest.newBuilder()
                .setNamespace(lease.namespace())
                .setId(lease.id())
                .setFencingToken(token)
                .build());
      } catch (DedupException ignored) {
        // best effort: the lease expires anyway
      }
      throw e;
    }
    beat.cancel(false);
    CommitRequest.Builder commit =
        CommitRequest.newBuilder().setNamespace(lease.namespace()).setId(lease.id()).setFencingToken(token);
    if (result != null) {
      commit.setResult(ByteString.copyFrom(result));
    }
    if (client.commit(commit.build()).getOutcome() != CommitOutcome.COMMIT_OUTCOME_COMMITTED) {
      throw new LeaseLostException(token);
    }
    return new Outcome(Status.PROCESSED, Optional.ofNullable(result), token, Duration.ZERO);
  }

  /** {@link #process(ClaimRequest, Handler)} on {@code executor}; the future fails with the handler's exception. */
  public CompletableFuture<Outcome> processAsync(ClaimRequest claim, Handler handler, Executor executor) {
    return CompletableFuture.supplyAsync(
        () -> {
          try {
            return process(claim, handler);
          } catch (RuntimeException e) {
            throw e;
          } catch (Exception e) {
            throw new CompletionException(e);
          }
        },
        executor);
  }

  private ScheduledFuture<?> startHeartbeat(Lease lease, long requestedLeaseMs, long everyMs) {
    RenewRequest renew =
        RenewRequest.newBuilder()
            .setNamespace(lease.namespace())
            .setId(lease.id())
            .setFencingToken(lease.token())
            .setLeaseMs(requestedLeaseMs)
            .build();
    DedupClient renewer = client.withDeadline(Duration.ofMillis(everyMs));
    return heartbeats.scheduleAtFixedRate(
        () -> {
          try {
            if (renewer.renew(renew).getOutcome() == RenewOutcome.RENEW_OUTCOME_LEASE_LOST) {
              lease.lost().set(true);
            }
          } catch (DedupException e) {
            // a failed heartbeat is not a lost lease: the next one may succeed
          }
        },
        everyMs,
        everyMs,
        TimeUnit.MILLISECONDS);
  }

  @Override
  public void close() {
    heartbeats.shutdownNow();
  }
}

package dev.dedup.client;

import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.ReleaseRequest;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;

/**
 * The effectively-once helper (docs/adr/0013): claim (waiting up to 5 s for another holder),
 * run the handler with its {@link Lease}, commit the handler's result. The outcome is a value
 * ({@link Status}, {@link Action}, {@link Outcome#shouldAck()}); exceptions only for real failures.
 *
 * <ul>
 *   <li>The handler throws: "before the effect": the lease is released, the exception rethrown.
 *   <li>The handler returned: the helper never releases. Commit is retried on UNAVAILABLE and
 *       DEADLINE_EXCEEDED for as long as the lease lasts (still renewed); on LEASE_LOST it
 *       re-claims once without waiting: ACQUIRED → commit at once → PROCESSED; else LEASE_LOST.
 *   <li>Still unreachable when the lease is over: {@link DedupException} with UNAVAILABLE
 *       ("effect applied, commit not recorded"): nack, the redelivery runs the handler again.
 *   <li>No background renewal outlives the call, whatever the handler throws.
 * </ul>
 */
public final class EffectivelyOnce implements AutoCloseable {
  /** The Claim's default wait for another holder's lease to end. */
  public static final long DEFAULT_WAIT_MS = 5000;

  private final DedupClient client;
  private final long waitMs;
  private final Duration renewEvery; // null: a third of the lease
  private final ScheduledExecutorService heartbeats;
  private final ExecutorService renewers;

  public EffectivelyOnce(DedupClient client) {
    this(builder(client));
  }

  private EffectivelyOnce(Builder b) {
    this.client = b.client;
    this.waitMs = b.waitMs;
    this.renewEvery = b.renewEvery;
    this.heartbeats =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "dedup-lease-timer");
              t.setDaemon(true);
              return t;
            });
    this.renewers =
        Executors.newCachedThreadPool(
            r -> {
              Thread t = new Thread(r, "dedup-lease-renewer");
              t.setDaemon(true);
              return t;
            });
  }

  public static Builder builder(DedupClient client) {
    return new Builder(client);
  }

  /** Helper options. */
  public static final class Builder {
    private final DedupClient client;
    private long waitMs = DEFAULT_WAIT_MS;
    private Duration renewEvery;

    private Builder(DedupClient client) {
      this.client = client;
    }

    /** How long a Claim waits for another holder (default 5000 ms; 0: answer IN_PROGRESS at once). */
    public Builder waitMs(long waitMs) {
      this.waitMs = waitMs;
      return this;
    }

    /** How often the lease is renewed in the background (default: a third of the lease). */
    public Builder renewEvery(Duration renewEvery) {
      this.renewEvery = renewEvery;
      return this;
    }

    public EffectivelyOnce build() {
      return new EffectivelyOnce(this);
    }
  }

  /** The work to run effectively once; its return value is stored as the result. */
  @FunctionalInterface
  public interface Handler {
    /** Returns the result to store for later duplicates, or null for none. */
    byte[] handle(Lease lease) throws Exception;
  }

  /** What to tell the broker. */
  public enum Action {
    ACK,
    /** Requeue, or redeliver after {@link Outcome#retryAfterMs()}. */
    NACK,
    DEAD_LETTER
  }

  /** What happened to a message. */
  public enum Status {
    /** The handler ran and its commit is recorded. */
    PROCESSED(Action.ACK),
    /** Processed before: {@link Outcome#storedResult()} holds its result. */
    DUPLICATE(Action.ACK),
    /** Another consumer still holds the lease after the wait: redeliver later. */
    IN_PROGRESS(Action.NACK),
    /** The same id with another fingerprint: an upstream bug. */
    CONFLICT(Action.DEAD_LETTER),
    /** The handler ran, but another holder took the id over before our commit (alert: lease too short). */
    LEASE_LOST(Action.ACK);

    private final Action action;

    Status(Action action) {
      this.action = action;
    }

    public Action action() {
      return action;
    }
  }

  /**
   * The outcome. {@code storedResult}: the handler's result (PROCESSED, LEASE_LOST) or the stored
   * one (DUPLICATE); {@code fencingToken}: the token the commit was made with (PROCESSED,
   * LEASE_LOST); {@code retryAfterMs}: IN_PROGRESS's time until the holder's lease ends.
   */
  public record Outcome(Status status, Optional<byte[]> storedResult, long fencingToken, long retryAfterMs) {
    public Action action() {
      return status.action();
    }

    public boolean shouldAck() {
      return status.action() == Action.ACK;
    }

    /** Same as {@link #storedResult()}. */
    public Optional<byte[]> result() {
      return storedResult;
    }

    public Duration retryAfter() {
      return Duration.ofMillis(retryAfterMs);
    }
  }

  /** Runs {@code handler} for (namespace, id) with the policy's default lease. */
  public Outcome process(String namespace, String id, Handler handler) throws Exception {
    return process(ClaimRequest.newBuilder().setNamespace(namespace).setId(DedupClient.bytes(id)).build(), handler);
  }

  /**
   * Runs {@code handler} under a lease taken with {@code claim} (namespace, id, fingerprint,
   * lease_ms, wait_ms: 0 takes the helper's default wait).
   */
  public Outcome process(ClaimRequest claim, Handler handler) throws Exception {
    ClaimRequest request = claim.getWaitMs() > 0 ? claim : claim.toBuilder().setWaitMs(waitMs).build();
    long sent = System.nanoTime();
    // The wait comes on top of the client's deadline, so it is not cut short and rides the stream.
    ClaimResponse r =
        (request.getWaitMs() > 0 ? client.withDeadline(client.deadline().plusMillis(request.getWaitMs())) : client)
            .claim(request);
    switch (r.getOutcome()) {
      case CLAIM_OUTCOME_DUPLICATE:
        return new Outcome(
            Status.DUPLICATE, r.hasResult() ? Optional.of(r.getResult().toByteArray()) : Optional.empty(), 0, 0);
      case CLAIM_OUTCOME_IN_PROGRESS:
        return new Outcome(Status.IN_PROGRESS, Optional.empty(), 0, r.getRetryAfterMs());
      case CLAIM_OUTCOME_CONFLICT:
        return new Outcome(Status.CONFLICT, Optional.empty(), 0, 0);
      case CLAIM_OUTCOME_ACQUIRED:
        break;
      default:
        throw new IllegalStateException("unexpected claim outcome " + r.getOutcome());
    }
    Lease lease = new Lease(client, claim.getNamespace(), claim.getId(), r.getFencingToken(), claim.getLeaseMs(), leaseMs(claim, r), sent);
    long every = renewEvery != null ? renewEvery.toMillis() : Math.max(50, lease.leaseMs() / 3);
    lease.startRenewing(heartbeats, renewers, every);
    try {
      byte[] result;
      try {
        result = handler.handle(lease);
      } catch (Exception | Error e) {
        lease.stopRenewing();
        release(lease);
        throw e;
      }
      return new CommitLoop(client, request, lease, result).run();
    } finally {
      lease.stopRenewing();
    }
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

  /** {@link #process(String, String, Handler)} on {@code executor}. */
  public CompletableFuture<Outcome> processAsync(String namespace, String id, Handler handler, Executor executor) {
    return processAsync(ClaimRequest.newBuilder().setNamespace(namespace).setId(DedupClient.bytes(id)).build(), handler, executor);
  }

  private static long leaseMs(ClaimRequest claim, ClaimResponse r) {
    if (claim.getLeaseMs() > 0) {
      return claim.getLeaseMs();
    }
    // The policy's default: the sidecar answers the expiry on the Redis clock; close enough here.
    return Math.max(300, r.getLeaseExpiresUnixMs() - System.currentTimeMillis());
  }

  private void release(Lease lease) {
    try {
      client.release(
          ReleaseRequest.newBuilder()
              .setNamespace(lease.namespace())
              .setId(lease.id())
              .setFencingToken(lease.token())
              .build());
    } catch (DedupException ignored) {
      // best effort: the lease ends by itself
    }
  }

  @Override
  public void close() {
    heartbeats.shutdownNow();
    renewers.shutdownNow();
  }
}

package dev.dedup.client;

import com.google.protobuf.ByteString;
import dev.dedup.v1.RenewOutcome;
import dev.dedup.v1.RenewRequest;
import dev.dedup.v1.RenewResponse;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The lease a handler runs under (docs/adr/0013): its fencing {@link #token()}, whether it is
 * known to be {@link #isLost() lost}, and {@link #ensure()}, a synchronous renew to call right
 * before an effect that cannot be fenced. The helper renews it in the background until the commit
 * is settled.
 */
public final class Lease {
  private final DedupClient client;
  private final String namespace;
  private final ByteString id;
  private final long token;
  private final long requestedLeaseMs; // 0: the policy's default
  private final long leaseMs; // the lease's length, as granted
  private final AtomicBoolean lost = new AtomicBoolean();
  private volatile long expiresAtNanos; // local estimate, measured from before each claim/renew was sent
  private ScheduledFuture<?> renewing; // guarded by this
  private Future<?> inFlight; // guarded by this

  Lease(DedupClient client, String namespace, ByteString id, long token, long requestedLeaseMs, long leaseMs, long sentAtNanos) {
    this.client = client;
    this.namespace = namespace;
    this.id = id;
    this.token = token;
    this.requestedLeaseMs = requestedLeaseMs;
    this.leaseMs = Math.max(1, leaseMs);
    this.expiresAtNanos = sentAtNanos + TimeUnit.MILLISECONDS.toNanos(this.leaseMs);
  }

  public String namespace() {
    return namespace;
  }

  public ByteString id() {
    return id;
  }

  /** The fencing token: pass it to stores that reject stale writers ({@link Sinks#advanceFence}). */
  public long token() {
    return token;
  }

  /** True once a renewal, {@link #ensure()} or the commit found the lease gone: stop early. */
  public boolean isLost() {
    return lost.get();
  }

  /**
   * Renews the lease now, synchronously. Returns when the lease is ours for another lease length;
   * throws {@link LeaseLostException} (and {@link #isLost()} turns true) if it is gone, or
   * {@link DedupException} if the sidecar could not answer.
   */
  public void ensure() {
    if (lost.get() || remainingMs() == 0) { // its time ran out (e.g. a paused process)
      markLost();
      throw new LeaseLostException(token);
    }
    long started = System.nanoTime();
    if (!renew(client)) {
      throw new LeaseLostException(token);
    }
    // A renewal whose answer arrived a whole lease after it was asked (the process was paused, the
    // network held it) proves nothing about now: the lease counts as lost.
    if (System.nanoTime() - started >= TimeUnit.MILLISECONDS.toNanos(leaseMs)) {
      markLost();
      throw new LeaseLostException(token);
    }
  }

  /** The lease's length as granted, in milliseconds. */
  long leaseMs() {
    return leaseMs;
  }

  /** Milliseconds left of the lease by the local estimate (0 when over). */
  long remainingMs() {
    return Math.max(0, TimeUnit.NANOSECONDS.toMillis(expiresAtNanos - System.nanoTime()));
  }

  void markLost() {
    lost.set(true);
  }

  /** One Renew; true if RENEWED (the estimate moves on), false if LEASE_LOST (the lease is marked lost). */
  boolean renew(DedupClient via) {
    long sent = System.nanoTime();
    RenewResponse r =
        via.renew(
            RenewRequest.newBuilder()
                .setNamespace(namespace)
                .setId(id)
                .setFencingToken(token)
                .setLeaseMs(requestedLeaseMs)
                .build());
    if (r.getOutcome() == RenewOutcome.RENEW_OUTCOME_RENEWED) {
      expiresAtNanos = sent + TimeUnit.MILLISECONDS.toNanos(leaseMs);
      return true;
    }
    lost.set(true);
    return false;
  }

  /**
   * Renews every {@code everyMs} until {@link #stopRenewing()}: {@code scheduler} only keeps time;
   * each renewal runs on {@code renewers}, at most one at a time per lease, so a slow sidecar
   * holding up one lease's renewal never delays another's.
   */
  synchronized void startRenewing(ScheduledExecutorService scheduler, ExecutorService renewers, long everyMs) {
    DedupClient renewer = client.withDeadline(java.time.Duration.ofMillis(Math.max(everyMs, 200)));
    renewing =
        scheduler.scheduleWithFixedDelay(
            () -> {
              synchronized (this) {
                if (renewing == null || lost.get() || (inFlight != null && !inFlight.isDone())) {
                  return;
                }
                inFlight = renewers.submit(() -> renewQuietly(renewer));
              }
            },
            everyMs,
            everyMs,
            TimeUnit.MILLISECONDS);
  }

  private void renewQuietly(DedupClient renewer) {
    try {
      renew(renewer);
    } catch (RuntimeException e) {
      // a failed renewal is not a lost lease: the next one may get through
    }
  }

  /** Stops the renewals, interrupting one in flight: nothing of this lease runs after the call. */
  synchronized void stopRenewing() {
    if (renewing != null) {
      renewing.cancel(false);
      renewing = null;
    }
    if (inFlight != null) {
      inFlight.cancel(true);
      inFlight = null;
    }
  }
}

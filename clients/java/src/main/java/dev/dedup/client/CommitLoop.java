package dev.dedup.client;

import com.google.protobuf.ByteString;
import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.CommitOutcome;
import dev.dedup.v1.CommitRequest;
import io.grpc.Status;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * The helper's commit after the handler's effect (docs/adr/0013 rule 4): never release; retry
 * UNAVAILABLE / DEADLINE_EXCEEDED with backoff (50 ms doubling to 1 s, jittered) while the lease
 * lasts; on LEASE_LOST re-claim once without waiting and commit at once if that acquires.
 */
final class CommitLoop {
  private static final long FIRST_BACKOFF_MS = 50;
  private static final long MAX_BACKOFF_MS = 1000;

  private final DedupClient client;
  private final ClaimRequest claim;
  private final Lease lease;
  private final byte[] result;
  private long token;
  private boolean reclaimed;
  private long reclaimedUntilNanos;

  CommitLoop(DedupClient client, ClaimRequest claim, Lease lease, byte[] result) {
    this.client = client;
    this.claim = claim;
    this.lease = lease;
    this.result = result;
    this.token = lease.token();
  }

  EffectivelyOnce.Outcome run() {
    long backoff = FIRST_BACKOFF_MS;
    while (true) {
      DedupException unreachable;
      try {
        if (commit() == CommitOutcome.COMMIT_OUTCOME_COMMITTED) {
          return outcome(EffectivelyOnce.Status.PROCESSED);
        }
        lease.markLost();
        if (reclaimed || !reclaim()) {
          return outcome(EffectivelyOnce.Status.LEASE_LOST);
        }
        continue; // ours again, and the effect is done: commit at once
      } catch (DedupException e) {
        if (!transientFailure(e)) {
          throw e;
        }
        unreachable = e;
      }
      if (remainingMs() <= 0) {
        return lastChance(unreachable);
      }
      sleep(Math.min(ThreadLocalRandom.current().nextLong(backoff / 2, backoff + 1), remainingMs()), unreachable);
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    }
  }

  /** The lease ran out while the sidecar was unreachable: one re-claim; failing that, "commit not recorded". */
  private EffectivelyOnce.Outcome lastChance(DedupException unreachable) {
    try {
      if (reclaimed || !reclaim()) {
        return outcome(EffectivelyOnce.Status.LEASE_LOST);
      }
      if (commit() == CommitOutcome.COMMIT_OUTCOME_COMMITTED) {
        return outcome(EffectivelyOnce.Status.PROCESSED);
      }
      return outcome(EffectivelyOnce.Status.LEASE_LOST);
    } catch (DedupException e) {
      if (!transientFailure(e)) {
        throw e;
      }
      throw notRecorded(e);
    }
  }

  private CommitOutcome commit() {
    CommitRequest.Builder req =
        CommitRequest.newBuilder().setNamespace(claim.getNamespace()).setId(claim.getId()).setFencingToken(token);
    if (result != null) {
      req.setResult(ByteString.copyFrom(result));
    }
    return client.commit(req.build()).getOutcome();
  }

  /** Claims again without waiting; true (and the new token is ours) if ACQUIRED. */
  private boolean reclaim() {
    long sent = System.nanoTime();
    ClaimResponse r = client.claim(claim.toBuilder().setWaitMs(0).build());
    if (r.getOutcome() != ClaimOutcome.CLAIM_OUTCOME_ACQUIRED) {
      return false;
    }
    token = r.getFencingToken();
    reclaimed = true;
    reclaimedUntilNanos = sent + TimeUnit.MILLISECONDS.toNanos(lease.leaseMs());
    return true;
  }

  private long remainingMs() {
    if (reclaimed) {
      return Math.max(0, TimeUnit.NANOSECONDS.toMillis(reclaimedUntilNanos - System.nanoTime()));
    }
    return lease.remainingMs();
  }

  private EffectivelyOnce.Outcome outcome(EffectivelyOnce.Status status) {
    return new EffectivelyOnce.Outcome(status, Optional.ofNullable(result), token, 0);
  }

  private static boolean transientFailure(DedupException e) {
    return e.code() == Status.Code.UNAVAILABLE || e.code() == Status.Code.DEADLINE_EXCEEDED;
  }

  private static DedupException notRecorded(DedupException cause) {
    return new DedupException(
        Status.Code.UNAVAILABLE, "effect applied, commit not recorded (sidecar unreachable until the lease ended)", cause);
  }

  private static void sleep(long ms, DedupException unreachable) {
    try {
      Thread.sleep(Math.max(1, ms));
    } catch (InterruptedException ie) {
      Thread.currentThread().interrupt();
      throw notRecorded(unreachable);
    }
  }
}

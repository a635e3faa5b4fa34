package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.CommitOutcome;
import dev.dedup.v1.CommitRequest;
import dev.dedup.v1.CommitResponse;
import dev.dedup.v1.DedupGrpc;
import dev.dedup.v1.RenewOutcome;
import dev.dedup.v1.RenewRequest;
import dev.dedup.v1.RenewResponse;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * A renewal the sidecar granted whose answer arrives a whole lease later (the consumer was frozen,
 * or the network held the reply) proves nothing about now: ensure() reports the lease lost, so an
 * unfenced effect does not run on a lease another consumer may hold.
 */
class LeaseEnsureTest {
  private static final long LEASE_MS = 600;

  @Test
  void ensureWhoseAnswerOutlivedTheLeaseSaysLost() throws Exception {
    ScheduledExecutorService late = Executors.newSingleThreadScheduledExecutor();
    Server server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(
                new DedupGrpc.DedupImplBase() { // no Stream: the client goes unary
                  @Override
                  public void claim(ClaimRequest request, StreamObserver<ClaimResponse> out) {
                    out.onNext(
                        ClaimResponse.newBuilder()
                            .setOutcome(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED)
                            .setFencingToken(7)
                            .setLeaseExpiresUnixMs(System.currentTimeMillis() + LEASE_MS)
                            .build());
                    out.onCompleted();
                  }

                  @Override
                  public void renew(RenewRequest request, StreamObserver<RenewResponse> out) {
                    late.schedule( // the answer is held past the lease
                        () -> {
                          out.onNext(
                              RenewResponse.newBuilder()
                                  .setOutcome(RenewOutcome.RENEW_OUTCOME_RENEWED)
                                  .setLeaseExpiresUnixMs(System.currentTimeMillis() + LEASE_MS)
                                  .build());
                          out.onCompleted();
                        },
                        LEASE_MS + 300,
                        TimeUnit.MILLISECONDS);
                  }

                  @Override
                  public void commit(CommitRequest request, StreamObserver<CommitResponse> out) {
                    out.onNext(CommitResponse.newBuilder().setOutcome(CommitOutcome.COMMIT_OUTCOME_COMMITTED).build());
                    out.onCompleted();
                  }
                })
            .build()
            .start();
    AtomicReference<Throwable> ensured = new AtomicReference<>();
    AtomicReference<Boolean> lostAfter = new AtomicReference<>();
    try (DedupClient client =
        DedupClient.builder("127.0.0.1:" + server.getPort()).deadline(Duration.ofSeconds(5)).build()) {
      EffectivelyOnce once = EffectivelyOnce.builder(client).renewEvery(Duration.ofMinutes(1)).build();
      ClaimRequest claim =
          ClaimRequest.newBuilder()
              .setNamespace("ns")
              .setId(com.google.protobuf.ByteString.copyFromUtf8("id"))
              .setLeaseMs(LEASE_MS)
              .build();
      once.process(
          claim,
          lease -> {
            ensured.set(assertThrows(LeaseLostException.class, lease::ensure));
            lostAfter.set(lease.isLost());
            return null;
          });
    } finally {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      late.shutdownNow();
    }
    assertTrue(ensured.get() instanceof LeaseLostException, "ensure() after a late renewal");
    assertTrue(lostAfter.get(), "the lease is marked lost");
  }
}

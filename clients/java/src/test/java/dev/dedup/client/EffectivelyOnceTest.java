package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.InspectResponse;
import dev.dedup.v1.RecordState;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** EffectivelyOnce against the live sidecar ($DEDUP_TARGET). */
class EffectivelyOnceTest {
  private static final String NS = "contract";
  private static DedupClient client;
  private static EffectivelyOnce once;

  @BeforeAll
  static void connect() {
    String target = System.getenv("DEDUP_TARGET");
    org.junit.jupiter.api.Assertions.assertNotNull(target, "$DEDUP_TARGET is not set");
    // A roomy deadline: this tests the helper, not latency on a loaded CI machine.
    client = DedupClient.builder(target).deadline(java.time.Duration.ofSeconds(20)).build();
    once = new EffectivelyOnce(client);
  }

  @AfterAll
  static void closeHelper() {
    once.close();
    client.close();
  }

  private static String freshId() {
    return "java-once-" + UUID.randomUUID();
  }

  @Test
  void runsOnceAndReportsLaterCopiesAsDuplicateWithTheStoredResult() throws Exception {
    String id = freshId();
    AtomicInteger runs = new AtomicInteger();
    EffectivelyOnce.Handler handler =
        lease -> {
          runs.incrementAndGet();
          return "receipt-1".getBytes(StandardCharsets.UTF_8);
        };
    assertEquals(EffectivelyOnce.Status.PROCESSED, once.process(NS, id, handler).status());
    EffectivelyOnce.Outcome again = once.process(NS, id, handler);
    assertEquals(EffectivelyOnce.Status.DUPLICATE, again.status());
    assertArrayEquals("receipt-1".getBytes(StandardCharsets.UTF_8), again.result().orElseThrow());
    assertEquals(1, runs.get());
  }

  @Test
  void releasesOnHandlerErrorSoARedeliveryProceedsAtOnce() throws Exception {
    String id = freshId();
    assertThrows(
        IllegalStateException.class,
        () ->
            once.process(
                NS,
                id,
                lease -> {
                  throw new IllegalStateException("boom");
                }));
    assertEquals(EffectivelyOnce.Status.PROCESSED, once.process(NS, id, lease -> null).status());
  }

  @Test
  void reportsInProgressWhileAnotherHoldersLeaseIsLive() throws Exception {
    String id = freshId();
    assertEquals(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, client.claim(NS, id).getOutcome());
    ClaimRequest claim = ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(id)).setWaitMs(200).build();
    AtomicInteger runs = new AtomicInteger();
    EffectivelyOnce.Outcome outcome = once.process(claim, lease -> { runs.incrementAndGet(); return null; });
    assertEquals(EffectivelyOnce.Status.IN_PROGRESS, outcome.status());
    assertEquals(EffectivelyOnce.Action.NACK, outcome.action());
    assertEquals(false, outcome.shouldAck());
    assertEquals(0, runs.get());
  }

  @Test
  void aLeaseTakenOverBeforeTheCommitIsTheLeaseLostStatusNotAnException() throws Exception {
    String id = freshId();
    EffectivelyOnce.Outcome outcome =
        once.process(
            NS,
            id,
            lease -> {
              client.forget(dev.dedup.v1.ForgetRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(id)).build());
              assertEquals(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, client.claim(NS, id).getOutcome());
              assertThrows(LeaseLostException.class, lease::ensure);
              assertEquals(true, lease.isLost());
              return null;
            });
    assertEquals(EffectivelyOnce.Status.LEASE_LOST, outcome.status());
    assertEquals(EffectivelyOnce.Action.ACK, outcome.action());
    assertEquals(true, outcome.shouldAck());
  }

  @Test
  void noRenewalOutlivesAFailingHandler() throws Exception {
    String id = freshId();
    ClaimRequest claim = ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(id)).setLeaseMs(300).build();
    assertThrows(IllegalStateException.class, () -> once.process(claim, lease -> { throw new IllegalStateException("boom"); }));
    // Released at once; and no renewal keeps a later holder's record alive past its own lease.
    assertEquals(RecordState.RECORD_STATE_ABSENT, client.inspect(NS, id).getState());
  }

  @Test
  void renewsTheLeaseWhileALongHandlerRuns() throws Exception {
    String id = freshId();
    ClaimRequest claim =
        ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(id)).setLeaseMs(300).build();
    EffectivelyOnce.Outcome outcome =
        once.process(
            claim,
            lease -> {
              long until = System.nanoTime() + 700_000_000L; // outlive the 300 ms lease twice over
              while (System.nanoTime() < until) {
                InspectResponse r = client.inspect(NS, id);
                assertEquals(RecordState.RECORD_STATE_IN_PROGRESS, r.getState());
                assertEquals(lease.token(), r.getFencingToken());
                Thread.sleep(50);
              }
              return null;
            });
    assertEquals(EffectivelyOnce.Status.PROCESSED, outcome.status());
  }

  @Test
  void asyncVariantCompletesWithTheOutcomeOrTheHandlersError() {
    ClaimRequest ok = ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(freshId())).build();
    assertEquals(
        EffectivelyOnce.Status.PROCESSED,
        once.processAsync(ok, lease -> null, ForkJoinPool.commonPool()).join().status());
    ClaimRequest bad = ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(freshId())).build();
    CompletionException e =
        assertThrows(
            CompletionException.class,
            () ->
                once.processAsync(
                        bad,
                        lease -> {
                          throw new java.io.IOException("downstream");
                        },
                        ForkJoinPool.commonPool())
                    .join());
    assertEquals(java.io.IOException.class, e.getCause().getClass());
  }
}

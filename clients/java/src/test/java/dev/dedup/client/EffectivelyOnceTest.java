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

  @Test
  void aCommitStillUnreachableWhenTheLeaseEndsIsTheCommitNotRecordedError() throws Exception {
    String toggle = System.getenv("DEDUP_TOGGLE_TARGET");
    org.junit.jupiter.api.Assertions.assertNotNull(toggle, "$DEDUP_TOGGLE_TARGET is not set");
    String id = freshId();
    ClaimRequest claim =
        ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(id)).setLeaseMs(1000).build();
    try (DedupClient cut = DedupClient.builder(toggle).deadline(java.time.Duration.ofSeconds(2)).build();
        EffectivelyOnce helper = new EffectivelyOnce(cut)) {
      AtomicInteger runs = new AtomicInteger();
      DedupException e =
          assertThrows(
              DedupException.class,
              () ->
                  helper.process(
                      claim,
                      lease -> {
                        runs.incrementAndGet();
                        ContractOnce.cut(6000); // far longer than the 1 s lease
                        return null;
                      }));
      assertEquals(io.grpc.Status.Code.UNAVAILABLE, e.code());
      org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("commit not recorded"), e.getMessage());
      assertEquals(1, runs.get());
    }
    // Never released: the record goes only when the lease ends, and the redelivery may run it again.
    long until = System.nanoTime() + 10_000_000_000L;
    while (client.inspect(NS, id).getState() != RecordState.RECORD_STATE_ABSENT) {
      org.junit.jupiter.api.Assertions.assertTrue(System.nanoTime() < until, "the lease did not end");
      Thread.sleep(25); // poll interval of a bounded condition wait
    }
    assertEquals(EffectivelyOnce.Status.PROCESSED, once.process(NS, id, lease -> null).status());
    // Leave the proxy as found: wait for the cut to end before other tests use it.
    try (DedupClient probe = DedupClient.builder(toggle).transport(Transport.UNARY).build()) {
      long open = System.nanoTime() + 20_000_000_000L;
      while (true) {
        try {
          probe.inspect(NS, id);
          break;
        } catch (DedupException stillCut) {
          org.junit.jupiter.api.Assertions.assertTrue(System.nanoTime() < open, "the toggle proxy did not come back");
          Thread.sleep(100); // poll interval of a bounded condition wait
        }
      }
    }
  }
}

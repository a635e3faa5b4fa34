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
    assertEquals(EffectivelyOnce.Status.IN_PROGRESS, once.process(NS, id, lease -> null).status());
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

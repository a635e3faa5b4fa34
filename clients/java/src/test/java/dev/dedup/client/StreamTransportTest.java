package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.dedup.v1.CheckOutcome;
import dev.dedup.v1.CheckRequest;
import dev.dedup.v1.CheckResponse;
import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.RecordState;
import dev.dedup.v1.StreamRequest;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The stream transport against the live sidecar ($DEDUP_TARGET): coalescing, routing, errors. */
class StreamTransportTest {
  private static final String NS = "contract";
  private static DedupClient client;
  private static ExecutorService pool;

  @BeforeAll
  static void connect() {
    String target = System.getenv("DEDUP_TARGET");
    assertNotNull(target, "$DEDUP_TARGET is not set");
    client = DedupClient.builder(target).deadline(Duration.ofSeconds(20)).build();
    client.inspect(NS, "java-stream-warmup");
    pool = Executors.newFixedThreadPool(24);
  }

  @AfterAll
  static void close() {
    pool.shutdownNow();
    client.close();
  }

  private static String freshId() {
    return "java-stream-" + UUID.randomUUID();
  }

  /** Holds the send lock while {@code n} calls queue up, then lets them go as one write pass. */
  private static <T> List<T> queuedTogether(List<java.util.concurrent.Callable<T>> calls) throws Exception {
    StreamMux mux = client.mux();
    List<Future<T>> futures = new ArrayList<>();
    mux.sendLock().lock();
    try {
      for (var c : calls) {
        futures.add(pool.submit(c));
      }
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (mux.queued() < calls.size()) {
        assertTrue(System.nanoTime() < until, "calls did not queue");
        Thread.sleep(5); // poll interval of a bounded condition wait
      }
    } finally {
      mux.sendLock().unlock();
    }
    mux.flushQueued();
    List<T> out = new ArrayList<>();
    for (Future<T> f : futures) {
      out.add(f.get(30, TimeUnit.SECONDS));
    }
    return out;
  }

  @Test
  void concurrentCallsOfOneKindAreCoalescedIntoOneBatchMessageAndEachGetsItsOwnAnswer() throws Exception {
    String shared = freshId();
    List<java.util.concurrent.Callable<CheckResponse>> calls = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      String id = i < 10 ? shared : freshId();
      calls.add(() -> client.check(NS, id));
    }
    long before = client.mux().messagesSent();
    List<CheckResponse> answers = queuedTogether(calls);
    assertEquals(1, client.mux().messagesSent() - before, "20 pending checks went out as one CheckBatch message");
    Map<String, Integer> sharedOutcomes = new TreeMap<>();
    for (int i = 0; i < 10; i++) {
      sharedOutcomes.merge(answers.get(i).getOutcome().name(), 1, Integer::sum);
    }
    assertEquals(Map.of("CHECK_OUTCOME_DUPLICATE", 9, "CHECK_OUTCOME_NEW", 1), sharedOutcomes);
    for (int i = 10; i < 20; i++) {
      assertEquals(CheckOutcome.CHECK_OUTCOME_NEW, answers.get(i).getOutcome(), "call " + i);
    }
  }

  @Test
  void aBadItemInACoalescedBatchFailsOnlyItsOwnCall() throws Exception {
    List<java.util.concurrent.Callable<Object>> calls = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      String id = i == 2 ? "" : freshId();
      calls.add(
          () -> {
            try {
              return client.check(CheckRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(id)).build());
            } catch (DedupException e) {
              return e;
            }
          });
    }
    List<Object> answers = queuedTogether(calls);
    for (int i = 0; i < 5; i++) {
      if (i == 2) {
        DedupException e = (DedupException) answers.get(i);
        assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
        assertEquals("id", e.fieldViolations().get(0).getField());
      } else {
        assertEquals(CheckOutcome.CHECK_OUTCOME_NEW, ((CheckResponse) answers.get(i)).getOutcome(), "call " + i);
      }
    }
  }

  @Test
  void aLateAcquiredForAnAbandonedClaimIsReleased() throws Exception {
    String id = freshId();
    long holder = client.claim(NS, id).getFencingToken();
    // A long lease: unless the client releases it, the waiter's record stays IN_PROGRESS.
    ClaimRequest waiting =
        ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(id)).setWaitMs(10_000).setLeaseMs(60_000).build();
    long releasedBefore = client.mux().abandonedReleases();
    // Straight to the mux, so wait_ms is not capped to the deadline: the caller gives up first.
    io.grpc.StatusRuntimeException e =
        assertThrows(
            io.grpc.StatusRuntimeException.class,
            () -> client.mux().call(dev.dedup.v1.StreamRequest.RequestCase.CLAIM, waiting, io.grpc.Deadline.after(300, TimeUnit.MILLISECONDS)));
    assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
    client.release(NS, id, holder); // wakes the abandoned waiter: ACQUIRED, which nobody awaits
    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (client.mux().abandonedReleases() == releasedBefore) {
      assertTrue(System.nanoTime() < until, "no late ACQUIRED arrived for the abandoned claim");
      Thread.sleep(25); // poll interval of a bounded condition wait
    }
    while (client.inspect(NS, id).getState() != RecordState.RECORD_STATE_ABSENT) {
      assertTrue(System.nanoTime() < until, "the late ACQUIRED was not released");
      Thread.sleep(25); // poll interval of a bounded condition wait
    }
  }

  @Test
  void aClaimAbandonedBeforeItWasWrittenIsNeverSent() throws Exception {
    String id = freshId();
    StreamMux mux = client.mux();
    DedupClient impatient = client.withDeadline(Duration.ofMillis(50));
    DedupException e;
    mux.sendLock().lock(); // the claim cannot be written before its deadline passes...
    try {
      Future<DedupException> f = pool.submit(() -> assertThrows(DedupException.class, () -> impatient.claim(NS, id)));
      e = f.get(30, TimeUnit.SECONDS);
    } finally {
      mux.sendLock().unlock();
    }
    assertEquals(Status.Code.DEADLINE_EXCEEDED, e.code());
    mux.flushQueued(); // ...and a call abandoned before it was written is never sent
    assertEquals(RecordState.RECORD_STATE_ABSENT, client.inspect(NS, id).getState());
  }

  /** The Claim messages written while {@code body} runs (ADR 0018 framing). */
  private static List<StreamRequest> claimMessagesWrittenDuring(java.util.concurrent.Callable<Void> body) throws Exception {
    List<StreamRequest> written = java.util.Collections.synchronizedList(new ArrayList<>());
    client.mux().observeSends(m -> {
      if (m.hasClaim() || m.hasClaimBatch()) {
        written.add(m);
      }
    });
    try {
      body.call();
    } finally {
      client.mux().observeSends(null);
    }
    synchronized (written) {
      return List.copyOf(written);
    }
  }

  private static ClaimRequest claimOf(String id, long waitMs) {
    return ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(id)).setWaitMs(waitMs).build();
  }

  @Test
  void pendingWaitingClaimsGoOutAsOneAnswerAtOnceClaimBatchAndTheHeldOneWaitsAloneAfterwards() throws Exception {
    String held = freshId();
    String free = freshId();
    long holder = client.claim(NS, held).getFencingToken();
    List<Future<ClaimResponse>> answers = new ArrayList<>();
    List<StreamRequest> written =
        claimMessagesWrittenDuring(
            () -> {
              StreamMux mux = client.mux();
              mux.sendLock().lock();
              try {
                answers.add(pool.submit(() -> client.claim(claimOf(held, 15_000))));
                answers.add(pool.submit(() -> client.claim(claimOf(free, 15_000))));
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (mux.queued() < 2) {
                  assertTrue(System.nanoTime() < until, "claims did not queue");
                  Thread.sleep(5); // poll interval of a bounded condition wait
                }
              } finally {
                mux.sendLock().unlock();
              }
              mux.flushQueued();
              // The free id is answered while the held one still waits (it was not held back by it).
              assertEquals(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, answers.get(1).get(30, TimeUnit.SECONDS).getOutcome());
              assertTrue(!answers.get(0).isDone(), "the held claim waits for its holder");
              client.commit(NS, held, holder);
              // Its second attempt (written before it can be answered) sees the commit.
              assertEquals(ClaimOutcome.CLAIM_OUTCOME_DUPLICATE, answers.get(0).get(30, TimeUnit.SECONDS).getOutcome());
              return null;
            });
    assertEquals(2, written.size(), "one ClaimBatch, then the held claim alone: " + written);
    assertTrue(written.get(0).hasClaimBatch(), "the two pending waiting claims share one message");
    assertTrue(written.get(0).getClaimBatch().getAnswerAtOnce(), "nothing in the batch waits (ADR 0018)");
    assertEquals(List.of(15_000L, 15_000L), written.get(0).getClaimBatch().getItemsList().stream().map(ClaimRequest::getWaitMs).toList());
    ClaimRequest again = written.get(1).getClaim();
    assertEquals(DedupClient.bytes(held), again.getId());
    assertTrue(again.getWaitMs() > 0 && again.getWaitMs() <= 15_000, "the rest of its wait: " + again.getWaitMs());
  }

  @Test
  void anInProgressItemIsDeliveredWhenItsCallDidNotWaitOrHasNoWaitLeft() throws Exception {
    String held = freshId();
    long holder = client.claim(NS, held).getFencingToken();
    List<Object> answers = new ArrayList<>();
    List<StreamRequest> written =
        claimMessagesWrittenDuring(
            () -> {
              // No wait; a wait of 1 ms (always over once its batch is answered); a wait of 300 ms.
              answers.addAll(
                  queuedTogether(
                      List.of(
                          () -> client.claim(claimOf(held, 0)),
                          () -> client.claim(claimOf(held, 1)),
                          () -> client.claim(claimOf(held, 300)))));
              return null;
            });
    answers.forEach(a -> assertEquals(ClaimOutcome.CLAIM_OUTCOME_IN_PROGRESS, ((ClaimResponse) a).getOutcome()));
    assertEquals(2, written.size(), "one ClaimBatch, then only the 300 ms claim again: " + written);
    assertTrue(written.get(0).getClaimBatch().getAnswerAtOnce(), "nothing in the batch waits (ADR 0018)");
    assertEquals(List.of(0L, 1L, 300L), written.get(0).getClaimBatch().getItemsList().stream().map(ClaimRequest::getWaitMs).sorted().toList()); // queued from three threads: any order
    long rest = written.get(1).getClaim().getWaitMs();
    assertTrue(rest > 0 && rest <= 300, "the rest of its wait: " + rest);
    client.release(NS, held, holder);
  }

  @Test
  void aWaitingClaimAloneGoesOutWithItsWait() throws Exception {
    String held = freshId();
    long holder = client.claim(NS, held).getFencingToken();
    List<Object> answers = new ArrayList<>();
    List<StreamRequest> written =
        claimMessagesWrittenDuring(
            () -> {
              answers.add(client.claim(claimOf(held, 200)));
              return null;
            });
    assertEquals(ClaimOutcome.CLAIM_OUTCOME_IN_PROGRESS, ((ClaimResponse) answers.get(0)).getOutcome());
    assertEquals(1, written.size(), "one round trip: " + written);
    assertEquals(200, written.get(0).getClaim().getWaitMs());
    client.release(NS, held, holder);
  }

  @Test
  void aWaitMsOverThePolicyMaximumIsRefusedInACoalescedBatchToo() throws Exception {
    // contract.bounded's max_claim_wait is under 600 000 ms: the sidecar validates every item's
    // wait_ms of an answer_at_once batch, refuses the batch whole, and each call is resent alone.
    String ns = "contract.bounded";
    String tooLong = freshId();
    String fine = freshId();
    ClaimRequest over = ClaimRequest.newBuilder().setNamespace(ns).setId(DedupClient.bytes(tooLong)).setWaitMs(600_000).build();
    ClaimRequest ok = ClaimRequest.newBuilder().setNamespace(ns).setId(DedupClient.bytes(fine)).setWaitMs(1_000).build();
    StreamMux mux = client.mux();
    List<Object> answers = new ArrayList<>();
    List<StreamRequest> written =
        claimMessagesWrittenDuring(
            () -> {
              // Straight to the mux, so the over-long wait rides the stream instead of a unary call.
              answers.addAll(
                  queuedTogether(
                      List.of(
                          () -> {
                            try {
                              return mux.call(StreamRequest.RequestCase.CLAIM, over, io.grpc.Deadline.after(20, TimeUnit.SECONDS));
                            } catch (io.grpc.StatusRuntimeException e) {
                              return e;
                            }
                          },
                          () -> mux.call(StreamRequest.RequestCase.CLAIM, ok, io.grpc.Deadline.after(20, TimeUnit.SECONDS)))));
              return null;
            });
    assertTrue(written.get(0).hasClaimBatch() && written.get(0).getClaimBatch().getAnswerAtOnce(), "coalesced: " + written);
    // the two callers queue from their own threads: either may come first in the batch
    assertEquals(List.of(1_000L, 600_000L), written.get(0).getClaimBatch().getItemsList().stream().map(ClaimRequest::getWaitMs).sorted().toList());
    assertEquals(Status.Code.INVALID_ARGUMENT, ((io.grpc.StatusRuntimeException) answers.get(0)).getStatus().getCode());
    assertEquals(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, ((ClaimResponse) answers.get(1)).getOutcome());
    client.release(ns, fine, ((ClaimResponse) answers.get(1)).getFencingToken());
  }
}

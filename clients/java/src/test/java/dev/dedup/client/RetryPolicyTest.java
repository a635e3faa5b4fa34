package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.dedup.v1.CheckBatchRequest;
import dev.dedup.v1.CheckBatchResponse;
import dev.dedup.v1.CheckRequest;
import dev.dedup.v1.CheckResponse;
import dev.dedup.v1.ClaimBatchRequest;
import dev.dedup.v1.ClaimBatchResponse;
import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.CommitBatchRequest;
import dev.dedup.v1.CommitBatchResponse;
import dev.dedup.v1.CommitOutcome;
import dev.dedup.v1.CommitRequest;
import dev.dedup.v1.CommitResponse;
import dev.dedup.v1.DedupGrpc;
import dev.dedup.v1.ForgetRequest;
import dev.dedup.v1.ForgetResponse;
import dev.dedup.v1.InspectRequest;
import dev.dedup.v1.InspectResponse;
import dev.dedup.v1.ReleaseRequest;
import dev.dedup.v1.ReleaseResponse;
import dev.dedup.v1.RenewRequest;
import dev.dedup.v1.RenewResponse;
import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Retries against a scripted in-process server (no sidecar): docs/adr/0010-client-retries.md. */
class RetryPolicyTest {
  private static final Map<String, AtomicInteger> CALLS = new ConcurrentHashMap<>();
  private static final AtomicBoolean EVERY_CALL_HAD_A_DEADLINE = new AtomicBoolean(true);
  private static volatile int failFirst;
  private static Server server;
  private static DedupClient client;

  /** Fails each method's first {@code failFirst} calls with UNAVAILABLE, then answers {@code ok}. */
  private static <T> void answer(String name, T ok, StreamObserver<T> out) {
    if (Context.current().getDeadline() == null) {
      EVERY_CALL_HAD_A_DEADLINE.set(false);
    }
    if (CALLS.computeIfAbsent(name, k -> new AtomicInteger()).incrementAndGet() <= failFirst) {
      out.onError(Status.UNAVAILABLE.withDescription("store unavailable").asRuntimeException());
    } else {
      out.onNext(ok);
      out.onCompleted();
    }
  }

  @BeforeAll
  static void start() throws Exception {
    server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(
                new DedupGrpc.DedupImplBase() {
                  @Override
                  public void check(CheckRequest r, StreamObserver<CheckResponse> o) {
                    answer("check", CheckResponse.getDefaultInstance(), o);
                  }

                  @Override
                  public void claim(ClaimRequest r, StreamObserver<ClaimResponse> o) {
                    answer("claim", ClaimResponse.newBuilder().setOutcome(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED).build(), o);
                  }

                  @Override
                  public void commit(CommitRequest r, StreamObserver<CommitResponse> o) {
                    answer("commit", CommitResponse.newBuilder().setOutcome(CommitOutcome.COMMIT_OUTCOME_COMMITTED).build(), o);
                  }

                  @Override
                  public void release(ReleaseRequest r, StreamObserver<ReleaseResponse> o) {
                    answer("release", ReleaseResponse.getDefaultInstance(), o);
                  }

                  @Override
                  public void renew(RenewRequest r, StreamObserver<RenewResponse> o) {
                    answer("renew", RenewResponse.getDefaultInstance(), o);
                  }

                  @Override
                  public void inspect(InspectRequest r, StreamObserver<InspectResponse> o) {
                    answer("inspect", InspectResponse.getDefaultInstance(), o);
                  }

                  @Override
                  public void forget(ForgetRequest r, StreamObserver<ForgetResponse> o) {
                    answer("forget", ForgetResponse.getDefaultInstance(), o);
                  }

                  @Override
                  public void checkBatch(CheckBatchRequest r, StreamObserver<CheckBatchResponse> o) {
                    answer("checkBatch", CheckBatchResponse.getDefaultInstance(), o);
                  }

                  @Override
                  public void claimBatch(ClaimBatchRequest r, StreamObserver<ClaimBatchResponse> o) {
                    answer("claimBatch", ClaimBatchResponse.getDefaultInstance(), o);
                  }

                  @Override
                  public void commitBatch(CommitBatchRequest r, StreamObserver<CommitBatchResponse> o) {
                    answer("commitBatch", CommitBatchResponse.getDefaultInstance(), o);
                  }
                })
            .build()
            .start();
    client = DedupClient.builder("127.0.0.1:" + server.getPort()).retry(new RetryPolicy(4, 1)).build();
  }

  @AfterAll
  static void stop() {
    client.close();
    server.shutdownNow();
  }

  @BeforeEach
  void reset() {
    CALLS.clear();
  }

  private static Map<String, Integer> counts() {
    Map<String, Integer> out = new TreeMap<>();
    CALLS.forEach((k, v) -> out.put(k, v.get()));
    return out;
  }

  @Test
  void claimCommitReleaseRenewInspectAndTheirBatchesAreRetriedAfterUnavailable() {
    failFirst = 2;
    assertEquals(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, client.claim("ns", "a").getOutcome());
    assertEquals(CommitOutcome.COMMIT_OUTCOME_COMMITTED, client.commit("ns", "a", 7).getOutcome());
    client.release("ns", "a", 7);
    client.renew("ns", "a", 7);
    client.inspect("ns", "a");
    client.claimBatch(List.of(ClaimRequest.getDefaultInstance()));
    client.commitBatch(List.of(CommitRequest.getDefaultInstance()));
    assertEquals(
        new TreeMap<>(
            Map.of("claim", 3, "commit", 3, "release", 3, "renew", 3, "inspect", 3, "claimBatch", 3, "commitBatch", 3)),
        counts());
  }

  @Test
  void checkCheckBatchAndForgetAreSentExactlyOnce() {
    failFirst = 100;
    for (Runnable call :
        List.<Runnable>of(
            () -> client.check("ns", "a"),
            () -> client.checkBatch(List.of(CheckRequest.getDefaultInstance())),
            () -> client.forget(ForgetRequest.getDefaultInstance()))) {
      DedupException e = assertThrows(DedupException.class, call::run);
      assertEquals(Status.Code.UNAVAILABLE, e.code());
      assertEquals(1, e.attempts());
    }
    assertEquals(new TreeMap<>(Map.of("check", 1, "checkBatch", 1, "forget", 1)), counts());
  }

  @Test
  void retriesStopAtMaxAttemptsAndEveryCallCarriesADeadline() {
    failFirst = 100;
    DedupException e = assertThrows(DedupException.class, () -> client.claim("ns", "a"));
    assertEquals(4, e.attempts());
    assertTrue(EVERY_CALL_HAD_A_DEADLINE.get());
  }
}

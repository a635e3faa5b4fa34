package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.dedup.v1.CheckOutcome;
import dev.dedup.v1.CheckRequest;
import dev.dedup.v1.CheckResponse;
import dev.dedup.v1.DedupGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** A server without the Stream RPC (an older sidecar): the client falls back to unary calls. */
class StreamFallbackTest {
  @Test
  void unimplementedStreamFallsBackToUnaryCalls() throws Exception {
    AtomicInteger unary = new AtomicInteger();
    Server server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(
                new DedupGrpc.DedupImplBase() { // Stream is left unimplemented
                  @Override
                  public void check(CheckRequest request, StreamObserver<CheckResponse> out) {
                    unary.incrementAndGet();
                    out.onNext(CheckResponse.newBuilder().setOutcome(CheckOutcome.CHECK_OUTCOME_NEW).build());
                    out.onCompleted();
                  }
                })
            .build()
            .start();
    try (DedupClient client = DedupClient.builder("127.0.0.1:" + server.getPort()).build()) {
      assertEquals(CheckOutcome.CHECK_OUTCOME_NEW, client.check("contract", "a").getOutcome());
      assertTrue(client.mux().unimplemented(), "the client noticed the missing Stream");
      assertEquals(CheckOutcome.CHECK_OUTCOME_NEW, client.check("contract", "b").getOutcome());
      assertEquals(2, unary.get());
    } finally {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}

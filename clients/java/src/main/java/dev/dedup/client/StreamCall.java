package dev.dedup.client;

import com.google.protobuf.Message;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.StreamRequest;
import java.util.concurrent.CompletableFuture;

/**
 * One caller's call: its request and the future its answer (or error) completes. A resent call
 * (see {@link #alone}) is a new {@code StreamCall} sharing the caller's future.
 */
final class StreamCall {
  final StreamRequest.RequestCase kind;
  /** What this call sends when it goes out alone (a Claim resent after its batch: the rest of its wait). */
  final Message request;
  /**
   * The caller's {@code wait_ms} (Claims; 0 for other kinds). In a ClaimBatch (sent with
   * {@code answer_at_once}, ADR 0018) it is validated but not waited: an IN_PROGRESS item with a
   * wait is sent again alone with the rest of it.
   */
  final long waitMs;
  final boolean coalesce;
  final CompletableFuture<Message> result;
  /** {@link System#nanoTime()} when the message carrying this call was written (set under the send lock). */
  volatile long sentAtNanos;

  StreamCall(StreamRequest.RequestCase kind, Message request, boolean coalesce) {
    this.kind = kind;
    this.request = request;
    this.waitMs = request instanceof ClaimRequest c ? c.getWaitMs() : 0;
    this.coalesce = coalesce && kind != StreamRequest.RequestCase.RELEASE && kind != StreamRequest.RequestCase.RENEW;
    this.result = new CompletableFuture<>();
  }

  private StreamCall(StreamCall other, Message request) {
    this.kind = other.kind;
    this.request = request;
    this.waitMs = other.waitMs;
    this.coalesce = false;
    this.result = other.result;
  }

  /** The same call (same future), to be sent again on its own message, never coalesced. */
  StreamCall alone() {
    return new StreamCall(this, request);
  }

  /** The same call sent again on its own with {@code request} instead (a Claim with the rest of its wait). */
  StreamCall alone(Message request) {
    return new StreamCall(this, request);
  }
}

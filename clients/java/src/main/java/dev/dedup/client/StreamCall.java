package dev.dedup.client;

import com.google.protobuf.Message;
import dev.dedup.v1.StreamRequest;
import java.util.concurrent.CompletableFuture;

/** One caller's call: its request and the future its answer (or error) completes. */
final class StreamCall {
  final StreamRequest.RequestCase kind;
  final Message request;
  final boolean coalesce;
  final CompletableFuture<Message> result;

  StreamCall(StreamRequest.RequestCase kind, Message request, boolean coalesce) {
    this.kind = kind;
    this.request = request;
    this.coalesce = coalesce && kind != StreamRequest.RequestCase.RELEASE && kind != StreamRequest.RequestCase.RENEW;
    this.result = new CompletableFuture<>();
  }

  /** The same call (same future), sent again on its own. */
  StreamCall(StreamCall other, boolean coalesce) {
    this.kind = other.kind;
    this.request = other.request;
    this.coalesce = coalesce;
    this.result = other.result;
  }
}

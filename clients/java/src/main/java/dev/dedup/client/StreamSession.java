package dev.dedup.client;

import com.google.protobuf.Message;
import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.DedupGrpc;
import dev.dedup.v1.ItemError;
import dev.dedup.v1.StreamRequest;
import dev.dedup.v1.StreamResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One open {@code Stream} call: the messages in flight on it by correlation id, and the routing of
 * each answer (single, batch, or per-message error) to the calls it answers. When the stream
 * ends, every call in flight fails (UNAVAILABLE, or UNIMPLEMENTED when the server has no Stream)
 * and the session is dead; the mux opens a new one for the next call.
 */
final class StreamSession implements StreamObserver<StreamResponse> {
  private final StreamMux mux;
  private final Map<Long, List<StreamCall>> inFlight = new HashMap<>(); // guarded by this
  private final StreamObserver<StreamRequest> requests;
  private boolean dead; // guarded by this

  StreamSession(StreamMux mux, DedupGrpc.DedupStub stub) {
    this.mux = mux;
    // The stream outlives the call that opens it: it must not carry that caller's trace context
    // (every later message would look like part of that trace), so it is opened from the root.
    try (io.opentelemetry.context.Scope ignored = io.opentelemetry.context.Context.root().makeCurrent()) {
      this.requests = stub.stream(this);
    }
  }

  synchronized boolean dead() {
    return dead;
  }

  /** Registers {@code calls} under the message's correlation id and writes it (send lock held). */
  void send(StreamRequest message, List<StreamCall> calls) {
    synchronized (this) {
      if (dead) {
        failAll(calls, Status.UNAVAILABLE.withDescription("stream ended").asRuntimeException());
        return;
      }
      inFlight.put(message.getCorrelationId(), calls);
    }
    try {
      requests.onNext(message);
    } catch (RuntimeException e) {
      end(Status.UNAVAILABLE.withDescription("stream write failed").withCause(e));
    }
  }

  void cancel() {
    try {
      requests.onError(Status.CANCELLED.withDescription("client closed").asRuntimeException());
    } catch (RuntimeException ignored) {
      // already ended
    }
    end(Status.CANCELLED.withDescription("client closed"));
  }

  @Override
  public void onNext(StreamResponse r) {
    List<StreamCall> calls;
    synchronized (this) {
      calls = inFlight.remove(r.getCorrelationId());
    }
    if (calls != null) {
      route(r, calls);
    }
  }

  @Override
  public void onError(Throwable t) {
    end(Status.fromThrowable(t));
  }

  @Override
  public void onCompleted() {
    end(Status.UNAVAILABLE.withDescription("stream closed by the server"));
  }

  private void end(Status status) {
    List<List<StreamCall>> orphans;
    synchronized (this) {
      dead = true;
      orphans = new ArrayList<>(inFlight.values());
      inFlight.clear();
    }
    Status failWith = status.getCode() == Status.Code.CANCELLED ? Status.UNAVAILABLE.withDescription(status.getDescription()) : StreamErrors.streamEnded(status);
    for (List<StreamCall> calls : orphans) {
      failAll(calls, failWith.asRuntimeException());
    }
    mux.sessionEnded(this, status);
  }

  private void route(StreamResponse r, List<StreamCall> calls) {
    switch (r.getResponseCase()) {
      case ERROR -> {
        ItemError e = r.getError();
        if (calls.size() > 1 && rejectedBeforeRunning(e.getCode())) {
          mux.resendSingly(calls); // one bad item fails a whole batch: let each call get its own answer
        } else {
          failAll(calls, StreamErrors.toException(e));
        }
      }
      case CHECK -> deliver(calls.get(0), r.getCheck());
      case CLAIM -> deliver(calls.get(0), r.getClaim());
      case COMMIT -> deliver(calls.get(0), r.getCommit());
      case RELEASE -> deliver(calls.get(0), r.getRelease());
      case RENEW -> deliver(calls.get(0), r.getRenew());
      case CHECK_BATCH -> {
        var items = r.getCheckBatch().getResultsList();
        for (int i = 0; i < calls.size(); i++) {
          deliverItem(calls.get(i), i < items.size() ? items.get(i) : null, i < items.size() && items.get(i).hasError() ? items.get(i).getError() : null);
        }
      }
      case CLAIM_BATCH -> {
        var items = r.getClaimBatch().getResultsList();
        List<StreamCall> waiting = new ArrayList<>();
        List<ClaimResponse> inProgress = new ArrayList<>();
        for (int i = 0; i < calls.size(); i++) {
          StreamCall call = calls.get(i);
          ClaimResponse item = i < items.size() ? items.get(i) : null;
          if (item != null && !item.hasError() && item.getOutcome() == ClaimOutcome.CLAIM_OUTCOME_IN_PROGRESS && call.waitMs > 0) {
            waiting.add(call); // its batch answered at once, without the wait: the second step (ADR 0018)
            inProgress.add(item);
          } else {
            deliverItem(call, item, item != null && item.hasError() ? item.getError() : null);
          }
        }
        mux.resumeWaits(waiting, inProgress);
      }
      case COMMIT_BATCH -> {
        var items = r.getCommitBatch().getResultsList();
        for (int i = 0; i < calls.size(); i++) {
          deliverItem(calls.get(i), i < items.size() ? items.get(i) : null, i < items.size() && items.get(i).hasError() ? items.get(i).getError() : null);
        }
      }
      default -> failAll(calls, Status.INTERNAL.withDescription("empty stream response").asRuntimeException());
    }
  }

  /**
   * Codes with which the sidecar rejects a whole batch before running any item (bad input, an
   * unknown or forbidden namespace): safe to send each call again on its own, Checks included.
   */
  private static boolean rejectedBeforeRunning(int code) {
    return code == Status.Code.INVALID_ARGUMENT.value()
        || code == Status.Code.NOT_FOUND.value()
        || code == Status.Code.PERMISSION_DENIED.value()
        || code == Status.Code.UNAUTHENTICATED.value();
  }

  private void deliverItem(StreamCall call, Message item, ItemError error) {
    if (item == null) {
      call.result.completeExceptionally(Status.INTERNAL.withDescription("batch answer is missing an item").asRuntimeException());
    } else if (error != null) {
      call.result.completeExceptionally(StreamErrors.toException(error));
    } else {
      deliver(call, item);
    }
  }

  private void deliver(StreamCall call, Message answer) {
    if (!call.result.complete(answer)) {
      mux.abandoned(call, answer);
    }
  }

  private static void failAll(List<StreamCall> calls, StatusRuntimeException e) {
    calls.forEach(c -> c.result.completeExceptionally(e));
  }
}

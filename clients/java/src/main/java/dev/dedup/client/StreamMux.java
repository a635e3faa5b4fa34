package dev.dedup.client;

import com.google.protobuf.Message;
import dev.dedup.v1.CheckBatchRequest;
import dev.dedup.v1.CheckRequest;
import dev.dedup.v1.ClaimBatchRequest;
import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.CommitBatchRequest;
import dev.dedup.v1.CommitRequest;
import dev.dedup.v1.DedupGrpc;
import dev.dedup.v1.ReleaseRequest;
import dev.dedup.v1.RenewRequest;
import dev.dedup.v1.StreamRequest;
import io.grpc.Deadline;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Carries single calls over one long-lived {@code Stream} (docs/adr/0013): each message has its
 * own correlation id; calls of one kind (Claims: of one kind and namespace) that are pending
 * together are sent as one batch message (up to {@value #MAX_BATCH}); each call waits for its own
 * answer until its own deadline.
 *
 * <p>Waiting Claims are coalesced in two steps (docs/adr/0018): a ClaimBatch goes with
 * {@code answer_at_once} set and every item's {@code wait_ms} as its caller asked (the sidecar
 * validates each {@code wait_ms} but lets no item wait); an item answered IN_PROGRESS whose call
 * asked to wait is sent again on its own with the rest of its wait ({@link #resumeWaits}). A waiting Claim alone when the queue is
 * framed goes out with its {@code wait_ms}, in one round trip.
 *
 * <p>Sending is done by whichever caller holds the send lock: while it writes, other callers
 * queue, and its next pass sends what queued as batches, so coalescing needs no timer or thread.
 */
final class StreamMux implements AutoCloseable {
  static final int MAX_BATCH = 100;
  /**
   * Most waiting Claims (wait_ms > 0) in flight on the stream at once. The sidecar reads a stream
   * only while fewer than its window (128 by default) of messages are unanswered; waiting Claims
   * beyond this share go as unary calls, so they never hold up the Commits that would wake them.
   */
  static final int MAX_STREAM_WAITERS = 32;

  private final DedupGrpc.DedupStub stub;
  private final AtomicLong correlationIds = new AtomicLong();
  private final AtomicLong messagesSent = new AtomicLong();
  private final AtomicLong abandonedReleases = new AtomicLong();
  private final java.util.concurrent.Semaphore waiters = new java.util.concurrent.Semaphore(MAX_STREAM_WAITERS);
  private volatile java.util.function.Consumer<StreamRequest> sendObserver; // tests: what goes on the wire
  private final ConcurrentLinkedQueue<StreamCall> queue = new ConcurrentLinkedQueue<>();
  private final ReentrantLock sendLock = new ReentrantLock();
  private StreamSession session; // guarded by sendLock
  private volatile boolean unimplemented;
  private volatile boolean closed;

  StreamMux(DedupGrpc.DedupStub stub) {
    this.stub = stub;
  }

  /** A place for one waiting Claim on the stream; false: send it as a unary call. Give it back with {@link #releaseWaiter()}. */
  boolean tryAcquireWaiter() {
    return waiters.tryAcquire();
  }

  void releaseWaiter() {
    waiters.release();
  }

  /** True once the server answered the Stream with UNIMPLEMENTED: use unary calls from then on. */
  boolean unimplemented() {
    return unimplemented;
  }

  void markUnimplemented() {
    unimplemented = true;
  }

  /**
   * Sends {@code request} (a Check/Claim/Commit/Release/RenewRequest) and waits for its answer until
   * {@code until}. Fails with the status a unary call would (DEADLINE_EXCEEDED when the deadline
   * passes first, CANCELLED when the thread is interrupted, UNAVAILABLE when the stream breaks).
   */
  Message call(StreamRequest.RequestCase kind, Message request, Deadline until) {
    StreamCall call = new StreamCall(kind, request, true);
    if (closed) {
      throw Status.UNAVAILABLE.withDescription("client closed").asRuntimeException();
    }
    queue.add(call);
    flush();
    try {
      return call.result.get(Math.max(0, until.timeRemaining(TimeUnit.NANOSECONDS)), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      call.result.completeExceptionally(Status.DEADLINE_EXCEEDED.withDescription("deadline exceeded waiting on the stream").asRuntimeException());
      return await(call);
    } catch (InterruptedException e) {
      call.result.completeExceptionally(Status.CANCELLED.withDescription("interrupted").asRuntimeException());
      Thread.currentThread().interrupt();
      return await(call);
    } catch (ExecutionException e) {
      throw asStatus(e.getCause());
    }
  }

  /** The call's settled result: the answer if it won the race against the deadline, else the error. */
  private static Message await(StreamCall call) {
    try {
      return call.result.getNow(null);
    } catch (java.util.concurrent.CompletionException e) {
      throw asStatus(e.getCause());
    }
  }

  private static StatusRuntimeException asStatus(Throwable t) {
    return t instanceof StatusRuntimeException s ? s : Status.INTERNAL.withCause(t).withDescription(String.valueOf(t)).asRuntimeException();
  }

  /** An answer that came for a call whose caller gave up: an ACQUIRED lease is released. */
  void abandoned(StreamCall call, Message answer) {
    if (answer instanceof ClaimResponse r && r.getOutcome() == ClaimOutcome.CLAIM_OUTCOME_ACQUIRED && !closed) {
      ClaimRequest claim = (ClaimRequest) call.request;
      ReleaseRequest release =
          ReleaseRequest.newBuilder()
              .setNamespace(claim.getNamespace())
              .setId(claim.getId())
              .setFencingToken(r.getFencingToken())
              .build();
      queue.add(new StreamCall(StreamRequest.RequestCase.RELEASE, release, false));
      abandonedReleases.incrementAndGet();
      flush();
    }
  }

  /** Sends these calls again one message each (a batch failed whole, e.g. INVALID_ARGUMENT for one item). */
  void resendSingly(List<StreamCall> calls) {
    List<StreamCall> again = new ArrayList<>(calls.size());
    calls.forEach(c -> again.add(c.alone()));
    resend(again);
  }

  /**
   * The second step of a coalesced waiting Claim (docs/adr/0018): each of these calls asked to wait
   * and its batch item (sent with {@code answer_at_once}: nothing waited) was answered IN_PROGRESS. A call whose caller
   * gave up meanwhile is dropped; one with some of its wait left is sent again on its own with
   * {@code wait_ms} = its wait less the milliseconds (rounded up) since its batch was written; one
   * with nothing left gets the IN_PROGRESS answer.
   */
  void resumeWaits(List<StreamCall> calls, List<ClaimResponse> inProgress) {
    long now = System.nanoTime();
    List<StreamCall> again = new ArrayList<>(calls.size());
    for (int i = 0; i < calls.size(); i++) {
      StreamCall c = calls.get(i);
      if (c.result.isDone()) {
        continue; // abandoned (deadline, interrupt): not resent
      }
      long left = c.waitMs - (now - c.sentAtNanos + 999_999) / 1_000_000;
      if (left <= 0) {
        c.result.complete(inProgress.get(i));
      } else {
        again.add(c.alone(((ClaimRequest) c.request).toBuilder().setWaitMs(left).build()));
      }
    }
    resend(again);
  }

  /** Queues calls to go out one message each (never coalesced) and writes them. */
  private void resend(List<StreamCall> calls) {
    if (calls.isEmpty()) {
      return;
    }
    queue.addAll(calls);
    flush();
  }

  void sessionEnded(StreamSession s, Status status) {
    if (status.getCode() == Status.Code.UNIMPLEMENTED) {
      unimplemented = true;
    }
    if (sendLock.tryLock()) {
      try {
        if (session == s) {
          session = null;
        }
      } finally {
        sendLock.unlock();
      }
    }
  }

  private void flush() {
    while (!queue.isEmpty() && sendLock.tryLock()) {
      try {
        sendQueued();
      } finally {
        sendLock.unlock();
      }
    }
  }

  /** The calls that may share one batch message: one kind, and for Claims one namespace (ADR 0018). */
  private record Group(StreamRequest.RequestCase kind, String namespace) {
    static Group of(StreamCall c) {
      return new Group(c.kind, c.request instanceof ClaimRequest r ? r.getNamespace() : "");
    }
  }

  private void sendQueued() {
    Map<Group, List<StreamCall>> groups = new LinkedHashMap<>();
    List<StreamCall> singles = new ArrayList<>();
    for (StreamCall c = queue.poll(); c != null; c = queue.poll()) {
      if (c.result.isDone()) {
        continue; // its caller gave up before it was sent
      }
      if (c.coalesce) {
        groups.computeIfAbsent(Group.of(c), k -> new ArrayList<>()).add(c);
      } else {
        singles.add(c);
      }
    }
    if (session == null || session.dead()) {
      try {
        session = new StreamSession(this, stub);
      } catch (RuntimeException e) { // e.g. the channel is shut down
        StatusRuntimeException failure = Status.UNAVAILABLE.withDescription("cannot open the stream").withCause(e).asRuntimeException();
        groups.values().forEach(g -> g.forEach(c -> c.result.completeExceptionally(failure)));
        singles.forEach(c -> c.result.completeExceptionally(failure));
        return;
      }
    }
    for (List<StreamCall> group : groups.values()) {
      for (int from = 0; from < group.size(); from += MAX_BATCH) {
        List<StreamCall> chunk = group.subList(from, Math.min(group.size(), from + MAX_BATCH));
        if (chunk.size() == 1) {
          singles.add(chunk.get(0)); // alone: a waiting Claim keeps its wait_ms
        } else {
          send(batchMessage(chunk), List.copyOf(chunk));
        }
      }
    }
    for (StreamCall c : singles) {
      send(singleMessage(c), List.of(c));
    }
  }

  private void send(StreamRequest.Builder message, List<StreamCall> calls) {
    long id = correlationIds.incrementAndGet();
    messagesSent.incrementAndGet();
    StreamRequest built = message.setCorrelationId(id).build();
    long now = System.nanoTime();
    calls.forEach(c -> c.sentAtNanos = now);
    var observer = sendObserver;
    if (observer != null) {
      observer.accept(built);
    }
    session.send(built, calls);
  }

  private static StreamRequest.Builder singleMessage(StreamCall c) {
    StreamRequest.Builder b = StreamRequest.newBuilder();
    switch (c.kind) {
      case CHECK -> b.setCheck((CheckRequest) c.request);
      case CLAIM -> b.setClaim((ClaimRequest) c.request);
      case COMMIT -> b.setCommit((CommitRequest) c.request);
      case RELEASE -> b.setRelease((ReleaseRequest) c.request);
      case RENEW -> b.setRenew((RenewRequest) c.request);
      default -> throw new IllegalArgumentException("not a single call: " + c.kind);
    }
    return b;
  }

  private static StreamRequest.Builder batchMessage(List<StreamCall> calls) {
    StreamRequest.Builder b = StreamRequest.newBuilder();
    switch (calls.get(0).kind) {
      case CHECK -> {
        CheckBatchRequest.Builder batch = CheckBatchRequest.newBuilder();
        calls.forEach(c -> batch.addItems((CheckRequest) c.request));
        b.setCheckBatch(batch);
      }
      case CLAIM -> {
        // ADR 0018: every wait_ms as asked (validated), but no item waits; IN_PROGRESS items
        // whose calls asked to wait go again alone (resumeWaits).
        ClaimBatchRequest.Builder batch = ClaimBatchRequest.newBuilder().setAnswerAtOnce(true);
        calls.forEach(c -> batch.addItems((ClaimRequest) c.request));
        b.setClaimBatch(batch);
      }
      case COMMIT -> {
        CommitBatchRequest.Builder batch = CommitBatchRequest.newBuilder();
        calls.forEach(c -> batch.addItems((CommitRequest) c.request));
        b.setCommitBatch(batch);
      }
      default -> throw new IllegalArgumentException("no batch form: " + calls.get(0).kind);
    }
    return b;
  }

  /** Stream messages written so far (tests: coalescing). */
  long messagesSent() {
    return messagesSent.get();
  }

  /** Late ACQUIRED answers released because their caller had given up (tests). */
  long abandonedReleases() {
    return abandonedReleases.get();
  }

  /** Sees every message as it is written (tests: framing); null to stop. */
  void observeSends(java.util.function.Consumer<StreamRequest> observer) {
    sendObserver = observer;
  }

  /** Calls queued and not yet written (tests: coalescing). */
  int queued() {
    return queue.size();
  }

  /** The lock whose holder writes queued calls (tests hold it to let calls queue up). */
  ReentrantLock sendLock() {
    return sendLock;
  }

  /** Writes whatever is queued (tests: after releasing {@link #sendLock()}). */
  void flushQueued() {
    flush();
  }

  @Override
  public void close() {
    closed = true;
    sendLock.lock();
    try {
      if (session != null) {
        session.cancel();
        session = null;
      }
    } finally {
      sendLock.unlock();
    }
  }
}

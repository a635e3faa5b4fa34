package dev.dedup.client;

import com.google.protobuf.ByteString;
import dev.dedup.v1.CheckBatchRequest;
import dev.dedup.v1.CheckRequest;
import dev.dedup.v1.CheckResponse;
import dev.dedup.v1.ClaimBatchRequest;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.CommitBatchRequest;
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
import dev.dedup.v1.StreamRequest;
import io.grpc.ChannelCredentials;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The dedup sidecar's verbs (check, claim, commit, release, renew, inspect, forget, batches), as
 * blocking calls with a deadline on every call, retries only where safe ({@link RetryPolicy}), and
 * the caller's W3C trace context on every request. Thread-safe; share one per process.
 *
 * <p>Check, Claim, Commit, Release and Renew travel over one multiplexed {@code Stream} by default
 * ({@link Transport#STREAM}); {@code .transport(Transport.UNARY)} sends one RPC per call.
 *
 * <p>Requests and responses are the generated {@code dev.dedup.v1} messages; the overloads taking
 * strings build the common requests.
 */
public final class DedupClient implements AutoCloseable {
  private final ManagedChannel channel;
  private final DedupGrpc.DedupBlockingStub stub;
  private final StreamMux mux; // null: unary transport
  private final Duration deadline;
  private final RetryPolicy retry;

  /** How much of a call's remaining deadline a Claim's wait_ms leaves for the answer to travel. */
  static final long WAIT_MARGIN_MS = 100;

  private DedupClient(Builder b) {
    this.channel = Grpc.newChannelBuilder(b.target, b.credentials).intercept(new TracePropagation()).build();
    this.channel.getState(true); // start connecting now, not on the first call
    DedupGrpc.DedupBlockingStub blocking = DedupGrpc.newBlockingStub(channel);
    this.stub = b.waitForReady ? blocking.withWaitForReady() : blocking;
    DedupGrpc.DedupStub async = DedupGrpc.newStub(channel);
    this.mux = b.transport == Transport.STREAM ? new StreamMux(b.waitForReady ? async.withWaitForReady() : async) : null;
    this.deadline = b.deadline;
    this.retry = b.retry;
  }

  /** {@code target}: "host:port", "dns:///host:port" or "unix:/path/to/socket". */
  public static Builder builder(String target) {
    return new Builder(target);
  }

  /** Client options. */
  public static final class Builder {
    private final String target;
    private ChannelCredentials credentials = InsecureChannelCredentials.create();
    private Duration deadline = Duration.ofSeconds(5);
    private RetryPolicy retry = RetryPolicy.defaults();
    private boolean waitForReady;
    private Transport transport = Transport.STREAM;

    private Builder(String target) {
      this.target = target;
    }

    /** Default: insecure (loopback, Unix socket); use TlsChannelCredentials for TLS/mTLS. */
    public Builder credentials(ChannelCredentials credentials) {
      this.credentials = credentials;
      return this;
    }

    /** Deadline of every call, retries included (default 5 s). */
    public Builder deadline(Duration deadline) {
      this.deadline = deadline;
      return this;
    }

    public Builder retry(RetryPolicy retry) {
      this.retry = retry;
      return this;
    }

    /**
     * Wait for a connection until the deadline instead of failing fast with UNAVAILABLE (safe for
     * every call: nothing is sent before the connection is up). Default off: a consumer usually
     * wants to nack fast.
     */
    public Builder waitForReady(boolean waitForReady) {
      this.waitForReady = waitForReady;
      return this;
    }

    /**
     * {@link Transport#STREAM} (default): Check/Claim/Commit/Release/Renew over one multiplexed
     * Stream, coalesced into batches when several are pending; {@link Transport#UNARY}: one RPC each.
     */
    public Builder transport(Transport transport) {
      this.transport = transport;
      return this;
    }

    public DedupClient build() {
      return new DedupClient(this);
    }
  }

  /**
   * The same client with another default deadline. It shares this client's channel: close only one
   * of them (closing either closes the channel).
   */
  public DedupClient withDeadline(Duration newDeadline) {
    return new DedupClient(channel, stub, mux, newDeadline, retry);
  }

  private DedupClient(
      ManagedChannel channel, DedupGrpc.DedupBlockingStub stub, StreamMux mux, Duration deadline, RetryPolicy retry) {
    this.channel = channel;
    this.stub = stub;
    this.mux = mux;
    this.deadline = deadline;
    this.retry = retry;
  }

  static ByteString bytes(String s) {
    return ByteString.copyFrom(s, StandardCharsets.UTF_8);
  }

  /** The stream multiplexer, or null with the unary transport (tests). */
  StreamMux mux() {
    return mux;
  }

  /** The default deadline of this client's calls. */
  public Duration deadline() {
    return deadline;
  }

  /** Never retried: after a lost NEW, a retry would answer DUPLICATE for the caller's own mark. */
  public CheckResponse check(CheckRequest req) {
    return call(RetryPolicy.Kind.NEVER, u -> stub.withDeadline(u).check(req), streamed(StreamRequest.RequestCase.CHECK, req));
  }

  public CheckResponse check(String namespace, String id) {
    return check(CheckRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).build());
  }

  /**
   * A Claim. With {@code wait_ms}, an id another holder has in progress makes the call wait for
   * that holder's Commit (DUPLICATE), Release or lost lease (ACQUIRED), or the end of the wait
   * (IN_PROGRESS), which always ends before the call's deadline. A Claim whose wait does not fit in
   * the remaining deadline less 100 ms goes as a unary call (the sidecar ends it before the
   * deadline), and so do waiting Claims beyond {@value StreamMux#MAX_STREAM_WAITERS} on the stream at
   * once; the others ride the stream. There, Claims pending together are sent as one ClaimBatch
   * with {@code answer_at_once} (each {@code wait_ms} validated, none waited), and one answered
   * IN_PROGRESS is sent again alone with the rest of its wait
   * (docs/adr/0018); a waiting Claim pending alone goes out with its wait.
   */
  public ClaimResponse claim(ClaimRequest req) {
    return call(
        RetryPolicy.Kind.RETRY,
        u -> stub.withDeadline(u).claim(req),
        u -> {
          if (req.getWaitMs() <= 0) {
            return (ClaimResponse) mux.call(StreamRequest.RequestCase.CLAIM, req, u);
          }
          if (outlastsDeadline(req, u) || !mux.tryAcquireWaiter()) {
            return stub.withDeadline(u).claim(req);
          }
          try {
            return (ClaimResponse) mux.call(StreamRequest.RequestCase.CLAIM, req, u);
          } finally {
            mux.releaseWaiter();
          }
        });
  }

  public ClaimResponse claim(String namespace, String id) {
    return claim(ClaimRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).build());
  }

  /** A Claim that waits up to {@code waitMs} for another holder's lease to end (see {@link #claim(ClaimRequest)}). */
  public ClaimResponse claim(String namespace, String id, long waitMs) {
    return claim(ClaimRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).setWaitMs(waitMs).build());
  }

  /** A Stream message carries no deadline, so the sidecar could not end this wait in time. */
  private static boolean outlastsDeadline(ClaimRequest req, Deadline until) {
    return req.getWaitMs() > until.timeRemaining(TimeUnit.MILLISECONDS) - WAIT_MARGIN_MS;
  }

  public CommitResponse commit(CommitRequest req) {
    return call(RetryPolicy.Kind.RETRY, u -> stub.withDeadline(u).commit(req), streamed(StreamRequest.RequestCase.COMMIT, req));
  }

  public CommitResponse commit(String namespace, String id, long token) {
    return commit(CommitRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).setFencingToken(token).build());
  }

  public ReleaseResponse release(ReleaseRequest req) {
    return call(RetryPolicy.Kind.RETRY, u -> stub.withDeadline(u).release(req), streamed(StreamRequest.RequestCase.RELEASE, req));
  }

  public ReleaseResponse release(String namespace, String id, long token) {
    return release(ReleaseRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).setFencingToken(token).build());
  }

  public RenewResponse renew(RenewRequest req) {
    return call(RetryPolicy.Kind.RETRY, u -> stub.withDeadline(u).renew(req), streamed(StreamRequest.RequestCase.RENEW, req));
  }

  public RenewResponse renew(String namespace, String id, long token) {
    return renew(RenewRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).setFencingToken(token).build());
  }

  public InspectResponse inspect(InspectRequest req) {
    return call(RetryPolicy.Kind.RETRY, u -> stub.withDeadline(u).inspect(req), null);
  }

  public InspectResponse inspect(String namespace, String id) {
    return inspect(InspectRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).build());
  }

  public ForgetResponse forget(ForgetRequest req) {
    return call(RetryPolicy.Kind.NEVER, u -> stub.withDeadline(u).forget(req), null);
  }

  public List<CheckResponse> checkBatch(List<CheckRequest> items) {
    CheckBatchRequest req = CheckBatchRequest.newBuilder().addAllItems(items).build();
    return call(RetryPolicy.Kind.NEVER, u -> stub.withDeadline(u).checkBatch(req), null).getResultsList();
  }

  public List<ClaimResponse> claimBatch(List<ClaimRequest> items) {
    ClaimBatchRequest req = ClaimBatchRequest.newBuilder().addAllItems(items).build();
    return call(RetryPolicy.Kind.RETRY, u -> stub.withDeadline(u).claimBatch(req), null).getResultsList();
  }

  public List<CommitResponse> commitBatch(List<CommitRequest> items) {
    CommitBatchRequest req = CommitBatchRequest.newBuilder().addAllItems(items).build();
    return call(RetryPolicy.Kind.RETRY, u -> stub.withDeadline(u).commitBatch(req), null).getResultsList();
  }

  /** One attempt of a call, bounded by the call's one deadline. */
  @FunctionalInterface
  private interface Attempt<T> {
    T run(Deadline until);
  }

  /** An attempt over the stream; {@code T} is the response type of {@code kind}. */
  @SuppressWarnings("unchecked")
  private <T> Attempt<T> streamed(StreamRequest.RequestCase kind, com.google.protobuf.Message req) {
    return u -> (T) mux.call(kind, req, u);
  }

  /**
   * Runs {@code unary}, or {@code streamed} when the stream transport is on and the server has a
   * Stream (a call answered UNIMPLEMENTED over the stream is made again as a unary call), retrying
   * per {@link RetryPolicy} within the call's deadline.
   */
  private <T> T call(RetryPolicy.Kind kind, Attempt<T> unary, Attempt<T> streamed) {
    Deadline until = Deadline.after(deadline.toMillis(), TimeUnit.MILLISECONDS);
    for (int attempt = 1; ; attempt++) {
      try {
        if (streamed != null && mux != null && !mux.unimplemented()) {
          try {
            return streamed.run(until);
          } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() != io.grpc.Status.Code.UNIMPLEMENTED) {
              throw e;
            }
          }
        }
        return unary.run(until);
      } catch (StatusRuntimeException e) {
        long pause = retry.backoffMs(attempt);
        if (attempt >= retry.maxAttempts()
            || !RetryPolicy.retryable(kind, e.getStatus())
            || until.timeRemaining(TimeUnit.MILLISECONDS) <= pause) {
          throw new DedupException(e, attempt);
        }
        try {
          Thread.sleep(pause);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw new DedupException(e, attempt);
        }
      }
    }
  }

  @Override
  public void close() {
    if (mux != null) {
      mux.close();
    }
    channel.shutdown();
    try {
      if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
        channel.shutdownNow();
      }
    } catch (InterruptedException e) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }
}

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
import java.util.function.Function;

/**
 * The dedup sidecar's verbs (check, claim, commit, release, renew, inspect, forget, batches), as
 * blocking calls with a deadline on every call, retries only where safe ({@link RetryPolicy}), and
 * the caller's W3C trace context on every request. Thread-safe; share one per process.
 *
 * <p>Requests and responses are the generated {@code dev.dedup.v1} messages; the overloads taking
 * strings build the common requests.
 */
public final class DedupClient implements AutoCloseable {
  private final ManagedChannel channel;
  private final DedupGrpc.DedupBlockingStub stub;
  private final Duration deadline;
  private final RetryPolicy retry;

  private DedupClient(Builder b) {
    this.channel = Grpc.newChannelBuilder(b.target, b.credentials).intercept(new TracePropagation()).build();
    this.channel.getState(true); // start connecting now, not on the first call
    DedupGrpc.DedupBlockingStub blocking = DedupGrpc.newBlockingStub(channel);
    this.stub = b.waitForReady ? blocking.withWaitForReady() : blocking;
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

    public DedupClient build() {
      return new DedupClient(this);
    }
  }

  /**
   * The same client with another default deadline. It shares this client's channel: close only one
   * of them (closing either closes the channel).
   */
  public DedupClient withDeadline(Duration newDeadline) {
    return new DedupClient(channel, stub, newDeadline, retry);
  }

  private DedupClient(ManagedChannel channel, DedupGrpc.DedupBlockingStub stub, Duration deadline, RetryPolicy retry) {
    this.channel = channel;
    this.stub = stub;
    this.deadline = deadline;
    this.retry = retry;
  }

  static ByteString bytes(String s) {
    return ByteString.copyFrom(s, StandardCharsets.UTF_8);
  }

  /** Never retried: after a lost NEW, a retry would answer DUPLICATE for the caller's own mark. */
  public CheckResponse check(CheckRequest req) {
    return call(RetryPolicy.Kind.NEVER, s -> s.check(req));
  }

  public CheckResponse check(String namespace, String id) {
    return check(CheckRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).build());
  }

  public ClaimResponse claim(ClaimRequest req) {
    return call(RetryPolicy.Kind.RETRY, s -> s.claim(req));
  }

  public ClaimResponse claim(String namespace, String id) {
    return claim(ClaimRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).build());
  }

  public CommitResponse commit(CommitRequest req) {
    return call(RetryPolicy.Kind.RETRY, s -> s.commit(req));
  }

  public CommitResponse commit(String namespace, String id, long token) {
    return commit(CommitRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).setFencingToken(token).build());
  }

  public ReleaseResponse release(ReleaseRequest req) {
    return call(RetryPolicy.Kind.RETRY, s -> s.release(req));
  }

  public ReleaseResponse release(String namespace, String id, long token) {
    return release(ReleaseRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).setFencingToken(token).build());
  }

  public RenewResponse renew(RenewRequest req) {
    return call(RetryPolicy.Kind.RETRY, s -> s.renew(req));
  }

  public RenewResponse renew(String namespace, String id, long token) {
    return renew(RenewRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).setFencingToken(token).build());
  }

  public InspectResponse inspect(InspectRequest req) {
    return call(RetryPolicy.Kind.RETRY, s -> s.inspect(req));
  }

  public InspectResponse inspect(String namespace, String id) {
    return inspect(InspectRequest.newBuilder().setNamespace(namespace).setId(bytes(id)).build());
  }

  public ForgetResponse forget(ForgetRequest req) {
    return call(RetryPolicy.Kind.NEVER, s -> s.forget(req));
  }

  public List<CheckResponse> checkBatch(List<CheckRequest> items) {
    CheckBatchRequest req = CheckBatchRequest.newBuilder().addAllItems(items).build();
    return call(RetryPolicy.Kind.NEVER, s -> s.checkBatch(req)).getResultsList();
  }

  public List<ClaimResponse> claimBatch(List<ClaimRequest> items) {
    ClaimBatchRequest req = ClaimBatchRequest.newBuilder().addAllItems(items).build();
    return call(RetryPolicy.Kind.RETRY, s -> s.claimBatch(req)).getResultsList();
  }

  public List<CommitResponse> commitBatch(List<CommitRequest> items) {
    CommitBatchRequest req = CommitBatchRequest.newBuilder().addAllItems(items).build();
    return call(RetryPolicy.Kind.RETRY, s -> s.commitBatch(req)).getResultsList();
  }

  private <T> T call(RetryPolicy.Kind kind, Function<DedupGrpc.DedupBlockingStub, T> rpc) {
    Deadline until = Deadline.after(deadline.toMillis(), TimeUnit.MILLISECONDS);
    for (int attempt = 1; ; attempt++) {
      try {
        return rpc.apply(stub.withDeadline(until));
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

// DedupClient: the same verbs as every other client (check, claim, commit,
// release, renew, inspect, forget, batches), async, with a deadline on every
// call, retries only where safe, and W3C trace context on every request.
import { type ChannelCredentials, type ClientOptions, credentials as grpcCredentials } from "@grpc/grpc-js";
import { type ServiceError, status as Status } from "@grpc/grpc-js";
import * as pb from "./gen/dedup/v1/dedup";
import * as c from "./convert";
import { backoffMs, type RetryClass, type RetryOptions, retryable } from "./retry";
import { DedupError } from "./status";
import { type StreamKind, type StreamOps, StreamTransport, StreamUnsupported } from "./stream";
import { traceMetadata } from "./trace";
import type * as t from "./types";

export interface DedupClientOptions {
  /** "host:port", "dns:///host:port", or "unix:/path/to/socket" (unix:///abs/path also works). */
  target: string;
  /** Default deadline of every call in ms (default 5000). */
  deadlineMs?: number;
  /** Channel credentials (default: insecure, for loopback and Unix sockets). */
  credentials?: ChannelCredentials;
  retry?: RetryOptions;
  /**
   * Wait for a connection until the deadline instead of failing fast with
   * UNAVAILABLE (safe for every call: nothing is sent before the connection
   * is up). Default false: a consumer usually wants to nack fast.
   */
  waitForReady?: boolean;
  /**
   * "stream" (default): Check, Claim, Commit, Release and Renew go over one
   * long-lived multiplexed Stream, concurrent calls coalesced into batch
   * messages; unary calls when the sidecar does not serve the Stream.
   * "unary": one unary call per operation.
   */
  transport?: "stream" | "unary";
  /** Close the stream after this many ms without a call in flight (default 1000); the next call opens a new one. */
  streamIdleMs?: number;
  channelOptions?: Partial<ClientOptions>;
}

/** A Claim's wait ends this long before the call's deadline (ADR 0013). */
const WAIT_MARGIN_MS = 100;

// A restarted local sidecar is usable again within a second (grpc-js defaults
// back off up to 120 s).
const CHANNEL_DEFAULTS: Partial<ClientOptions> = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
};

type Unary<Req, Res> = (
  req: Req,
  md: ReturnType<typeof traceMetadata>,
  opts: { deadline: Date },
  cb: (err: ServiceError | null, res: Res) => void,
) => { cancel(): void };

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

export class DedupClient {
  private readonly stub: pb.DedupClient;
  /** The default deadline of every call, in ms. */
  readonly deadlineMs: number;
  private readonly retry: RetryOptions;
  private readonly waitForReady: boolean;
  private readonly stream: StreamTransport | undefined;

  constructor(options: DedupClientOptions) {
    this.stub = new pb.DedupClient(
      options.target,
      options.credentials ?? grpcCredentials.createInsecure(),
      { ...CHANNEL_DEFAULTS, ...options.channelOptions },
    );
    this.waitForReady = options.waitForReady ?? false;
    this.deadlineMs = options.deadlineMs ?? 5000;
    this.retry = options.retry ?? {};
    const transport = options.transport ?? "stream";
    if (transport !== "stream" && transport !== "unary") throw new TypeError(`transport must be "stream" or "unary", not ${String(transport)}`);
    this.stream = transport === "stream" ? new StreamTransport(this.stub, this.waitForReady, options.streamIdleMs ?? 1000) : undefined;
  }

  /** Ends the stream and the channel. Call it when done: an open stream keeps the process alive. */
  close(): void {
    this.stream?.close();
    this.stub.close();
  }

  /** One-shot "seen this id?": NEW marks it for the window. Never retried (a retry could answer DUPLICATE for our own mark). */
  async check(item: t.CheckItem, opts?: t.CallOptions): Promise<t.CheckResult> {
    const res = await this.call("check", this.stub.check, c.checkRequest(item), "never", opts);
    return c.checkResult(res);
  }

  /**
   * Take a lease: ACQUIRED carries the fencing token to commit/release/renew with.
   * With `waitMs`, an id another consumer holds waits for its Commit (DUPLICATE),
   * Release or lost lease (ACQUIRED); the wait ends shortly before the deadline (100–500 ms).
   */
  async claim(item: t.ClaimItem, opts?: t.CallOptions): Promise<t.ClaimResult> {
    const res = await this.call("claim", this.stub.claim, c.claimRequest(item), "retry", opts);
    return c.claimResult(res);
  }

  /** Processing succeeded: DONE for the window, optionally storing a result for later duplicates. */
  async commit(item: t.CommitItem, opts?: t.CallOptions): Promise<t.CommitResult> {
    const res = await this.call("commit", this.stub.commit, c.commitRequest(item), "retry", opts);
    return c.commitResult(res);
  }

  /** Processing failed: drop the lease so a redelivery can proceed at once. */
  async release(item: t.TokenItem, opts?: t.CallOptions): Promise<t.ReleaseResult> {
    const req: pb.ReleaseRequest = { namespace: item.namespace, id: c.bytes(item.id), fencingToken: item.token };
    return c.releaseResult(await this.call("release", this.stub.release, req, "retry", opts));
  }

  /** Extend a live lease (heartbeat). */
  async renew(item: t.RenewItem, opts?: t.CallOptions): Promise<t.RenewResult> {
    const req: pb.RenewRequest = {
      namespace: item.namespace,
      id: c.bytes(item.id),
      fencingToken: item.token,
      leaseMs: BigInt(Math.trunc(item.leaseMs ?? 0)),
    };
    return c.renewResult(await this.call("renew", this.stub.renew, req, "retry", opts));
  }

  /** Read the record without changing it. */
  async inspect(item: t.IdItem, opts?: t.CallOptions): Promise<t.InspectResult> {
    const req: pb.InspectRequest = { namespace: item.namespace, id: c.bytes(item.id) };
    return c.inspectResult(await this.unary(this.stub.inspect, req, "retry", opts));
  }

  /** Admin: delete the record so the id is new again. Never retried. */
  async forget(item: t.IdItem, opts?: t.CallOptions): Promise<t.ForgetOutcome> {
    const req: pb.ForgetRequest = { namespace: item.namespace, id: c.bytes(item.id) };
    return c.forgetOutcome(await this.unary(this.stub.forget, req, "never", opts));
  }

  async checkBatch(items: t.CheckItem[], opts?: t.CallOptions): Promise<t.CheckResult[]> {
    const req: pb.CheckBatchRequest = { items: items.map(c.checkRequest) };
    return (await this.unary(this.stub.checkBatch, req, "never", opts)).results.map(c.checkResult);
  }

  async claimBatch(items: t.ClaimItem[], opts?: t.CallOptions): Promise<t.ClaimResult[]> {
    // An explicit batch waits as asked: answer_at_once is only for coalesced Claims (ADR 0018).
    const req: pb.ClaimBatchRequest = { items: items.map(c.claimRequest), answerAtOnce: false };
    return (await this.unary(this.stub.claimBatch, req, "retry", opts)).results.map(c.claimResult);
  }

  async commitBatch(items: t.CommitItem[], opts?: t.CallOptions): Promise<t.CommitResult[]> {
    const req: pb.CommitBatchRequest = { items: items.map(c.commitRequest) };
    return (await this.unary(this.stub.commitBatch, req, "retry", opts)).results.map(c.commitResult);
  }

  /** Check/Claim/Commit/Release/Renew: over the stream when it is on and served, else unary. */
  private call<K extends StreamKind>(
    kind: K,
    method: Unary<StreamOps[K][0], StreamOps[K][1]>,
    req: StreamOps[K][0],
    retry: RetryClass,
    opts: t.CallOptions | undefined,
  ): Promise<StreamOps[K][1]> {
    const stream = this.stream;
    const attempt = (deadline: number, signal?: AbortSignal): Promise<StreamOps[K][1]> => {
      if (stream === undefined || !stream.supports(kind) || waitsPastDeadline(req, deadline)) {
        return this.once(method, req, deadline, signal);
      }
      return stream.send(kind, req, deadline, signal).catch((err: unknown) => {
        // Nothing was done: the same attempt as a unary call.
        if (err instanceof StreamUnsupported) return this.once(method, req, deadline, signal);
        throw err;
      });
    };
    return this.withRetries(attempt, retry, opts);
  }

  private unary<Req, Res>(method: Unary<Req, Res>, req: Req, kind: RetryClass, opts: t.CallOptions | undefined): Promise<Res> {
    return this.withRetries((deadline, signal) => this.once(method, req, deadline, signal), kind, opts);
  }

  private async withRetries<Res>(
    attempt: (deadline: number, signal?: AbortSignal) => Promise<Res>,
    kind: RetryClass,
    opts: t.CallOptions | undefined,
  ): Promise<Res> {
    const deadline = Date.now() + (opts?.deadlineMs ?? this.deadlineMs);
    const signal = opts?.signal;
    const maxAttempts = Math.max(1, this.retry.maxAttempts ?? 4);
    for (let n = 1; ; n++) {
      try {
        return await attempt(deadline, signal);
      } catch (raw) {
        const err = DedupError.from(raw, n);
        const pause = backoffMs(n, this.retry);
        if (n >= maxAttempts || !retryable(kind, err) || Date.now() + pause >= deadline || signal?.aborted) throw err;
        await sleep(pause, signal);
        if (signal?.aborted) throw DedupError.from(raw, n);
      }
    }
  }

  private once<Req, Res>(method: Unary<Req, Res>, req: Req, deadline: number, signal?: AbortSignal): Promise<Res> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new DedupError(Status.CANCELLED, "call cancelled"));
      const onAbort = () => call.cancel();
      const md = traceMetadata();
      md.setOptions({ waitForReady: this.waitForReady });
      const call = method.call(
        this.stub,
        req,
        md,
        { deadline: new Date(deadline) },
        (err, res) => {
          signal?.removeEventListener("abort", onAbort);
          if (err) reject(err);
          else resolve(res);
        },
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/**
 * A Claim whose wait_ms reaches past the deadline (minus the margin) goes as a
 * unary call: the server ends the wait before the call's deadline and still
 * checks wait_ms against the policy (a Stream message carries no deadline).
 */
function waitsPastDeadline(req: unknown, deadline: number): boolean {
  const wait = (req as Partial<pb.ClaimRequest>).waitMs;
  return wait !== undefined && wait > 0n && Number(wait) > deadline - Date.now() - WAIT_MARGIN_MS;
}

// DedupClient: the same verbs as every other client (check, claim, commit,
// release, renew, inspect, forget, batches), async, with a deadline on every
// call, retries only where safe, and W3C trace context on every request.
import { type ChannelCredentials, type ClientOptions, credentials as grpcCredentials } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import * as pb from "./gen/dedup/v1/dedup";
import * as c from "./convert";
import { backoffMs, type RetryClass, type RetryOptions, retryable } from "./retry";
import { DedupError } from "./status";
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
  channelOptions?: Partial<ClientOptions>;
}

// A restarted local sidecar is usable again within a second (grpc-js defaults
// back off up to 120 s).
const CHANNEL_DEFAULTS: Partial<ClientOptions> = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
};

type Unary<Req, Res> = (
  req: Req,
  md: ReturnType<typeof traceMetadata>,
  opts: { deadline: Date; waitForReady: boolean },
  cb: (err: ServiceError | null, res: Res) => void,
) => unknown;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class DedupClient {
  private readonly stub: pb.DedupClient;
  private readonly deadlineMs: number;
  private readonly retry: RetryOptions;
  private readonly waitForReady: boolean;

  constructor(options: DedupClientOptions) {
    this.stub = new pb.DedupClient(
      options.target,
      options.credentials ?? grpcCredentials.createInsecure(),
      { ...CHANNEL_DEFAULTS, ...options.channelOptions },
    );
    this.waitForReady = options.waitForReady ?? false;
    this.deadlineMs = options.deadlineMs ?? 5000;
    this.retry = options.retry ?? {};
  }

  close(): void {
    this.stub.close();
  }

  /** One-shot "seen this id?": NEW marks it for the window. Never retried (a retry could answer DUPLICATE for our own mark). */
  async check(item: t.CheckItem, opts?: t.CallOptions): Promise<t.CheckResult> {
    const res = await this.unary(this.stub.check, c.checkRequest(item), "never", opts);
    return c.checkResult(res);
  }

  /** Take a lease: ACQUIRED carries the fencing token to commit/release/renew with. */
  async claim(item: t.ClaimItem, opts?: t.CallOptions): Promise<t.ClaimResult> {
    const res = await this.unary(this.stub.claim, c.claimRequest(item), "retry", opts);
    return c.claimResult(res);
  }

  /** Processing succeeded: DONE for the window, optionally storing a result for later duplicates. */
  async commit(item: t.CommitItem, opts?: t.CallOptions): Promise<t.CommitResult> {
    const res = await this.unary(this.stub.commit, c.commitRequest(item), "retry", opts);
    return c.commitResult(res);
  }

  /** Processing failed: drop the lease so a redelivery can proceed at once. */
  async release(item: t.TokenItem, opts?: t.CallOptions): Promise<t.ReleaseResult> {
    const req: pb.ReleaseRequest = { namespace: item.namespace, id: c.bytes(item.id), fencingToken: item.token };
    return c.releaseResult(await this.unary(this.stub.release, req, "retry", opts));
  }

  /** Extend a live lease (heartbeat). */
  async renew(item: t.RenewItem, opts?: t.CallOptions): Promise<t.RenewResult> {
    const req: pb.RenewRequest = {
      namespace: item.namespace,
      id: c.bytes(item.id),
      fencingToken: item.token,
      leaseMs: BigInt(Math.trunc(item.leaseMs ?? 0)),
    };
    return c.renewResult(await this.unary(this.stub.renew, req, "retry", opts));
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
    const req: pb.ClaimBatchRequest = { items: items.map(c.claimRequest) };
    return (await this.unary(this.stub.claimBatch, req, "retry", opts)).results.map(c.claimResult);
  }

  async commitBatch(items: t.CommitItem[], opts?: t.CallOptions): Promise<t.CommitResult[]> {
    const req: pb.CommitBatchRequest = { items: items.map(c.commitRequest) };
    return (await this.unary(this.stub.commitBatch, req, "retry", opts)).results.map(c.commitResult);
  }

  private async unary<Req, Res>(
    method: Unary<Req, Res>,
    req: Req,
    kind: RetryClass,
    opts: t.CallOptions | undefined,
  ): Promise<Res> {
    const deadline = Date.now() + (opts?.deadlineMs ?? this.deadlineMs);
    const maxAttempts = Math.max(1, this.retry.maxAttempts ?? 4);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(method, req, new Date(deadline));
      } catch (raw) {
        const err = DedupError.from(raw, attempt);
        const pause = backoffMs(attempt, this.retry);
        if (attempt >= maxAttempts || !retryable(kind, err) || Date.now() + pause >= deadline) throw err;
        await sleep(pause);
      }
    }
  }

  private once<Req, Res>(method: Unary<Req, Res>, req: Req, deadline: Date): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(this.stub, req, traceMetadata(), { deadline, waitForReady: this.waitForReady }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }
}

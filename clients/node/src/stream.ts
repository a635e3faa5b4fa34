// The stream transport (docs/adr/0013-helper-rules.md, "Transport"): one
// long-lived, lazily opened dedup.v1 Stream per client carries Check, Claim,
// Commit, Release and Renew, each message with its own correlation id. Calls
// of one kind pending at the same moment (issued within one turn of the event
// loop) go out as one CheckBatch/ClaimBatch/CommitBatch message of up to 100
// items. Waiting Claims are coalesced in two steps (docs/adr/0018): a Claim
// that shares the moment with another Claim of its namespace goes in a
// ClaimBatch with answer_at_once (its wait_ms validated, not waited), and if it
// is answered IN_PROGRESS it is sent again alone with the rest of its wait; a
// waiting Claim alone in its namespace goes with its wait_ms. Deadlines and cancellation are per call and the client's: a call
// that gives up fails at once and its late answer is dropped (a late ACQUIRED
// is released). A broken stream fails every call in flight with UNAVAILABLE
// (the client retries them under its usual rules) and the next call opens a
// new one. UNIMPLEMENTED (an older server) raises StreamUnsupported: the
// client then makes the call, and every later one, as a unary call.
import { type ClientDuplexStream, Metadata, status as Status } from "@grpc/grpc-js";
import * as pb from "./gen/dedup/v1/dedup";
import { DedupError } from "./status";

/** Request and response types of each kind a stream carries. */
export interface StreamOps {
  check: [pb.CheckRequest, pb.CheckResponse];
  claim: [pb.ClaimRequest, pb.ClaimResponse];
  commit: [pb.CommitRequest, pb.CommitResponse];
  release: [pb.ReleaseRequest, pb.ReleaseResponse];
  renew: [pb.RenewRequest, pb.RenewResponse];
}
export type StreamKind = keyof StreamOps;

/** The server does not serve this over the Stream: make the call as a unary call (nothing was done). */
export class StreamUnsupported extends Error {
  constructor(readonly kind: StreamKind | "stream") {
    super(`the sidecar does not serve ${kind} over the Stream`);
    this.name = "StreamUnsupported";
  }
}

/** Items per coalesced batch message (ADR 0013; within the server's default max_batch). */
export const MAX_COALESCED = 100;

// A whole batch refused with one of these was refused before anything was
// done (validation, authorisation): its items are sent again one by one, so
// each call gets the answer it would have had alone.
const REFUSED_BEFORE_WORK = new Set<number>([
  Status.INVALID_ARGUMENT,
  Status.NOT_FOUND,
  Status.PERMISSION_DENIED,
  Status.UNAUTHENTICATED,
]);

interface Call {
  kind: StreamKind;
  req: StreamOps[StreamKind][0];
  resolve: (res: StreamOps[StreamKind][1]) => void;
  reject: (err: Error) => void;
  settled: boolean;
  cleanup: () => void;
}

interface InFlight {
  batch: boolean;
  calls: Call[];
  /** When the message was written (performance.now()): the start of a coalesced Claim's wait. */
  sentAt: number;
}

type Duplex = ClientDuplexStream<pb.StreamRequest, pb.StreamResponse>;

export class StreamTransport {
  private call: Duplex | undefined;
  private nextId = 1n;
  private readonly inFlight = new Map<bigint, InFlight>();
  private queue: Call[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly unsupported = new Set<StreamKind | "stream">();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stub: pb.DedupClient,
    private readonly waitForReady: boolean,
    /** Close the stream after this long without a call (an open stream keeps the process alive). */
    private readonly idleMs = 1000,
  ) {}

  /** False once the server answered that it does not carry `kind` (or any Stream at all). */
  supports(kind: StreamKind): boolean {
    return !this.unsupported.has("stream") && !this.unsupported.has(kind);
  }

  /** Sends one request; settles with its response, or fails at `deadline` (ms since the epoch) or on abort. */
  send<K extends StreamKind>(kind: K, req: StreamOps[K][0], deadline: number, signal?: AbortSignal): Promise<StreamOps[K][1]> {
    return new Promise<StreamOps[K][1]>((resolve, reject) => {
      if (this.closed) return reject(new DedupError(Status.CANCELLED, "client closed"));
      if (signal?.aborted) return reject(cancelled(signal));
      const call: Call = {
        kind,
        req,
        resolve: (res) => {
          resolve(res as StreamOps[K][1]);
          this.whenIdle();
        },
        reject: (err) => {
          reject(err);
          this.whenIdle();
        },
        settled: false,
        cleanup: () => undefined,
      };
      const fail = (err: Error) => settle(call, err);
      const timer = setTimeout(() => fail(new DedupError(Status.DEADLINE_EXCEEDED, "deadline exceeded (stream)")), Math.max(0, deadline - Date.now()));
      const onAbort = () => fail(cancelled(signal as AbortSignal));
      signal?.addEventListener("abort", onAbort, { once: true });
      call.cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      this.queue.push(call);
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Ends the stream; calls in flight fail with CANCELLED. */
  close(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const call = this.call;
    this.call = undefined;
    this.failAll(new DedupError(Status.CANCELLED, "client closed"));
    call?.cancel();
  }

  /** No call waiting for an answer: close the stream after idleMs unless a call comes. */
  private whenIdle(): void {
    if (this.idleTimer !== undefined || this.call === undefined || !this.idle()) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (!this.idle()) return;
      const call = this.call;
      this.call = undefined;
      this.inFlight.clear(); // only answers nobody waits for any more
      call?.cancel();
    }, this.idleMs);
    this.idleTimer.unref();
  }

  private idle(): boolean {
    return this.queue.length === 0 && [...this.inFlight.values()].every((f) => f.calls.every((c) => c.settled));
  }

  private flush(): void {
    this.flushScheduled = false;
    const pending = this.queue.filter((c) => !c.settled);
    this.queue = [];
    if (pending.length === 0) return;
    if (this.closed) {
      for (const c of pending) settle(c, new DedupError(Status.CANCELLED, "client closed"));
      return;
    }
    const stream = this.open();
    const claimsPerNamespace = new Map<string, number>();
    for (const c of pending) {
      if (c.kind === "claim") {
        const ns = (c.req as pb.ClaimRequest).namespace;
        claimsPerNamespace.set(ns, (claimsPerNamespace.get(ns) ?? 0) + 1);
      }
    }
    const byKind = new Map<StreamKind, Call[]>();
    for (const c of pending) {
      // A waiting Claim alone in its namespace goes alone, with its wait_ms
      // (one round trip); with others it is coalesced (ADR 0018).
      const alone = waits(c) && claimsPerNamespace.get((c.req as pb.ClaimRequest).namespace) === 1;
      if (alone || c.kind === "release" || c.kind === "renew") this.write(stream, [c], false);
      else byKind.set(c.kind, [...(byKind.get(c.kind) ?? []), c]);
    }
    for (const calls of byKind.values()) {
      for (let i = 0; i < calls.length; i += MAX_COALESCED) {
        const chunk = calls.slice(i, i + MAX_COALESCED);
        this.write(stream, chunk, chunk.length > 1);
      }
    }
  }

  /**
   * Writes one message: a batch of `calls` (a ClaimBatch with answer_at_once,
   * ADR 0018) or the one call alone with `req` (default: its own).
   */
  private write(stream: Duplex, calls: Call[], batch: boolean, req?: StreamOps[StreamKind][0]): void {
    const correlationId = this.nextId++;
    this.inFlight.set(correlationId, { batch, calls, sentAt: performance.now() });
    stream.write({ correlationId, request: batch ? batchRequest(calls) : single(calls[0].kind, req ?? calls[0].req) });
  }

  /** Sends a call of a batch again, alone and never coalesced (a refused batch, a coalesced Claim still to wait). */
  private resendAlone(c: Call, req?: StreamOps[StreamKind][0]): boolean {
    if (this.call === undefined) return false;
    this.write(this.call, [c], false, req);
    return true;
  }

  private open(): Duplex {
    if (this.call !== undefined) return this.call;
    // No trace context: the stream outlives the span that happens to open it.
    const md = new Metadata();
    md.setOptions({ waitForReady: this.waitForReady });
    const call = this.stub.stream(md);
    this.call = call;
    call.on("data", (res: pb.StreamResponse) => this.receive(res));
    call.on("error", (err: Partial<DedupError> & { code?: number; details?: string }) => this.broken(call, err));
    call.on("end", () => this.broken(call, { code: Status.UNAVAILABLE, details: "stream ended by the server" }));
    return call;
  }

  private broken(call: Duplex, err: { code?: number; details?: string }): void {
    if (this.call !== call) return;
    this.call = undefined;
    if (err.code === Status.UNIMPLEMENTED) {
      this.unsupported.add("stream");
      this.failAll(new StreamUnsupported("stream"));
      return;
    }
    const why = err.details ?? "stream broken";
    this.failAll(new DedupError(Status.UNAVAILABLE, `stream broken: ${why}`));
  }

  private failAll(err: Error): void {
    const calls = [...this.inFlight.values()].flatMap((f) => f.calls);
    this.inFlight.clear();
    for (const c of calls) settle(c, err);
  }

  private receive(res: pb.StreamResponse): void {
    const entry = this.inFlight.get(res.correlationId);
    if (entry === undefined) return;
    this.inFlight.delete(res.correlationId);
    const r = res.response;
    if (r?.$case === "error") {
      const err = itemError(r.value);
      if (entry.batch && REFUSED_BEFORE_WORK.has(r.value.code) && this.call !== undefined) {
        for (const c of entry.calls.filter((x) => !x.settled)) this.resendAlone(c);
        return;
      }
      if (!entry.batch && r.value.code === Status.UNIMPLEMENTED) {
        this.unsupported.add(entry.calls[0].kind);
        settle(entry.calls[0], new StreamUnsupported(entry.calls[0].kind));
        return;
      }
      for (const c of entry.calls) settle(c, err);
      return;
    }
    if (r === undefined) {
      for (const c of entry.calls) settle(c, new DedupError(Status.INTERNAL, "empty stream response"));
      return;
    }
    type Item = { error?: pb.ItemError | undefined };
    const results: Item[] = entry.batch ? (r.value as { results: Item[] }).results : [r.value as Item];
    entry.calls.forEach((c, i) => {
      const result = results[i];
      if (result === undefined) return settle(c, new DedupError(Status.INTERNAL, "batch answered fewer items than sent"));
      if (result.error !== undefined && result.error.code !== 0) return settle(c, itemError(result.error));
      if (c.settled) return this.abandoned(c, result);
      if (entry.batch && this.waitRest(c, result, entry.sentAt)) return;
      settle(c, undefined, result as StreamOps[StreamKind][1]);
    });
  }

  /**
   * ADR 0018, second step: a waiting Claim coalesced with answer_at_once and answered
   * IN_PROGRESS is sent again alone with what is left of its wait_ms. False (the
   * answer stands) when it did not ask to wait, the answer is not IN_PROGRESS,
   * or nothing of the wait is left.
   */
  private waitRest(c: Call, result: unknown, sentAt: number): boolean {
    if (c.kind !== "claim" || !waits(c)) return false;
    if ((result as pb.ClaimResponse).outcome !== pb.ClaimOutcome.CLAIM_OUTCOME_IN_PROGRESS) return false;
    const req = c.req as pb.ClaimRequest;
    const rest = req.waitMs - BigInt(Math.floor(performance.now() - sentAt));
    if (rest <= 0n) return false;
    return this.resendAlone(c, { ...req, waitMs: rest });
  }

  /** A late answer to a call that gave up: an ACQUIRED nobody will use is released. */
  private abandoned(c: Call, result: unknown): void {
    if (c.kind !== "claim" || this.closed) return;
    const claim = result as pb.ClaimResponse;
    if (claim.outcome !== pb.ClaimOutcome.CLAIM_OUTCOME_ACQUIRED) return;
    const req = c.req as pb.ClaimRequest;
    const release: pb.ReleaseRequest = { namespace: req.namespace, id: req.id, fencingToken: claim.fencingToken };
    this.send("release", release, Date.now() + 5000).catch(() => undefined); // the lease ends anyway
  }
}

function settle(c: Call, err: Error | undefined, res?: StreamOps[StreamKind][1]): void {
  if (c.settled) return;
  c.settled = true;
  c.cleanup();
  if (err !== undefined) c.reject(err);
  else c.resolve(res as StreamOps[StreamKind][1]);
}

function cancelled(signal: AbortSignal): DedupError {
  const why = signal.reason instanceof Error ? signal.reason.message : "call cancelled";
  return new DedupError(Status.CANCELLED, why);
}

function itemError(e: pb.ItemError): DedupError {
  return new DedupError(e.code, e.message, e.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
}

/** A Claim that asked to wait for another holder (wait_ms > 0). */
function waits(c: Call): boolean {
  return c.kind === "claim" && (c.req as pb.ClaimRequest).waitMs > 0n;
}

function single(kind: StreamKind, req: StreamOps[StreamKind][0]): pb.StreamRequest["request"] {
  switch (kind) {
    case "check":
      return { $case: "check", value: req as pb.CheckRequest };
    case "claim":
      return { $case: "claim", value: req as pb.ClaimRequest };
    case "commit":
      return { $case: "commit", value: req as pb.CommitRequest };
    case "release":
      return { $case: "release", value: req as pb.ReleaseRequest };
    case "renew":
      return { $case: "renew", value: req as pb.RenewRequest };
  }
}

function batchRequest(calls: Call[]): pb.StreamRequest["request"] {
  switch (calls[0].kind) {
    case "check":
      return { $case: "checkBatch", value: { items: calls.map((c) => c.req as pb.CheckRequest) } };
    case "claim":
      // No item waits: a batch answers when its slowest item does (ADR 0018).
      // The items keep their wait_ms, which the sidecar still validates.
      return { $case: "claimBatch", value: { items: calls.map((c) => c.req as pb.ClaimRequest), answerAtOnce: true } };
    case "commit":
      return { $case: "commitBatch", value: { items: calls.map((c) => c.req as pb.CommitRequest) } };
    default:
      throw new Error(`no batch message for ${calls[0].kind}`);
  }
}

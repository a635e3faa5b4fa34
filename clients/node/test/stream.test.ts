// The stream transport against scripted in-process servers (no sidecar):
// coalescing (waiting Claims in two steps, ADR 0018), per-message errors, a batch refused as a whole, a broken stream
// (retried except Check), UNIMPLEMENTED (unary fallback), deadlines with a
// late ACQUIRED released, and a long wait_ms routed over a unary call.
import { strict as assert } from "node:assert";
import { after, test } from "node:test";
import {
  Server,
  ServerCredentials,
  status as Status,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerUnaryCall,
} from "@grpc/grpc-js";
import * as pb from "../src/gen/dedup/v1/dedup";
import { DedupClient, DedupError } from "../src";

type Bidi = ServerDuplexStream<pb.StreamRequest, pb.StreamResponse>;

const ACQUIRED = (token: bigint) => pb.ClaimResponse.fromPartial({ outcome: pb.ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, fencingToken: token });
const NEW = pb.CheckResponse.fromPartial({ outcome: pb.CheckOutcome.CHECK_OUTCOME_NEW });
const RELEASED = pb.ReleaseResponse.fromPartial({ outcome: pb.ReleaseOutcome.RELEASE_OUTCOME_RELEASED });

/** A server whose Stream runs `onMessage` per request and whose unary calls are counted (and answered where given). */
async function serve(onMessage: ((m: pb.StreamRequest, call: Bidi) => void) | "unimplemented") {
  const unary: Record<string, number> = {};
  const messages: pb.StreamRequest[] = [];
  const unaryRequests: unknown[] = [];
  const answer =
    <Req, Res>(name: string, res: Res) =>
    (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      unary[name] = (unary[name] ?? 0) + 1;
      unaryRequests.push(call.request);
      cb(null, res);
    };
  const impl: Record<string, unknown> = {
    check: answer("check", NEW),
    claim: answer("claim", ACQUIRED(3n)),
    commit: answer("commit", pb.CommitResponse.fromPartial({ outcome: pb.CommitOutcome.COMMIT_OUTCOME_COMMITTED })),
    release: answer("release", RELEASED),
    renew: answer("renew", pb.RenewResponse.fromPartial({ outcome: pb.RenewOutcome.RENEW_OUTCOME_RENEWED })),
    claimBatch: answer("claimBatch", pb.ClaimBatchResponse.fromPartial({ results: [ACQUIRED(4n)] })),
  };
  if (onMessage !== "unimplemented") {
    impl.stream = (call: Bidi) => {
      call.on("data", (m: pb.StreamRequest) => {
        messages.push(m);
        onMessage(m, call);
      });
      call.on("end", () => call.end());
    };
  }
  const server = new Server();
  server.addService(pb.DedupService, impl as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new DedupClient({ target: `127.0.0.1:${port}`, retry: { initialBackoffMs: 1 } });
  cleanups.push(() => {
    client.close();
    server.forceShutdown();
  });
  return { client, unary, messages, unaryRequests };
}

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));

const item = { namespace: "ns", id: "a" };

test("concurrent calls of one kind go out as one batch message; others alone", async () => {
  const { client, messages } = await serve((m, call) => {
    const r = m.request;
    if (r?.$case === "checkBatch") {
      call.write({ correlationId: m.correlationId, response: { $case: "checkBatch", value: { results: r.value.items.map(() => NEW) } } });
    } else if (r?.$case === "release") {
      call.write({ correlationId: m.correlationId, response: { $case: "release", value: RELEASED } });
    }
  });
  const results = await Promise.all([
    ...Array.from({ length: 5 }, (_, i) => client.check({ namespace: "ns", id: `id-${i}` })),
    client.release({ ...item, token: 1n }),
  ]);
  assert.deepEqual(
    results.map((r) => r.outcome),
    ["NEW", "NEW", "NEW", "NEW", "NEW", "RELEASED"],
  );
  assert.deepEqual(messages.map((m) => m.request?.$case).sort(), ["checkBatch", "release"]);
  const batch = messages.find((m) => m.request?.$case === "checkBatch")?.request;
  assert.equal(batch?.$case === "checkBatch" && batch.value.items.length, 5);
});

test("a per-message error is the call's DedupError, field violations included; a batch item's error is its item's", async () => {
  const { client } = await serve((m, call) => {
    const r = m.request;
    if (r?.$case === "check") {
      const error = { code: Status.INVALID_ARGUMENT, message: "bad id", fieldViolations: [{ field: "id", description: "empty" }] };
      call.write({ correlationId: m.correlationId, response: { $case: "error", value: error } });
    } else if (r?.$case === "claimBatch") {
      const failed = pb.ClaimResponse.fromPartial({ error: { code: Status.UNAVAILABLE, message: "store down" } });
      call.write({ correlationId: m.correlationId, response: { $case: "claimBatch", value: { results: [ACQUIRED(5n), failed] } } });
    }
  });
  await assert.rejects(client.check(item), (e: unknown) => e instanceof DedupError && e.codeName === "INVALID_ARGUMENT" && e.fieldViolations[0].field === "id");
  const [ok, failed] = await Promise.allSettled([client.claim({ namespace: "ns", id: "x" }, { deadlineMs: 300 }), client.claim({ namespace: "ns", id: "y" }, { deadlineMs: 300 })]);
  assert.equal(ok.status === "fulfilled" && ok.value.token, 5n);
  assert.ok(failed.status === "rejected" && failed.reason instanceof DedupError);
});

test("a batch refused as a whole (INVALID_ARGUMENT) is sent again item by item", async () => {
  const { client, messages } = await serve((m, call) => {
    const r = m.request;
    if (r?.$case === "checkBatch") {
      const error = { code: Status.INVALID_ARGUMENT, message: "items[1].namespace", fieldViolations: [{ field: "items[1].namespace", description: "bad" }] };
      call.write({ correlationId: m.correlationId, response: { $case: "error", value: error } });
    } else if (r?.$case === "check" && r.value.namespace === "ns") {
      call.write({ correlationId: m.correlationId, response: { $case: "check", value: NEW } });
    } else if (r?.$case === "check") {
      const error = { code: Status.INVALID_ARGUMENT, message: "namespace", fieldViolations: [{ field: "namespace", description: "bad" }] };
      call.write({ correlationId: m.correlationId, response: { $case: "error", value: error } });
    }
  });
  const [good, bad] = await Promise.allSettled([client.check(item), client.check({ namespace: "Not OK", id: "a" })]);
  assert.equal(good.status === "fulfilled" && good.value.outcome, "NEW");
  assert.ok(bad.status === "rejected" && bad.reason instanceof DedupError && bad.reason.fieldViolations[0].field === "namespace");
  assert.deepEqual(
    messages.map((m) => m.request?.$case),
    ["checkBatch", "check", "check"],
  );
});

test("a broken stream fails calls in flight with UNAVAILABLE: Claim is retried on a new stream, Check is not", async () => {
  let streams = 0;
  const { client } = await serve((m, call) => {
    if (m.correlationId === 1n) {
      streams++;
      call.emit("error", { code: Status.UNAVAILABLE, details: "going away" });
      return;
    }
    const r = m.request;
    if (r?.$case === "claim") call.write({ correlationId: m.correlationId, response: { $case: "claim", value: ACQUIRED(9n) } });
  });
  assert.equal((await client.claim(item)).token, 9n);
  const down = await serve((_m, call) => call.emit("error", { code: Status.UNAVAILABLE, details: "going away" }));
  await assert.rejects(down.client.claim(item), (e: unknown) => e instanceof DedupError && e.codeName === "UNAVAILABLE" && e.attempts === 4);
  const fresh = await serve((m, call) => call.emit("error", { code: Status.UNAVAILABLE, details: `going away ${m.correlationId}` }));
  await assert.rejects(fresh.client.check(item), (e: unknown) => e instanceof DedupError && e.codeName === "UNAVAILABLE" && e.attempts === 1);
  assert.equal(streams, 1);
});

test("UNIMPLEMENTED Stream: the call and every later one go unary", async () => {
  const { client, unary } = await serve("unimplemented");
  assert.equal((await client.check(item)).outcome, "NEW");
  assert.equal((await client.claim(item)).token, 3n);
  assert.deepEqual(unary, { check: 1, claim: 1 });
});

test("a call past its deadline fails DEADLINE_EXCEEDED; its late ACQUIRED is released", async () => {
  let late: (() => void) | undefined;
  let onRelease: (token: bigint) => void = () => undefined;
  const released = new Promise<bigint>((resolve) => (onRelease = resolve));
  const { client } = await serve((m, call) => {
    const r = m.request;
    if (r?.$case === "claim") late = () => call.write({ correlationId: m.correlationId, response: { $case: "claim", value: ACQUIRED(11n) } });
    if (r?.$case === "release") {
      onRelease(r.value.fencingToken);
      call.write({ correlationId: m.correlationId, response: { $case: "release", value: RELEASED } });
    }
  });
  await assert.rejects(client.claim(item, { deadlineMs: 200 }), (e: unknown) => e instanceof DedupError && e.codeName === "DEADLINE_EXCEEDED");
  assert.ok(late);
  late();
  assert.equal(await released, 11n);
});

test("a cancelled call fails CANCELLED at once", async () => {
  const { client } = await serve(() => undefined);
  const controller = new AbortController();
  const pending = client.claim(item, { signal: controller.signal, deadlineMs: 30000 });
  controller.abort();
  await assert.rejects(pending, (e: unknown) => e instanceof DedupError && e.codeName === "CANCELLED");
});

test("a Claim whose wait_ms reaches past the deadline goes unary (the server ends the wait before it); a shorter one streams", async () => {
  const { client, unary, messages } = await serve((m, call) => {
    if (m.request?.$case === "claim") call.write({ correlationId: m.correlationId, response: { $case: "claim", value: ACQUIRED(4n) } });
  });
  await client.claim({ ...item, waitMs: 20000 }, { deadlineMs: 1000 });
  assert.deepEqual(unary, { claim: 1 });
  await client.claim({ ...item, waitMs: 500 }, { deadlineMs: 1000 });
  assert.equal(messages.length, 1);
  const sent = messages[0].request;
  assert.equal(sent?.$case === "claim" && sent.value.waitMs, 500n);
});

const IN_PROGRESS = pb.ClaimResponse.fromPartial({ outcome: pb.ClaimOutcome.CLAIM_OUTCOME_IN_PROGRESS, retryAfterMs: 100n });
const DUPLICATE = pb.ClaimResponse.fromPartial({ outcome: pb.ClaimOutcome.CLAIM_OUTCOME_DUPLICATE });

test("pending waiting Claims go out as one ClaimBatch with answer_at_once, their wait_ms as asked; a waiting IN_PROGRESS is sent again alone with the rest of its wait", async () => {
  const { client, messages } = await serve((m, call) => {
    const r = m.request;
    if (r?.$case === "claimBatch") {
      // Like the sidecar: a held id's item waits for its holder's Commit (DUPLICATE) unless answer_at_once.
      const waited = (i: pb.ClaimRequest) => !r.value.answerAtOnce && i.waitMs > 0n;
      const results = r.value.items.map((i) => (i.id.toString() === "free" ? ACQUIRED(6n) : waited(i) ? DUPLICATE : IN_PROGRESS));
      call.write({ correlationId: m.correlationId, response: { $case: "claimBatch", value: { results } } });
    } else if (r?.$case === "claim") {
      call.write({ correlationId: m.correlationId, response: { $case: "claim", value: DUPLICATE } });
    }
  });
  const [held, free, noWait] = await Promise.all([
    client.claim({ namespace: "ns", id: "held", waitMs: 5000 }, { deadlineMs: 30000 }),
    client.claim({ namespace: "ns", id: "free", waitMs: 5000 }, { deadlineMs: 30000 }),
    client.claim({ namespace: "ns", id: "busy" }, { deadlineMs: 30000 }),
  ]);
  assert.equal(held.outcome, "DUPLICATE");
  assert.equal(free.outcome, "ACQUIRED");
  assert.equal(free.token, 6n);
  assert.equal(noWait.outcome, "IN_PROGRESS", "a Claim that did not ask to wait gets its IN_PROGRESS");
  assert.deepEqual(
    messages.map((m) => m.request?.$case),
    ["claimBatch", "claim"],
  );
  const batch = messages[0].request;
  assert.ok(batch?.$case === "claimBatch");
  assert.equal(batch.value.answerAtOnce, true);
  assert.deepEqual(
    batch.value.items.map((i) => [i.id.toString(), i.waitMs]),
    [
      ["held", 5000n],
      ["free", 5000n],
      ["busy", 0n],
    ],
  );
  const again = messages[1].request;
  assert.ok(again?.$case === "claim");
  assert.equal(again.value.id.toString(), "held");
  assert.ok(again.value.waitMs > 0n && again.value.waitMs <= 5000n, `rest of the wait ${again.value.waitMs}`);
});

test("a coalesced waiting Claim answered IN_PROGRESS after its whole wait has passed gets IN_PROGRESS", async () => {
  const { client, messages } = await serve((m, call) => {
    const r = m.request;
    if (r?.$case !== "claimBatch") return;
    const answer = () => call.write({ correlationId: m.correlationId, response: { $case: "claimBatch", value: { results: r.value.items.map(() => IN_PROGRESS) } } });
    setTimeout(answer, 50); // the batch's answer comes after the 1 ms wait is over
  });
  const results = await Promise.all([
    client.claim({ namespace: "ns", id: "a", waitMs: 1 }, { deadlineMs: 30000 }),
    client.claim({ namespace: "ns", id: "b", waitMs: 1 }, { deadlineMs: 30000 }),
  ]);
  assert.deepEqual(
    results.map((r) => r.outcome),
    ["IN_PROGRESS", "IN_PROGRESS"],
  );
  assert.deepEqual(
    messages.map((m) => m.request?.$case),
    ["claimBatch"],
  );
});

test("a waiting Claim alone in its namespace keeps its wait_ms; a coalesced one abandoned meanwhile is not sent again", async () => {
  let onBatch: (answer: () => void) => void = () => undefined;
  const batchSeen = new Promise<() => void>((resolve) => (onBatch = resolve));
  const { client, messages } = await serve((m, call) => {
    const r = m.request;
    if (r?.$case === "claim") call.write({ correlationId: m.correlationId, response: { $case: "claim", value: ACQUIRED(2n) } });
    if (r?.$case === "claimBatch") {
      onBatch(() => call.write({ correlationId: m.correlationId, response: { $case: "claimBatch", value: { results: r.value.items.map(() => IN_PROGRESS) } } }));
    }
    if (r?.$case === "check") call.write({ correlationId: m.correlationId, response: { $case: "check", value: NEW } });
  });
  const [alone, other] = await Promise.all([
    client.claim({ namespace: "ns", id: "a", waitMs: 700 }, { deadlineMs: 30000 }),
    client.claim({ namespace: "other", id: "b" }, { deadlineMs: 30000 }),
  ]);
  assert.deepEqual([alone.token, other.token], [2n, 2n]);
  const sent = messages.map((m) => (m.request?.$case === "claim" ? [m.request.value.id.toString(), m.request.value.waitMs] : undefined));
  assert.deepEqual(sent, [
    ["a", 700n],
    ["b", 0n],
  ]);
  const controller = new AbortController();
  const pending = Promise.allSettled([
    client.claim({ namespace: "ns", id: "x", waitMs: 5000 }, { deadlineMs: 30000, signal: controller.signal }),
    client.claim({ namespace: "ns", id: "y", waitMs: 5000 }, { deadlineMs: 30000, signal: controller.signal }),
  ]);
  const answerBatch = await batchSeen; // the two waiting Claims went out as one ClaimBatch
  controller.abort();
  const abandoned = await pending;
  assert.ok(abandoned.every((r) => r.status === "rejected" && r.reason instanceof DedupError && r.reason.codeName === "CANCELLED"));
  answerBatch();
  assert.equal((await client.check(item)).outcome, "NEW"); // answered after the batch: its answer was handled
  assert.deepEqual(
    messages.slice(2).map((m) => m.request?.$case),
    ["claimBatch", "check"],
  );
});

test("a negative wait_ms in a coalesced ClaimBatch is sent as is: the refused batch is split and only that call fails", async () => {
  const { client, messages } = await serve((m, call) => {
    const r = m.request;
    const bad = { code: Status.INVALID_ARGUMENT, message: "wait_ms", fieldViolations: [{ field: "wait_ms", description: "negative" }] };
    if (r?.$case === "claimBatch" && r.value.items.some((i) => i.waitMs < 0n)) {
      call.write({ correlationId: m.correlationId, response: { $case: "error", value: { ...bad, fieldViolations: [{ field: "items[1].wait_ms", description: "negative" }] } } });
    } else if (r?.$case === "claim") {
      const response = r.value.waitMs < 0n ? { $case: "error" as const, value: bad } : { $case: "claim" as const, value: ACQUIRED(8n) };
      call.write({ correlationId: m.correlationId, response });
    }
  });
  const [good, negative] = await Promise.allSettled([
    client.claim({ namespace: "ns", id: "a", waitMs: 5000 }, { deadlineMs: 30000 }),
    client.claim({ namespace: "ns", id: "b", waitMs: -1 }, { deadlineMs: 30000 }),
  ]);
  assert.equal(good.status === "fulfilled" && good.value.token, 8n);
  assert.ok(negative.status === "rejected" && negative.reason instanceof DedupError && negative.reason.fieldViolations[0].field === "wait_ms");
  const sent = messages.map((m) => m.request).map((r) => (r?.$case === "claimBatch" ? r.value.items.map((i) => i.waitMs) : r?.$case === "claim" ? r.value.waitMs : undefined));
  assert.deepEqual(sent, [[5000n, -1n], 5000n, -1n]);
  assert.ok(messages[0].request?.$case === "claimBatch" && messages[0].request.value.answerAtOnce);
});

test("an explicit claimBatch call is unary and leaves answer_at_once false: its items wait as asked", async () => {
  const { client, messages, unaryRequests } = await serve(() => undefined);
  const [result] = await client.claimBatch([{ namespace: "ns", id: "a", waitMs: 2000 }], { deadlineMs: 30000 });
  assert.equal(result.token, 4n);
  assert.equal(messages.length, 0);
  const req = unaryRequests[0] as pb.ClaimBatchRequest;
  assert.equal(req.answerAtOnce, false);
  assert.deepEqual(
    req.items.map((i) => i.waitMs),
    [2000n],
  );
});

test("close() fails calls not yet sent with CANCELLED and opens no stream", async () => {
  const { client, messages } = await serve(() => undefined);
  const pending = client.check(item);
  client.close();
  await assert.rejects(pending, (e: unknown) => e instanceof DedupError && e.codeName === "CANCELLED");
  assert.equal(messages.length, 0);
});

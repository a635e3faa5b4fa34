// processOnce and trace propagation against the live sidecar ($DEDUP_TARGET).
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { context, propagation, trace, TraceFlags } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { DedupClient, LeaseLostError, processOnce } from "../src";
import { traceMetadata } from "../src/trace";

const target = process.env.DEDUP_TARGET;
const client = new DedupClient({ target: target ?? "127.0.0.1:1" });
after(() => client.close());
const ns = "contract";
const freshId = () => `node-once-${randomBytes(6).toString("hex")}`;

/** Timers alive in this process (the heartbeat is one while a lease is held). */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

test("processOnce runs the handler once and reports later copies as DUPLICATE with the stored result", async () => {
  assert.ok(target, "$DEDUP_TARGET is not set");
  const id = freshId();
  let runs = 0;
  const handler = async () => {
    runs++;
    return "receipt-1";
  };
  const first = await processOnce(client, { namespace: ns, id }, handler);
  assert.equal(first.status, "PROCESSED");
  assert.equal(first.action, "ACK");
  assert.equal(first.shouldAck, true);
  assert.ok(first.fencingToken > 0n);
  assert.equal(first.storedResult?.toString(), "receipt-1");
  const again = await processOnce(client, { namespace: ns, id }, handler);
  assert.deepEqual(
    { status: again.status, action: again.action, shouldAck: again.shouldAck, result: again.storedResult?.toString() },
    { status: "DUPLICATE", action: "ACK", shouldAck: true, result: "receipt-1" },
  );
  assert.equal(runs, 1);
});

test("processOnce releases on handler error, rethrows it, and leaves no heartbeat behind", async () => {
  const id = freshId();
  const before = timers();
  await assert.rejects(
    processOnce(client, { namespace: ns, id, renewEveryMs: 20 }, async () => {
      throw new Error("boom");
    }),
    /boom/,
  );
  assert.equal((await client.inspect({ namespace: ns, id })).state, "ABSENT");
  assert.ok(timers() <= before, `timers before ${before}, after ${timers()}`);
  const retry = await processOnce(client, { namespace: ns, id }, async (lease) => `token ${lease.token}`);
  assert.equal(retry.status, "PROCESSED");
});

test("processOnce reports IN_PROGRESS (NACK) while another holder's lease is live, after waitMs", async () => {
  const id = freshId();
  const held = await client.claim({ namespace: ns, id });
  assert.equal(held.outcome, "ACQUIRED");
  const outcome = await processOnce(client, { namespace: ns, id, waitMs: 0 }, async () => "never");
  assert.equal(outcome.status, "IN_PROGRESS");
  assert.equal(outcome.action, "NACK");
  assert.equal(outcome.shouldAck, false);
  assert.ok(outcome.retryAfterMs > 0);
});

test("processOnce renews the lease while a long handler runs", async () => {
  const id = freshId();
  // A 1.5 s lease renewed every 500 ms: a renewal may be late by a whole second on a busy machine.
  const outcome = await processOnce(client, { namespace: ns, id, leaseMs: 1500 }, async (lease) => {
    // Outlive the lease twice over; the heartbeat keeps it ours.
    const until = Date.now() + 3200;
    while (Date.now() < until) {
      const r = await client.inspect({ namespace: ns, id });
      assert.equal(r.state, "IN_PROGRESS");
      assert.equal(r.token, lease.token);
      assert.equal(lease.lost, false);
      await new Promise((res) => setTimeout(res, 100));
    }
    return undefined;
  });
  assert.equal(outcome.status, "PROCESSED");
});

test("the handler sees a lost lease: lease.signal aborts with LeaseLostError, LEASE_LOST is a status", async () => {
  const id = freshId();
  let other = 0n;
  const outcome = await processOnce(client, { namespace: ns, id, renewEveryMs: 30 }, async (lease) => {
    await client.forget({ namespace: ns, id });
    other = (await client.claim({ namespace: ns, id })).token;
    // The next heartbeat finds the lease gone.
    if (!lease.signal.aborted) await new Promise<void>((resolve) => lease.signal.addEventListener("abort", () => resolve(), { once: true }));
    assert.equal(lease.lost, true);
    assert.ok(lease.signal.reason instanceof LeaseLostError);
    await assert.rejects(lease.ensure(), LeaseLostError);
    return "stale";
  });
  assert.deepEqual([outcome.status, outcome.action, outcome.shouldAck], ["LEASE_LOST", "ACK", true]);
  assert.equal((await client.commit({ namespace: ns, id, token: other })).outcome, "COMMITTED");
});

test("a handler value that is neither string nor bytes is not stored, and the effect is still committed", async () => {
  const id = freshId();
  const handler = (async () => ({ receipt: 1 })) as unknown as Parameters<typeof processOnce>[2];
  const outcome = await processOnce(client, { namespace: ns, id }, handler);
  assert.equal(outcome.status, "PROCESSED");
  assert.equal(outcome.storedResult, undefined);
  assert.equal((await client.inspect({ namespace: ns, id })).state, "DONE");
});

test("the active span's W3C trace context goes into the request metadata", () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const spanContext = {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: TraceFlags.SAMPLED,
  };
  const ctx = trace.setSpanContext(context.active(), spanContext);
  const md = context.with(ctx, () => traceMetadata());
  assert.deepEqual(md.get("traceparent"), ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]);
  propagation.disable();
  context.disable();
});

// A NATS JetStream consumer that applies each order effectively once with
// processOnce (the Node client's helper): a durable pull consumer with explicit
// acks, AckWait 6 s (longer than the 5 s lease, so a crashed holder's message
// comes back when its lease has already ended), the transactional sink recipe
// (markApplied + the effect row in one PostgreSQL transaction), and the
// helper's outcome mapped to the JetStream action:
//   ACK (PROCESSED, DUPLICATE, LEASE_LOST) -> ack
//   NACK (IN_PROGRESS after the claim's wait) -> nak(delay = retryAfterMs): back when the holder's lease ends
//   DEAD_LETTER (CONFLICT) -> term
//   an error (handler failed and released, sidecar unreachable) -> nak(delay)
//
//   npm install && npm run build
//   node dist/consumer.js --nats-url nats://127.0.0.1:4222 --target 127.0.0.1:50051 \
//       --pg-dsn postgresql://postgres@127.0.0.1:5432/orders
import { openSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { DedupClient, markApplied, processOnce, type Lease } from "@dedup-sidecar/client";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Pool } from "pg";

const LEASE_MS = 5000;
const ACK_WAIT_MS = 6000;
const BATCH = 10;
const RETRY_PAUSE_MS = 500; // nak delay after an error, so a message does not spin

const { values: opts } = parseArgs({
  options: {
    "nats-url": { type: "string", default: "nats://127.0.0.1:4222" },
    stream: { type: "string", default: "ORDERS" },
    subject: { type: "string", default: "orders.new" },
    durable: { type: "string", default: "orders-apply" },
    target: { type: "string", default: "127.0.0.1:50051" },
    "pg-dsn": { type: "string", default: "postgresql://postgres@127.0.0.1:5432/orders" },
    namespace: { type: "string", default: "orders.nats" },
    name: { type: "string", default: `node-${process.pid}` },
    events: { type: "string", default: "" },
  },
});
const name = opts.name!;
const namespace = opts.namespace!;

// One JSON line per step, appended with a single write (survives SIGKILL line by line).
const eventsFd = opts.events ? openSync(opts.events, "a") : -1;
function event(e: string, fields: Record<string, unknown> = {}): void {
  if (eventsFd < 0) return;
  const line = { t: Date.now() / 1000, c: name, pid: process.pid, e, ...fields };
  writeSync(eventsFd, JSON.stringify(line, (_, v) => (typeof v === "bigint" ? Number(v) : v)) + "\n");
}

async function main(): Promise<void> {
  const db = new Pool({ connectionString: opts["pg-dsn"], max: 4 });
  const client = new DedupClient({ target: opts.target!, deadlineMs: 5000 });
  const nc = await connect({ servers: opts["nats-url"], maxReconnectAttempts: -1 });
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(opts.stream!, {
    durable_name: opts.durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: ACK_WAIT_MS * 1_000_000, // nanoseconds
    max_deliver: -1, // never give up on a message: IN_PROGRESS naks must not count it out
    deliver_policy: DeliverPolicy.All,
    filter_subject: opts.subject,
  });
  const consumer = await jetstream(nc).consumers.get(opts.stream!, opts.durable!);

  // The handler: the effect and dedup_applied in one transaction. A throw releases the lease.
  async function apply(orderId: string, msg: JsMsg, lease: Lease): Promise<void> {
    event("claimed", { id: orderId, token: lease.token, delivered: msg.info.deliveryCount });
    msg.working(); // restarts AckWait: JetStream keeps this copy ours while we work
    const tx = await db.connect();
    try {
      await tx.query("BEGIN");
      const first = await markApplied(tx, namespace, orderId, lease.token);
      if (first) {
        await tx.query("INSERT INTO nats_effect (id, token, consumer) VALUES ($1, $2, $3)", [
          orderId,
          lease.token.toString(),
          name,
        ]);
      }
      await tx.query("COMMIT");
      event("tx", { id: orderId, token: lease.token, first });
    } catch (err) {
      await tx.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      tx.release();
    }
  }

  async function handle(msg: JsMsg): Promise<void> {
    const orderId = msg.headers?.get("Nats-Msg-Id") || msg.json<{ id: string }>().id;
    const delivered = msg.info.deliveryCount;
    let outcome;
    try {
      outcome = await processOnce(client, { namespace, id: orderId, leaseMs: LEASE_MS }, (lease) =>
        apply(orderId, msg, lease),
      );
    } catch (err) {
      // Released (handler error) or the sidecar unreachable: the redelivery decides.
      event("error", { id: orderId, kind: (err as Error).name, msg: String((err as Error).message).slice(0, 200) });
      msg.nak(RETRY_PAUSE_MS);
      return;
    }
    event("outcome", { id: orderId, status: outcome.status, token: outcome.fencingToken, delivered });
    switch (outcome.action) {
      case "ACK": // PROCESSED, DUPLICATE, LEASE_LOST
        await msg.ackAck({ timeout: 5000 });
        event("acked", { id: orderId });
        break;
      case "DEAD_LETTER": // CONFLICT: the same id with other content
        msg.term("the same id with other content");
        break;
      case "NACK": // IN_PROGRESS after the claim's wait: back when the holder's lease ends
        msg.nak(Math.max(outcome.retryAfterMs, RETRY_PAUSE_MS));
        break;
    }
  }

  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  event("start");
  console.log(`${name}: consuming ${opts.stream}/${opts.durable}`);
  while (!stopping) {
    const batch = await consumer.fetch({ max_messages: BATCH, expires: 1000 });
    const work: Promise<void>[] = [];
    for await (const msg of batch) {
      work.push(
        handle(msg).catch((err: unknown) => {
          event("error", { kind: (err as Error).name, msg: String((err as Error).message).slice(0, 200) });
        }),
      );
    }
    await Promise.all(work);
  }
  await nc.drain();
  client.close();
  await db.end();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

// Example consumer: an in-process queue that redelivers some messages (as a
// real broker does after a missed ack), processed effectively once with
// processOnce. The outcome's `action` is what a broker consumer does with the
// message (ACK / NACK / DEAD_LETTER). Prints how many messages were processed
// and how many duplicates were skipped; processed == unique.
//
//   DEDUP_TARGET=127.0.0.1:50051 npm run example
import { randomBytes } from "node:crypto";
import { DedupClient, processOnce } from "../src";

async function main(): Promise<number> {
  const target = process.env.DEDUP_TARGET ?? "127.0.0.1:50051";
  const namespace = process.env.DEDUP_NAMESPACE ?? "examples.orders";
  const client = new DedupClient({ target, deadlineMs: 5000 });
  const run = randomBytes(4).toString("hex");

  // 40 unique orders; every third one is delivered again, every fifth once more.
  const unique = Array.from({ length: 40 }, (_, i) => ({ id: `order-${run}-${i}`, amount: i * 10 }));
  const queue = unique.flatMap((m, i) => [m, ...(i % 3 === 0 ? [m] : []), ...(i % 5 === 0 ? [m] : [])]);
  queue.sort(() => Math.random() - 0.5);

  let processed = 0;
  let skipped = 0;
  // Four concurrent workers drain the queue, as a consumer group would.
  const worker = async () => {
    for (let msg = queue.shift(); msg !== undefined; msg = queue.shift()) {
      // A copy of an order another worker holds waits (up to waitMs) for its commit: DUPLICATE, not a bounce.
      const outcome = await processOnce(client, { namespace, id: msg.id }, async (lease) => {
        await lease.ensure(); // the lease is still ours right before an effect that cannot be fenced
        processed++; // the side effect; a database would take lease.token (see markApplied / advanceFence)
        return `charged ${msg.amount} (token ${lease.token})`;
      });
      if (outcome.status === "DUPLICATE") skipped++;
      switch (outcome.action) {
        case "ACK":
          break; // broker: ack
        case "NACK":
          queue.push(msg); // broker: nack with requeue (or redeliver after outcome.retryAfterMs)
          break;
        case "DEAD_LETTER":
          throw new Error(`order ${msg.id} reused with other content`); // broker: reject to the dead-letter queue
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  client.close();
  console.log(`unique=${unique.length} processed=${processed} duplicates_skipped=${skipped}`);
  return processed === unique.length ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);

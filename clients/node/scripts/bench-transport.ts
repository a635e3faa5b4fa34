// Check throughput over the stream transport vs unary calls, against a live
// sidecar: N checks of new ids from W concurrent workers, each transport twice.
//
//   DEDUP_TARGET=127.0.0.1:50051 npm run -s bench:transport
import { randomBytes } from "node:crypto";
import { DedupClient } from "../src";

const target = process.env.DEDUP_TARGET ?? "127.0.0.1:50051";
const namespace = process.env.DEDUP_NAMESPACE ?? "default";
const n = Number(process.env.BENCH_CHECKS ?? 4000);
const workers = Number(process.env.BENCH_WORKERS ?? 64);

async function once(transport: "stream" | "unary"): Promise<number> {
  const client = new DedupClient({ target, transport, deadlineMs: 30000 });
  try {
    await client.check({ namespace, id: `bench-warmup-${randomBytes(6).toString("hex")}` });
    const run = randomBytes(6).toString("hex");
    let next = 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let i = next++; i < n; i = next++) await client.check({ namespace, id: `bench-${run}-${i}` });
      }),
    );
    return n / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  for (const transport of ["unary", "stream", "unary", "stream"] as const) {
    console.log(`${transport}: ${n} checks, ${workers} concurrent: ${(await once(transport)).toFixed(0)}/s`);
  }
}

void main();

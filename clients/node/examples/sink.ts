// The transactional sink recipe on a real PostgreSQL (PGlite, in process):
// the effect and the dedup_applied row commit together, so a message whose
// effect was applied but whose Commit never reached the sidecar (a consumer
// killed in between) is not applied again when it is redelivered.
//
//   DEDUP_TARGET=127.0.0.1:50051 npm run -s example:sink
import { randomBytes } from "node:crypto";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import { APPLIED_DDL, DedupClient, markApplied, processOnce, type Queryable } from "../src";

const namespace = process.env.DEDUP_NAMESPACE ?? "examples.orders";
const pg = new PGlite();
/** node-postgres' `query` shape over a PGlite transaction. */
const adapt = (tx: Transaction): Queryable => ({
  query: async (text, values) => ({ rowCount: (await tx.query(text, values)).affectedRows ?? null }),
});

/** The effect: one ledger row per order, exactly once. */
function charge(id: string, token: bigint): Promise<boolean> {
  return pg.transaction(async (tx) => {
    if (!(await markApplied(adapt(tx), namespace, id, token))) return false; // applied before: skip
    await tx.query("INSERT INTO ledger (order_id, amount) VALUES ($1, $2)", [id, 42]);
    return true;
  });
}

async function main(): Promise<number> {
  const client = new DedupClient({ target: process.env.DEDUP_TARGET ?? "127.0.0.1:50051" });
  await pg.exec(APPLIED_DDL);
  await pg.exec("CREATE TABLE ledger (order_id text NOT NULL, amount int NOT NULL)");
  const id = `order-${randomBytes(4).toString("hex")}`;

  // A first consumer claims, applies the effect, and dies before its Commit.
  const first = await client.claim({ namespace, id, leaseMs: 1000 });
  await charge(id, first.token);
  await client.release({ namespace, id, token: first.token }); // stands in for its lease running out

  // The redelivery: the helper claims again; markApplied says "applied before"; the helper commits.
  const outcome = await processOnce(client, { namespace, id }, async (lease) => {
    const applied = await charge(id, lease.token);
    return applied ? "charged" : "charged before";
  });
  const again = await processOnce(client, { namespace, id }, async () => "never runs");
  const rows = (await pg.query<{ n: number }>("SELECT count(*)::int AS n FROM ledger")).rows[0].n;
  console.log(`redelivery=${outcome.status}:${outcome.storedResult} duplicate=${again.status} ledger_rows=${rows}`);
  client.close();
  await pg.close();
  return rows === 1 && outcome.status === "PROCESSED" && again.status === "DUPLICATE" ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);

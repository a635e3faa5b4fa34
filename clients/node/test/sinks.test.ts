// The sink recipes on a real PostgreSQL (PGlite: PostgreSQL compiled to WASM,
// in process) through a pg-style adapter.
import { strict as assert } from "node:assert";
import { after, before, test } from "node:test";
import { PGlite } from "@electric-sql/pglite";
import { APPLIED_DDL, advanceFence, FENCE_DDL, markApplied, type Queryable } from "../src";

const pg = new PGlite();
/** node-postgres' shape over PGlite: `rowCount` is PGlite's `affectedRows`. */
const db: Queryable = {
  query: async (text, values) => ({ rowCount: (await pg.query(text, values)).affectedRows ?? null }),
};

before(async () => {
  await pg.exec(APPLIED_DDL);
  await pg.exec(FENCE_DDL);
  await pg.exec(APPLIED_DDL); // IF NOT EXISTS: running the DDL twice is harmless
  await pg.exec("CREATE TABLE ledger (id text PRIMARY KEY, amount int NOT NULL)");
});
after(() => pg.close());

/** One message's effect, the transactional-sink way: the effect runs only in the first transaction to mark the id. */
async function apply(id: string, token: bigint, amount: number): Promise<boolean> {
  return pg.transaction(async (tx) => {
    const txDb: Queryable = { query: async (text, values) => ({ rowCount: (await tx.query(text, values)).affectedRows ?? null }) };
    if (!(await markApplied(txDb, "payments.charge", id, token))) return false;
    await tx.query("INSERT INTO ledger (id, amount) VALUES ($1, $2)", [id, amount]);
    return true;
  });
}

test("markApplied: the first transaction applies, a repeat (any token) skips", async () => {
  assert.equal(await apply("order-1", 7n, 10), true);
  assert.equal(await apply("order-1", 9n, 10), false);
  const rows = await pg.query<{ n: number }>("SELECT count(*)::int AS n FROM ledger WHERE id = 'order-1'");
  assert.equal(rows.rows[0].n, 1);
  const mark = await pg.query<{ token: string }>("SELECT token::text FROM dedup_applied WHERE namespace = 'payments.charge'");
  assert.deepEqual(mark.rows, [{ token: "7" }]);
});

test("markApplied: a rolled-back transaction leaves no mark, so a redelivery applies", async () => {
  await assert.rejects(
    pg.transaction(async (tx) => {
      const txDb: Queryable = { query: async (text, values) => ({ rowCount: (await tx.query(text, values)).affectedRows ?? null }) };
      assert.equal(await markApplied(txDb, "payments.charge", "order-2", 3n), true);
      throw new Error("effect failed");
    }),
    /effect failed/,
  );
  assert.equal(await apply("order-2", 4n, 20), true);
});

test("markApplied: ids are bytes, namespaces keep equal ids apart", async () => {
  assert.equal(await markApplied(db, "a", new Uint8Array([0, 255, 1]), 1n), true);
  assert.equal(await markApplied(db, "a", Buffer.from([0, 255, 1]), 2n), false);
  assert.equal(await markApplied(db, "b", new Uint8Array([0, 255, 1]), 1n), true);
  assert.equal(await markApplied(db, "a", "order-1", 1n), true);
});

test("advanceFence: equal or newer tokens pass, an older one is refused and changes nothing", async () => {
  assert.equal(await advanceFence(db, "account-9", 5n), true);
  assert.equal(await advanceFence(db, "account-9", 5n), true);
  assert.equal(await advanceFence(db, "account-9", 8n), true);
  assert.equal(await advanceFence(db, "account-9", 6n), false);
  assert.equal(await advanceFence(db, "account-9", 9007199254740993n), true); // beyond 2^53: no precision lost
  const r = await pg.query<{ token: string }>("SELECT token::text FROM dedup_fence WHERE resource = 'account-9'");
  assert.equal(r.rows[0].token, "9007199254740993");
});

// The sink recipes (docs/adr/0013-helper-rules.md, "The sink recipes"), over
// anything with node-postgres' `query(text, values)` (a pg Client or
// PoolClient inside your transaction, or a small adapter). No dependency.
import { bytes } from "./convert";
import type { Id } from "./types";

/** The shape these helpers need: node-postgres' `query(text, values)` resolving to `{ rowCount }`. */
export interface Queryable {
  query(text: string, values: unknown[]): Promise<{ rowCount: number | null }>;
}

/** PostgreSQL DDL of the transactional sink's table. */
export const APPLIED_DDL =
  "CREATE TABLE IF NOT EXISTS dedup_applied (namespace text NOT NULL, id bytea NOT NULL, token bigint NOT NULL, " +
  "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (namespace, id))";

/** PostgreSQL DDL of the fenced resource's table. */
export const FENCE_DDL = "CREATE TABLE IF NOT EXISTS dedup_fence (resource text PRIMARY KEY, token bigint NOT NULL)";

const MARK_APPLIED =
  "INSERT INTO dedup_applied (namespace, id, token) VALUES ($1, $2, $3) ON CONFLICT (namespace, id) DO NOTHING";

const ADVANCE_FENCE =
  "INSERT INTO dedup_fence (resource, token) VALUES ($1, $2) ON CONFLICT (resource) DO UPDATE " +
  "SET token = EXCLUDED.token WHERE dedup_fence.token <= EXCLUDED.token";

/**
 * Records (namespace, id) as applied, in the caller's transaction. True when
 * this transaction is the first to apply it: run the effect in the same
 * transaction. False: it was applied before; skip the effect (and still let
 * the helper commit).
 */
export async function markApplied(db: Queryable, namespace: string, id: Id, token: bigint): Promise<boolean> {
  const r = await db.query(MARK_APPLIED, [namespace, bytes(id), token.toString()]);
  return r.rowCount === 1;
}

/**
 * Compare-and-set of the resource's fence to `token`, in the caller's
 * transaction. True when `token` is at least the stored one (the write may
 * proceed in the same transaction); false when a newer holder wrote already.
 */
export async function advanceFence(db: Queryable, resource: string, token: bigint): Promise<boolean> {
  const r = await db.query(ADVANCE_FENCE, [resource, token.toString()]);
  return r.rowCount === 1;
}

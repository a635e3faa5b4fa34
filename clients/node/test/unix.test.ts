// The client over the sidecar's Unix socket ($DEDUP_UNIX_TARGET, "unix:/path").
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { DedupClient } from "../src";

const target = process.env.DEDUP_UNIX_TARGET;

test("check over a Unix socket", { skip: target ? false : "$DEDUP_UNIX_TARGET is not set" }, async () => {
  const client = new DedupClient({ target: target as string });
  try {
    const id = `node-unix-${randomBytes(6).toString("hex")}`;
    assert.equal((await client.check({ namespace: "contract", id }, { deadlineMs: 30000 })).outcome, "NEW");
    assert.equal((await client.check({ namespace: "contract", id })).outcome, "DUPLICATE");
  } finally {
    client.close();
  }
});

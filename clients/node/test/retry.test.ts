// Which failures each operation class retries (no sidecar needed).
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { status as Status } from "@grpc/grpc-js";
import { retryable } from "../src/retry";
import { DedupError } from "../src/status";

const err = (code: Status, details: string) => new DedupError(code, details);
const noConnection = err(Status.UNAVAILABLE, "No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1");
const dropped = err(Status.UNAVAILABLE, "Connection dropped");
const storeRefused = err(Status.UNAVAILABLE, "store unavailable (connection)");

test("Check/Claim retry only an UNAVAILABLE that cannot have been applied", () => {
  assert.equal(retryable("mark", noConnection), true);
  assert.equal(retryable("mark", storeRefused), true);
  assert.equal(retryable("mark", dropped), false);
  assert.equal(retryable("mark", err(Status.DEADLINE_EXCEEDED, "Deadline exceeded")), false);
  assert.equal(retryable("mark", err(Status.INVALID_ARGUMENT, "bad id")), false);
});

test("Renew/Inspect retry any UNAVAILABLE, nothing else", () => {
  assert.equal(retryable("idempotent", dropped), true);
  assert.equal(retryable("idempotent", err(Status.DEADLINE_EXCEEDED, "Deadline exceeded")), false);
});

test("Commit/Release/Forget never retry", () => {
  for (const e of [noConnection, dropped, storeRefused]) assert.equal(retryable("never", e), false);
});

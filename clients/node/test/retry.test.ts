// Which failures are retried (no sidecar needed): the table of docs/adr/0010-client-retries.md.
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { status as Status } from "@grpc/grpc-js";
import { retryable } from "../src/retry";
import { DedupError } from "../src/status";

const err = (code: Status, details: string) => new DedupError(code, details);
const unavailable = err(Status.UNAVAILABLE, "No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1");

test("retryable calls retry UNAVAILABLE only", () => {
  assert.equal(retryable("retry", unavailable), true);
  assert.equal(retryable("retry", err(Status.DEADLINE_EXCEEDED, "Deadline exceeded")), false);
  assert.equal(retryable("retry", err(Status.INVALID_ARGUMENT, "bad id")), false);
  assert.equal(retryable("retry", err(Status.CANCELLED, "cancelled")), false);
});

test("Check, CheckBatch and Forget never retry", () => {
  assert.equal(retryable("never", unavailable), false);
});

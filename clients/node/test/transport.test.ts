// Retries against a scripted in-process server (no sidecar): which calls are
// sent again after UNAVAILABLE, which exactly once, and that every request
// carries the deadline.
import { strict as assert } from "node:assert";
import { after, before, test } from "node:test";
import { Server, ServerCredentials, status as Status, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { DedupService } from "../src/gen/dedup/v1/dedup";
import * as pb from "../src/gen/dedup/v1/dedup";
import { DedupClient, DedupError } from "../src";

const calls: Record<string, number> = {};
const deadlines: string[] = [];
let failFirst = 0;

// Each method fails its first `failFirst` calls with UNAVAILABLE, then answers `ok`.
function scripted<Req, Res>(name: string, ok: Res) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    calls[name] = (calls[name] ?? 0) + 1;
    deadlines.push(String(call.getDeadline()));
    if (calls[name] <= failFirst) cb({ code: Status.UNAVAILABLE, details: "store unavailable" });
    else cb(null, ok);
  };
}

const server = new Server();
server.addService(DedupService, {
  check: scripted("check", pb.CheckResponse.fromPartial({ outcome: pb.CheckOutcome.CHECK_OUTCOME_NEW })),
  claim: scripted("claim", pb.ClaimResponse.fromPartial({ outcome: pb.ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, fencingToken: 7n })),
  commit: scripted("commit", pb.CommitResponse.fromPartial({ outcome: pb.CommitOutcome.COMMIT_OUTCOME_COMMITTED })),
  release: scripted("release", pb.ReleaseResponse.fromPartial({ outcome: pb.ReleaseOutcome.RELEASE_OUTCOME_RELEASED })),
  renew: scripted("renew", pb.RenewResponse.fromPartial({ outcome: pb.RenewOutcome.RENEW_OUTCOME_RENEWED })),
  inspect: scripted("inspect", pb.InspectResponse.fromPartial({ state: pb.RecordState.RECORD_STATE_ABSENT })),
  forget: scripted("forget", pb.ForgetResponse.fromPartial({ outcome: pb.ForgetOutcome.FORGET_OUTCOME_ABSENT })),
  checkBatch: scripted("checkBatch", pb.CheckBatchResponse.fromPartial({})),
  claimBatch: scripted("claimBatch", pb.ClaimBatchResponse.fromPartial({})),
  commitBatch: scripted("commitBatch", pb.CommitBatchResponse.fromPartial({})),
  stream: () => undefined,
});
let client: DedupClient;

before(async () => {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  client = new DedupClient({ target: `127.0.0.1:${port}`, transport: "unary", retry: { initialBackoffMs: 1 } });
});
after(() => {
  client.close();
  server.forceShutdown();
});

const item = { namespace: "ns", id: "a" };

test("Claim, Commit, Release, Renew, Inspect and the Claim/Commit batches are retried after UNAVAILABLE", async () => {
  failFirst = 2;
  for (const k of Object.keys(calls)) delete calls[k];
  assert.equal((await client.claim(item)).outcome, "ACQUIRED");
  assert.equal((await client.commit({ ...item, token: 7n })).outcome, "COMMITTED");
  assert.equal((await client.release({ ...item, token: 7n })).outcome, "RELEASED");
  assert.equal((await client.renew({ ...item, token: 7n })).outcome, "RENEWED");
  assert.equal((await client.inspect(item)).state, "ABSENT");
  await client.claimBatch([item]);
  await client.commitBatch([{ ...item, token: 7n }]);
  assert.deepEqual(calls, { claim: 3, commit: 3, release: 3, renew: 3, inspect: 3, claimBatch: 3, commitBatch: 3 });
});

test("Check, CheckBatch and Forget are sent exactly once", async () => {
  failFirst = 100;
  for (const k of Object.keys(calls)) delete calls[k];
  for (const call of [() => client.check(item), () => client.checkBatch([item]), () => client.forget(item)]) {
    await assert.rejects(call(), (e: unknown) => e instanceof DedupError && e.codeName === "UNAVAILABLE" && e.attempts === 1);
  }
  assert.deepEqual(calls, { check: 1, checkBatch: 1, forget: 1 });
});

test("retries stop at maxAttempts and report how many were made", async () => {
  failFirst = 100;
  await assert.rejects(client.claim(item), (e: unknown) => e instanceof DedupError && e.attempts === 4);
});

test("every request carries a deadline", () => {
  assert.ok(deadlines.length > 0);
  assert.ok(deadlines.every((d) => d !== "Infinity"), deadlines.join(","));
});

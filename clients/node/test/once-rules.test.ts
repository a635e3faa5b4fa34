// The helper's rules after the effect, against a scripted in-process server
// (no sidecar): never a Release once the handler returned; LEASE_LOST at
// Commit → re-claim → commit with the new token; a sidecar unreachable for the
// whole lease → "effect applied, commit not recorded".
import { strict as assert } from "node:assert";
import { after, test } from "node:test";
import { Server, ServerCredentials, status as Status, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import * as pb from "../src/gen/dedup/v1/dedup";
import { DedupClient, DedupError, LeaseLostError, processOnce } from "../src";

type Script = {
  claim: (n: number) => pb.ClaimResponse | undefined;
  commit: (req: pb.CommitRequest) => pb.CommitResponse | undefined;
  /** Renew answers RENEWED after this many ms (undefined: UNAVAILABLE at once). */
  renewAfterMs?: number;
};

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));

/** A server answering per `script` (undefined: UNAVAILABLE); Renew is UNAVAILABLE unless scripted; calls are counted. */
async function serve(script: Script) {
  const calls: Record<string, number> = {};
  const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
  const reply = <Res>(cb: sendUnaryData<Res>, res: Res | undefined) =>
    res === undefined ? cb({ code: Status.UNAVAILABLE, details: "scripted outage" }) : cb(null, res);
  const server = new Server();
  server.addService(pb.DedupService, {
    claim: (_call: ServerUnaryCall<pb.ClaimRequest, pb.ClaimResponse>, cb: sendUnaryData<pb.ClaimResponse>) =>
      reply(cb, script.claim(count("claim"))),
    commit: (call: ServerUnaryCall<pb.CommitRequest, pb.CommitResponse>, cb: sendUnaryData<pb.CommitResponse>) => {
      count("commit");
      reply(cb, script.commit(call.request));
    },
    renew: (_call: ServerUnaryCall<pb.RenewRequest, pb.RenewResponse>, cb: sendUnaryData<pb.RenewResponse>) => {
      count("renew");
      const renewed = pb.RenewResponse.fromPartial({ outcome: pb.RenewOutcome.RENEW_OUTCOME_RENEWED });
      if (script.renewAfterMs === undefined) reply(cb, undefined);
      else setTimeout(() => reply(cb, renewed), script.renewAfterMs);
    },
    release: (_call: ServerUnaryCall<pb.ReleaseRequest, pb.ReleaseResponse>, cb: sendUnaryData<pb.ReleaseResponse>) => {
      count("release");
      reply(cb, pb.ReleaseResponse.fromPartial({ outcome: pb.ReleaseOutcome.RELEASE_OUTCOME_RELEASED }));
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new DedupClient({ target: `127.0.0.1:${port}`, transport: "unary", deadlineMs: 1000, retry: { initialBackoffMs: 1 } });
  cleanups.push(() => {
    client.close();
    server.forceShutdown();
  });
  return { client, calls };
}

const acquired = (token: bigint) =>
  pb.ClaimResponse.fromPartial({
    outcome: pb.ClaimOutcome.CLAIM_OUTCOME_ACQUIRED,
    fencingToken: token,
    leaseExpiresUnixMs: BigInt(Date.now() + 400),
  });
const COMMITTED = pb.CommitResponse.fromPartial({ outcome: pb.CommitOutcome.COMMIT_OUTCOME_COMMITTED });
const LEASE_LOST = pb.CommitResponse.fromPartial({ outcome: pb.CommitOutcome.COMMIT_OUTCOME_LEASE_LOST });

test("Commit answering LEASE_LOST: re-claim, ACQUIRED → commit with the new token → PROCESSED; no Release", async () => {
  const { client, calls } = await serve({
    claim: (n) => acquired(n === 1 ? 5n : 6n),
    commit: (req) => (req.fencingToken === 6n ? COMMITTED : LEASE_LOST),
  });
  let runs = 0;
  const outcome = await processOnce(client, { namespace: "ns", id: "a", leaseMs: 400 }, async () => {
    runs++;
    return "r";
  });
  assert.deepEqual([outcome.status, outcome.action, outcome.fencingToken, runs], ["PROCESSED", "ACK", 6n, 1]);
  assert.equal(calls.release, undefined);
});

test("re-claim answering IN_PROGRESS → LEASE_LOST (ACK), the handler ran once; no Release", async () => {
  const inProgress = pb.ClaimResponse.fromPartial({ outcome: pb.ClaimOutcome.CLAIM_OUTCOME_IN_PROGRESS, retryAfterMs: 900n });
  const { client, calls } = await serve({ claim: (n) => (n === 1 ? acquired(5n) : inProgress), commit: () => LEASE_LOST });
  const outcome = await processOnce(client, { namespace: "ns", id: "a", leaseMs: 400 }, async () => "r");
  assert.deepEqual([outcome.status, outcome.action, outcome.shouldAck, outcome.fencingToken], ["LEASE_LOST", "ACK", true, 5n]);
  assert.equal(calls.release, undefined);
});

test("unreachable for the whole lease after the effect: Commit retried until the lease ends, then 'commit not recorded'", async () => {
  const { client, calls } = await serve({ claim: (n) => (n === 1 ? acquired(5n) : undefined), commit: () => undefined });
  const started = Date.now();
  await assert.rejects(
    processOnce(client, { namespace: "ns", id: "a", leaseMs: 1500 }, async () => "r"),
    (e: unknown) => e instanceof DedupError && e.codeName === "UNAVAILABLE" && /effect applied, commit not recorded/.test(e.message),
  );
  assert.ok(Date.now() - started >= 1400, `gave up after ${Date.now() - started} ms of a 1500 ms lease`);
  // backoff 50 ms doubling to 1 s: ~5 attempts fit in 1.5 s; a busy machine may lose one or two
  assert.ok((calls.commit ?? 0) >= 3, `commit sent ${calls.commit} times`);
  assert.equal(calls.release, undefined);
});

test("ensure() whose renewal was answered a whole lease later (a paused process) says the lease is lost", async () => {
  const { client } = await serve({ claim: () => acquired(5n), commit: () => COMMITTED, renewAfterMs: 600 });
  let ensured: unknown;
  await processOnce(client, { namespace: "ns", id: "a", leaseMs: 400, renewEveryMs: 60_000 }, async (lease) => {
    ensured = await lease.ensure().then(
      () => "ok",
      (err: unknown) => err,
    );
    assert.ok(lease.lost);
    return "r";
  });
  assert.ok(ensured instanceof LeaseLostError, `ensure() gave ${String(ensured)}`);
});

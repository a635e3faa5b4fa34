// The shared contract suite (tests/contract/scenarios.yaml) against a live
// sidecar ($DEDUP_TARGET and the harness's other targets), every scenario
// twice: over the default stream transport and over unary calls.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { DedupClient, DedupError, type Lease, LeaseLostError, processOnce } from "../src";

type Expect = {
  outcome?: string;
  state?: string;
  result?: string;
  token_greater_than?: string;
  token_from?: string;
  error?: string;
  field_violation?: string;
  outcomes?: string[];
  counts?: Record<string, number>;
  status?: string;
  action?: string;
  handler_ran?: boolean;
};
type Step = Record<string, unknown> & { op: string; expect?: Expect };
type Scenario = { name: string; target?: string; steps: Step[] };
type Transport = "stream" | "unary";

const scenariosFile =
  process.env.DEDUP_SCENARIOS ??
  process.env.DEDUP_CONTRACT_SCENARIOS ??
  resolve(__dirname, "..", "..", "..", "..", "tests", "contract", "scenarios.yaml");
const scenarios: Scenario[] = parse(readFileSync(scenariosFile, "utf8")).scenarios;

const TARGET_ENV: Record<string, string> = {
  sidecar: "DEDUP_TARGET",
  blackhole: "DEDUP_BLACKHOLE_TARGET",
  unavailable: "DEDUP_UNAVAILABLE_TARGET",
  toggle: "DEDUP_TOGGLE_TARGET",
};

function env(name: string): string {
  const value = process.env[name];
  assert.ok(value, `$${name} is not set: the contract suite needs a live sidecar (see tests/contract)`);
  return value;
}

const clients = new Map<string, DedupClient>();
function clientFor(target: string, transport: Transport): DedupClient {
  const envName = TARGET_ENV[target];
  assert.ok(envName, `unknown scenario target ${target}`);
  const address = env(envName);
  const key = `${transport} ${address}`;
  let client = clients.get(key);
  if (client === undefined) {
    client = new DedupClient({ target: address, transport });
    clients.set(key, client);
  }
  return client;
}
after(() => clients.forEach((c) => c.close()));
before(async () => {
  // Warm up the connection (cold start on a loaded machine), so the scenarios'
  // own deadlines measure the sidecar.
  if (process.env.DEDUP_TARGET) await clientFor("sidecar", "unary").inspect({ namespace: "contract", id: "node-warmup" }, { deadlineMs: 60000 });
});

/** The error a `fail: true` action raises from the handler. */
class HandlerFailure extends Error {}

class Run {
  readonly vars = new Map<string, string>();
  readonly tokens = new Map<string, bigint>();
  readonly pending = new Map<string, { step: Step; result: Promise<Result> }>();
  constructor(
    name: string,
    readonly client: DedupClient,
    readonly direct: DedupClient,
  ) {
    const rnd = () => randomBytes(6).toString("hex");
    this.vars.set("$id", `node-${name}-${rnd()}`);
    this.vars.set("$id2", `node-${name}-${rnd()}`);
  }
  id(v: unknown): string {
    const s = String(v ?? "");
    return this.vars.get(s) ?? s;
  }
  token(v: unknown): bigint {
    const t = this.tokens.get(String(v).replace(/^\$/, ""));
    assert.ok(t !== undefined, `no saved token ${String(v)}`);
    return t;
  }
}

const num = (v: unknown): number | undefined => (v === undefined ? undefined : Number(v));
const str = (v: unknown): string | undefined => (v === undefined ? undefined : String(v));

/** What a step produced: the fields it answered, or the failure (a gRPC code name, or HANDLER). */
type Result = { got?: Record<string, unknown>; failure?: string; error?: DedupError };

async function execute(run: Run, step: Step): Promise<Result> {
  try {
    return { got: await perform(run, step) };
  } catch (err) {
    if (err instanceof HandlerFailure) return { failure: "HANDLER" };
    if (err instanceof DedupError) return { failure: err.codeName, error: err };
    throw err;
  }
}

async function perform(run: Run, step: Step): Promise<Record<string, unknown>> {
  const client = step.direct ? run.direct : run.client;
  const namespace = str(step.ns) ?? "contract";
  const id = run.id(step.id);
  const opts = { deadlineMs: num(step.deadline_ms) ?? 5000 };
  switch (step.op) {
    case "check":
      return { ...(await client.check({ namespace, id, fingerprint: str(step.fingerprint), windowMs: num(step.window_ms) }, opts)) };
    case "claim": {
      const r = await client.claim(
        { namespace, id, fingerprint: str(step.fingerprint), leaseMs: num(step.lease_ms), waitMs: num(step.wait_ms) },
        opts,
      );
      if (step.save_token && r.outcome === "ACQUIRED") run.tokens.set(String(step.save_token), r.token);
      return { ...r };
    }
    case "commit":
      return { ...(await client.commit({ namespace, id, token: run.token(step.token), result: str(step.result), windowMs: num(step.window_ms) }, opts)) };
    case "release":
      return { ...(await client.release({ namespace, id, token: run.token(step.token) }, opts)) };
    case "renew":
      return { ...(await client.renew({ namespace, id, token: run.token(step.token), leaseMs: num(step.lease_ms) }, opts)) };
    case "inspect":
      return { ...(await client.inspect({ namespace, id }, opts)) };
    case "check_batch": {
      const rs = await client.checkBatch((step.ids as unknown[]).map((i) => ({ namespace, id: run.id(i) })), opts);
      return { outcomes: rs.map((r) => r.outcome) };
    }
    case "claim_batch": {
      const rs = await client.claimBatch((step.ids as unknown[]).map((i) => ({ namespace, id: run.id(i) })), opts);
      return { outcomes: rs.map((r) => r.outcome) };
    }
    case "concurrent_claims": {
      const n = Number(step.n);
      const rs = await Promise.all(Array.from({ length: n }, () => client.claim({ namespace, id }, opts)));
      const counts: Record<string, number> = {};
      for (const r of rs) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
      return { counts };
    }
    case "await_state":
      return { ...(await awaitState(client, namespace, id, String(step.state), Number(step.within_ms))) };
    case "once":
      return once(run, client, namespace, id, step);
    default:
      throw new Error(`unknown op ${step.op}`);
  }
}

async function awaitState(client: DedupClient, namespace: string, id: string, state: string, withinMs: number) {
  const until = Date.now() + withinMs;
  for (;;) {
    const r = await client.inspect({ namespace, id });
    if (r.state === state) return r;
    assert.ok(Date.now() < until, `state ${state} not seen within ${withinMs} ms (last: ${r.state})`);
    await new Promise((res) => setTimeout(res, 25)); // poll interval of a bounded condition wait
  }
}

async function once(run: Run, client: DedupClient, namespace: string, id: string, step: Step): Promise<Record<string, unknown>> {
  let handlerRan = false;
  const actions = (step.actions as Record<string, unknown>[] | undefined) ?? [];
  const outcome = await processOnce(
    client,
    {
      namespace,
      id,
      fingerprint: str(step.fingerprint),
      leaseMs: num(step.lease_ms),
      renewEveryMs: num(step.renew_every_ms),
      waitMs: num(step.wait_ms),
    },
    async (lease) => {
      handlerRan = true;
      for (const action of actions) await act(run, namespace, id, lease, action);
      return str(step.result);
    },
  );
  return { ...outcome, result: outcome.storedResult, token: outcome.fencingToken, handler_ran: handlerRan };
}

async function act(run: Run, namespace: string, id: string, lease: Lease, action: Record<string, unknown>): Promise<void> {
  if (action.cut !== undefined) return cut(Number(action.cut));
  if (action.forget) {
    await run.direct.forget({ namespace, id });
    return;
  }
  if (action.claim_other !== undefined) {
    const r = await run.direct.claim({ namespace, id });
    assert.equal(r.outcome, "ACQUIRED", "claim_other");
    run.tokens.set(String(action.claim_other), r.token);
    return;
  }
  if (action.await_absent !== undefined) {
    await awaitState(run.direct, namespace, id, "ABSENT", Number(action.await_absent));
    return;
  }
  if (action.ensure !== undefined) {
    if (action.ensure === "ok") {
      await lease.ensure();
      assert.equal(lease.lost, false, "lease.lost after a successful ensure()");
    } else {
      await assert.rejects(lease.ensure(), LeaseLostError);
      assert.equal(lease.lost, true, "lease.lost after ensure() found the lease gone");
      assert.equal(lease.signal.aborted, true, "lease.signal after ensure() found the lease gone");
    }
    return;
  }
  if (action.fail) throw new HandlerFailure("the scenario's handler failed");
  throw new Error(`unknown once action ${JSON.stringify(action)}`);
}

/** Tells the toggle proxy to cut every connection for `ms`; resolves on its "ok". */
function cut(ms: number): Promise<void> {
  const [host, port] = env("DEDUP_TOGGLE_CONTROL").split(/:(?=\d+$)/);
  return new Promise((resolveCut, reject) => {
    const sock = connect(Number(port), host, () => sock.write(`cut ${ms}\n`));
    let reply = "";
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      reply += chunk;
      if (!reply.includes("\n")) return;
      sock.end();
      if (reply.trim() === "ok") resolveCut();
      else reject(new Error(`toggle control answered ${reply.trim()}`));
    });
    sock.on("error", reject);
  });
}

function verify(run: Run, step: Step, expect: Expect, r: Result, where: string): void {
  if (expect.error !== undefined) {
    assert.ok(r.failure !== undefined, `${where}: expected ${expect.error}, got ${show(r.got)}`);
    assert.equal(r.failure, expect.error, `${where}: error`);
    if (expect.field_violation !== undefined) {
      const fields = r.error?.fieldViolations.map((v) => v.field) ?? [];
      assert.ok(fields.includes(expect.field_violation), `${where}: violations ${fields.join(",")}`);
    }
    return;
  }
  assert.ok(r.failure === undefined, `${where}: unexpected error ${r.error?.message ?? r.failure}`);
  const got = r.got as Record<string, unknown>;
  const e = expect;
  if (e.outcome !== undefined) assert.equal(got.outcome, e.outcome, `${where}: outcome`);
  if (e.status !== undefined) assert.equal(got.status, e.status, `${where}: status`);
  if (e.action !== undefined) assert.equal(got.action, e.action, `${where}: action`);
  if (e.action !== undefined) assert.equal(got.shouldAck, e.action === "ACK", `${where}: shouldAck`);
  if (e.handler_ran !== undefined) assert.equal(got.handler_ran, e.handler_ran, `${where}: handler_ran`);
  if (e.state !== undefined) assert.equal(got.state, e.state, `${where}: state`);
  if (e.result !== undefined) assert.equal((got.result as Buffer | undefined)?.toString("utf8"), e.result, `${where}: stored result`);
  for (const name of [e.token_greater_than, e.token_from]) {
    if (name !== undefined) assert.ok((got.token as bigint) > run.token(name), `${where}: token ${String(got.token)} not > ${name}`);
  }
  if (e.outcomes !== undefined) assert.deepEqual(got.outcomes, e.outcomes, `${where}: batch outcomes`);
  if (e.counts !== undefined) assert.deepEqual(got.counts, e.counts, `${where}: outcome counts`);
  void step;
}

const show = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? String(x) : x));

for (const transport of ["stream", "unary"] as const) {
  describe(`contract (${transport})`, () => {
    for (const scenario of scenarios) {
      test(scenario.name, async () => {
        const run = new Run(scenario.name, clientFor(scenario.target ?? "sidecar", transport), clientFor("sidecar", transport));
        for (const [i, step] of scenario.steps.entries()) {
          const where = `step ${i + 1} (${step.op})`;
          if (step.op === "join") {
            const name = String(step.name);
            const started = run.pending.get(name);
            assert.ok(started, `${where}: no async call ${name}`);
            run.pending.delete(name);
            verify(run, started.step, step.expect ?? {}, await started.result, `${where} of ${name}`);
            continue;
          }
          if (step.async !== undefined) {
            run.pending.set(String(step.async), { step, result: execute(run, step) });
            continue;
          }
          verify(run, step, step.expect ?? {}, await execute(run, step), where);
        }
        assert.equal(run.pending.size, 0, `async calls never joined: ${[...run.pending.keys()].join(",")}`);
      });
    }
  });
}

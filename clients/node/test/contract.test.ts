// The shared contract suite (tests/contract/scenarios.yaml) against a live
// sidecar: $DEDUP_TARGET, $DEDUP_BLACKHOLE_TARGET, $DEDUP_UNAVAILABLE_TARGET.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { DedupClient, DedupError } from "../src";

type Expect = {
  outcome?: string;
  state?: string;
  result?: string;
  token_greater_than?: string;
  error?: string;
  field_violation?: string;
  outcomes?: string[];
  counts?: Record<string, number>;
};
type Step = Record<string, unknown> & { op: string; expect?: Expect };
type Scenario = { name: string; target?: string; steps: Step[] };

const scenariosFile =
  process.env.DEDUP_SCENARIOS ?? resolve(__dirname, "..", "..", "..", "..", "tests", "contract", "scenarios.yaml");
const scenarios: Scenario[] = parse(readFileSync(scenariosFile, "utf8")).scenarios;

const TARGET_ENV: Record<string, string> = {
  sidecar: "DEDUP_TARGET",
  blackhole: "DEDUP_BLACKHOLE_TARGET",
  unavailable: "DEDUP_UNAVAILABLE_TARGET",
};

const clients = new Map<string, DedupClient>();
function clientFor(target: string): DedupClient {
  const envName = TARGET_ENV[target];
  assert.ok(envName, `unknown scenario target ${target}`);
  const address = process.env[envName];
  assert.ok(address, `$${envName} is not set: the contract suite needs a live sidecar (see tests/contract)`);
  let client = clients.get(address);
  if (client === undefined) {
    client = new DedupClient({ target: address });
    clients.set(address, client);
  }
  return client;
}
after(() => clients.forEach((c) => c.close()));
before(async () => {
  // Warm up the connection (cold start on a loaded machine), so the scenarios'
  // own deadlines measure the sidecar.
  if (process.env.DEDUP_TARGET) await clientFor("sidecar").inspect({ namespace: "contract", id: "node-warmup" }, { deadlineMs: 60000 });
});

class Run {
  readonly vars = new Map<string, string>();
  readonly tokens = new Map<string, bigint>();
  constructor(name: string) {
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

async function perform(client: DedupClient, run: Run, step: Step): Promise<Record<string, unknown>> {
  const namespace = str(step.ns) ?? "contract";
  const id = run.id(step.id);
  const opts = { deadlineMs: num(step.deadline_ms) ?? 5000 };
  switch (step.op) {
    case "check":
      return { ...(await client.check({ namespace, id, fingerprint: str(step.fingerprint), windowMs: num(step.window_ms) }, opts)) };
    case "claim": {
      const r = await client.claim({ namespace, id, fingerprint: str(step.fingerprint), leaseMs: num(step.lease_ms) }, opts);
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
    case "await_state": {
      const until = Date.now() + Number(step.within_ms);
      for (;;) {
        const r = await client.inspect({ namespace, id }, opts);
        if (r.state === step.state) return { ...r };
        assert.ok(Date.now() < until, `state ${String(step.state)} not seen within ${String(step.within_ms)} ms (last: ${r.state})`);
        await new Promise((res) => setTimeout(res, 25)); // poll interval of a bounded condition wait
      }
    }
    default:
      throw new Error(`unknown op ${step.op}`);
  }
}

function check(run: Run, step: Step, got: Record<string, unknown>): void {
  const e = step.expect ?? {};
  if (e.outcome !== undefined) assert.equal(got.outcome, e.outcome, "outcome");
  if (e.state !== undefined) assert.equal(got.state, e.state, "state");
  if (e.result !== undefined) assert.equal((got.result as Buffer | undefined)?.toString("utf8"), e.result, "stored result");
  if (e.token_greater_than !== undefined) {
    assert.ok((got.token as bigint) > run.token(e.token_greater_than), `token ${String(got.token)} not > ${e.token_greater_than}`);
  }
  if (e.outcomes !== undefined) assert.deepEqual(got.outcomes, e.outcomes, "batch outcomes");
  if (e.counts !== undefined) assert.deepEqual(got.counts, e.counts, "outcome counts");
}

describe("contract", () => {
  for (const scenario of scenarios) {
    test(scenario.name, async () => {
      const client = clientFor(scenario.target ?? "sidecar");
      const run = new Run(scenario.name);
      for (const [i, step] of scenario.steps.entries()) {
        const where = `step ${i + 1} (${step.op})`;
        let got: Record<string, unknown> | undefined;
        let failure: DedupError | undefined;
        try {
          got = await perform(client, run, step);
        } catch (err) {
          if (!(err instanceof DedupError)) throw err;
          failure = err;
        }
        const expect = step.expect ?? {};
        if (expect.error !== undefined) {
          assert.ok(failure, `${where}: expected ${expect.error}, got ${JSON.stringify(got, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
          assert.equal(failure.codeName, expect.error, `${where}: status code`);
          if (expect.field_violation !== undefined) {
            const fields = failure.fieldViolations.map((v) => v.field);
            assert.ok(fields.includes(expect.field_violation), `${where}: violations ${fields.join(",")}`);
          }
          continue;
        }
        assert.ok(failure === undefined, `${where}: unexpected error ${failure?.message}`);
        check(run, step, got as Record<string, unknown>);
      }
    });
  }
});

// Cross-language check (see xlang.sh): XLANG_MODE=commit claims and commits
// every id (ACQUIRED then COMMITTED); XLANG_MODE=expect-duplicate claims and
// checks every id (DUPLICATE for both). Exit 0 iff every expectation held.
import { DedupClient } from "../src";

async function main(): Promise<number> {
  const target = process.env.DEDUP_TARGET;
  const mode = process.env.XLANG_MODE;
  const namespace = process.env.XLANG_NAMESPACE ?? "contract";
  const ids = (process.env.XLANG_IDS ?? "").split(",").filter((s) => s !== "");
  if (!target || (mode !== "commit" && mode !== "expect-duplicate") || ids.length === 0) {
    console.error("usage: DEDUP_TARGET=host:port XLANG_MODE=commit|expect-duplicate XLANG_NAMESPACE=ns XLANG_IDS=a,b xlang.sh");
    return 2;
  }
  const client = new DedupClient({ target, deadlineMs: 30000 });
  const failures: string[] = [];
  for (const id of ids) {
    const claim = await client.claim({ namespace, id });
    if (mode === "commit") {
      if (claim.outcome !== "ACQUIRED") {
        failures.push(`${id}: claim ${claim.outcome}`);
        continue;
      }
      const commit = await client.commit({ namespace, id, token: claim.token, result: "xlang-node" });
      if (commit.outcome !== "COMMITTED") failures.push(`${id}: commit ${commit.outcome}`);
    } else {
      const check = await client.check({ namespace, id });
      if (claim.outcome !== "DUPLICATE") failures.push(`${id}: claim ${claim.outcome}`);
      if (check.outcome !== "DUPLICATE") failures.push(`${id}: check ${check.outcome}`);
    }
  }
  client.close();
  const status = failures.length === 0 ? "ok" : `FAILED ${failures.join("; ")}`;
  console.log(`xlang node mode=${mode} namespace=${namespace} ids=${ids.length} ${status}`);
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`xlang node: ${String(err)}`);
    process.exit(1);
  },
);

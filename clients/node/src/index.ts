export { DedupClient, type DedupClientOptions } from "./client";
export { processOnce, ACTIONS, DEFAULT_WAIT_MS, type Action, type Handler, type OnceOptions, type OnceOutcome, type Status } from "./once";
export { Lease, LeaseLostError } from "./lease";
export { markApplied, advanceFence, APPLIED_DDL, FENCE_DDL, type Queryable } from "./sinks";
export { DedupError, type FieldViolation } from "./status";
export type { RetryOptions } from "./retry";
export * from "./types";
